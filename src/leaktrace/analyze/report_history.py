"""What one capture alone does not say, added to its Report: the change of each record since
the previous capture of the same process, and the growth of its backtrace over the run."""

from __future__ import annotations

from itertools import compress

import numpy as np

from leaktrace.analyze.growth import VERDICTS, GrowthAnalysis, GrowthRates
from leaktrace.analyze.record_columns import columns_of
from leaktrace.analyze.since_previous import Comparison
from leaktrace.model import Change, Growth, PreviousCapture, Report


def add_comparison(report: Report, comparison: Comparison) -> None:
    """Every record gets the change of its (kind, backtrace); records split by leak kind
    share their backtrace's change. A record the report names after C++'s operator new has its
    block kind (malloc, aligned_alloc: what the runtime called) in the comparison: its
    backtrace's only change is its own."""
    kinds_of: dict[int, list[Change]] = {}
    for (_, stack_id), each in comparison.records.items():
        kinds_of.setdefault(stack_id, []).append(each)
    for record in report.records:
        if record.native_stack_id is None:
            continue
        change: Change | None = comparison.records.get((record.kind, record.native_stack_id))
        if change is None and (record.kind or "").startswith("operator new"):
            changes = kinds_of.get(record.native_stack_id, [])
            change = changes[0] if len(changes) == 1 else None
        record.since_previous = change if change is not None else Change(0, 0)
    report.previous = PreviousCapture(
        against=comparison.against, path=comparison.previous_path,
        seconds_earlier=comparison.seconds_earlier, change=comparison.total,
        new_records=comparison.new_records, gone_records=comparison.gone_records)


def add_growth(report: Report, analysis: GrowthAnalysis) -> None:
    by_id = analysis.by_native_id()
    for record in report.records:
        stack = by_id.get(record.native_stack_id) if record.native_stack_id is not None else None
        if stack is not None:
            record.growth = Growth(round(stack.bytes_per_second, 3), stack.verdict)


def add_growth_rates(report: Report, rates: GrowthRates) -> None:
    """add_growth from growth_rate_table (the same numbers, for any number of backtraces)."""
    columns = columns_of(report.records)
    if columns is not None:
        rows = rates.rows_of(columns.native_ids)
        columns.growth_verdict_names = list(VERDICTS)
        # Python's round (numpy's can differ in the last digit), 65536 at a time: a list of
        # a million floats is 60 MB.
        step = 1 << 16
        for begin in range(0, len(rows), step):
            chunk = rows[begin:begin + step]
            at = begin + np.flatnonzero(chunk >= 0)
            chosen = rows[at]
            columns.growth_rates[at] = _rounded(rates.bytes_per_second[chosen])
            columns.growth_verdicts[at] = rates.verdicts[chosen]
        return
    records = report.records
    ids = np.fromiter((-1 if r.native_stack_id is None else r.native_stack_id
                       for r in records), dtype=np.int64, count=len(records))
    rows = rates.rows_of(ids)
    found = rows >= 0
    for record, rate, verdict in zip(
            compress(records, found.tolist()), rates.bytes_per_second[rows[found]].tolist(),
            rates.verdicts[rows[found]].tolist(), strict=True):
        record.growth = Growth(round(rate, 3), VERDICTS[verdict])


def _rounded(values: np.ndarray) -> np.ndarray:
    """round(value, 3) of each float64, Python's round made once per distinct value (by
    bits: -0.0 stays -0.0): a big capture's backtraces share a few rates."""
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.int64)
    order = np.argsort(bits, kind="stable")
    ordered = bits[order]
    first = np.ones(len(ordered), dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    inverse = np.empty(len(ordered), dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    made = [round(value, 3) for value in ordered[first].view(np.float64).tolist()]
    return np.array(made, dtype=np.float64)[inverse] if made else \
        np.zeros(0, dtype=np.float64)
