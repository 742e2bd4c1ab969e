"""Mark the loss records a suppression matches, and count them as valgrind does: under
"suppressed" in the summary (own bytes and blocks) and nowhere else. Memory mappings are not
loss records and are never suppressed."""

from __future__ import annotations

from collections.abc import Sequence

from leaktrace.analyze.frame_totals import compute_frame_totals
from leaktrace.analyze.leak_totals import leak_totals, suppressed_total
from leaktrace.model import LeakRecord, Report, SuppressionUse
from leaktrace.suppressions.entries import Suppression
from leaktrace.suppressions.matcher import SuppressionMatcher


def count_use(uses: dict[int, SuppressionUse], suppression: Suppression,
              record: LeakRecord) -> None:
    """Adds `record`, which `suppression` matched, to that suppression's use."""
    use = uses.get(id(suppression))
    if use is None:
        use = uses[id(suppression)] = SuppressionUse(suppression.name, suppression.origin)
    use.records += 1
    use.blocks += record.blocks
    use.bytes += record.own_bytes


def apply_suppressions(report: Report, suppressions: Sequence[Suppression],
                       matcher: SuppressionMatcher | None = None) -> None:
    """Updates `report` in place: suppressed_by on each matched record, the summary's leak
    totals and suppressed total, suppressions_used, frame_totals."""
    from leaktrace.suppressions.invalid_frees import apply_free_suppressions, free_entries

    apply_free_suppressions(report, free_entries(suppressions))  # the loss records' never match
    if not suppressions:
        return
    # A capture's records as columns (ColumnRecords.columns), while they are the truth.
    columns = getattr(report.records, "columns", None)
    if columns is not None:
        from leaktrace.suppressions.apply_columns import apply_to_columns

        apply_to_columns(report, columns, matcher or SuppressionMatcher(suppressions))
        return
    matcher = (matcher or SuppressionMatcher(suppressions)).narrowed(report.records)
    uses: dict[int, SuppressionUse] = {}
    for record in report.records:
        suppression = matcher.match(record)
        if suppression is None:
            continue
        record.suppressed_by = suppression.name
        count_use(uses, suppression, record)
    if not uses:
        return  # nothing matched: the totals stand
    summary = report.summary
    if summary.leaks is not None:
        summary.leaks, summary.suppressed = leak_totals(
            report.records, summary.leaks.reachable_via_heuristic, summary.leaks.unknown_kinds,
            summary.leaks.heuristics_unknown)
    else:
        summary.suppressed = suppressed_total(report.records)
    report.suppressions_used = sorted(uses.values(), key=lambda u: (-u.bytes, u.name))
    report.frame_totals = compute_frame_totals(report.records)
