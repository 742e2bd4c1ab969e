"""Read a capture and build its report with everything the capture's neighbours and series
add: the change since the previous capture of the process and each backtrace's growth."""

from __future__ import annotations

import time
from dataclasses import dataclass

from leaktrace.analyze.build_report import build_report
from leaktrace.analyze.growth import GrowthAnalysis, analyze_growth, growth_rate_table
from leaktrace.analyze.report_history import add_comparison, add_growth_rates
from leaktrace.analyze.since_previous import compare_with_previous
from leaktrace.capture.reader import Capture, read_capture
from leaktrace.model import Report


@dataclass
class CaptureReport:
    capture: Capture
    report: Report
    _growth: GrowthAnalysis | None = None

    @property
    def growth(self) -> GrowthAnalysis | None:
        """Each backtrace's intervals over the run (None without a snapshot series): made
        when first asked for (plots, the HTML timeline); the records have their rates."""
        if self._growth is None and self.capture.series is not None:
            self._growth = analyze_growth(self.capture)
        return self._growth


def load_capture_report(path: str, *, with_addresses: bool = True,
                        compare: bool = True) -> CaptureReport:
    started = time.monotonic()
    capture = read_capture(path)
    report = build_report(capture, with_addresses=with_addresses, started=started)
    if capture.series is not None:
        add_growth_rates(report, growth_rate_table(capture))
    if compare:
        comparison = compare_with_previous(path, capture)
        if comparison is not None:
            add_comparison(report, comparison)
    report.build_seconds = time.monotonic() - started
    return CaptureReport(capture, report)
