"""Reading the reports `diff` and `merge` compare or add up: captures or valgrind XML,
with the user's suppressions applied to each."""

from __future__ import annotations

from leaktrace.model import Report
from leaktrace.sources.detect import load_any, sniff
from leaktrace.suppressions import load_suppressions
from leaktrace.suppressions.apply import apply_suppressions


def load_reports(paths: tuple[str, ...], suppression_files: tuple[str, ...],
                 no_default_suppressions: bool, *, with_addresses: bool = False
                 ) -> list[Report]:
    suppressions = load_suppressions(suppression_files,
                                     with_defaults=not no_default_suppressions)
    reports = []
    for path in paths:
        if sniff(path) == "capture":
            from leaktrace.analyze.build_report import load_report

            report = load_report(path, with_addresses=with_addresses)
        else:
            report = load_any(path)
        apply_suppressions(report, suppressions)
        reports.append(report)
    return reports
