"""valgrind's LEAK SUMMARY from loss records: direct bytes and blocks per leak kind, with the
records a suppression matched counted apart (as "suppressed") and nowhere else."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from leaktrace.analyze.record_columns import NONE, RecordColumns
from leaktrace.leak_kinds import LEAK_KINDS
from leaktrace.model import KindTotal, LeakRecord, LeakTotals

if TYPE_CHECKING:
    from leaktrace.capture.reader import Capture


def leak_totals(records: Iterable[LeakRecord],
                heuristics: dict[str, KindTotal] | None = None,
                unknown_kinds: frozenset[str] = frozenset(),
                heuristics_unknown: bool = False) -> tuple[LeakTotals, KindTotal]:
    """(totals per leak kind, suppressed total). Only direct bytes count: the indirect bytes of
    a definitely lost record are the indirectly lost records' own bytes, counted there.
    `heuristics` (blocks a heuristic made reachable) is carried over as given: valgrind counts
    them before suppressions. `unknown_kinds`: kinds the source did not report;
    `heuristics_unknown`: the source does not tell which blocks a heuristic reached."""
    totals = LeakTotals(reachable_via_heuristic=dict(heuristics or {}),
                        unknown_kinds=unknown_kinds, heuristics_unknown=heuristics_unknown)
    suppressed = KindTotal()
    target_of = {kind: totals.of(kind) for kind in LEAK_KINDS}
    for record in records:
        target = suppressed if record.suppressed_by is not None else \
            target_of.get(record.leak_kind)  # type: ignore[arg-type]
        if target is None:
            continue
        target.blocks += record.blocks
        target.bytes += record.bytes if record.direct_bytes is None else record.direct_bytes
        if record.estimate is not None:
            target.add_estimate(record.estimate)
    return totals, suppressed


def column_leak_totals(columns: RecordColumns,
                       heuristics: dict[str, KindTotal] | None = None,
                       unknown_kinds: frozenset[str] = frozenset(),
                       heuristics_unknown: bool = False) -> tuple[LeakTotals, KindTotal]:
    """leak_totals of records as columns (analyze/record_columns.py)."""
    totals = LeakTotals(reachable_via_heuristic=dict(heuristics or {}),
                        unknown_kinds=unknown_kinds, heuristics_unknown=heuristics_unknown)
    suppressed = KindTotal()
    # Per record, where it counts: 0 suppressed, 1 + i the i-th of leak_kind_names, -1 nowhere.
    names = columns.leak_kind_names
    known = np.array([1 + i if name in LEAK_KINDS else -1 for i, name in enumerate(names)]
                     + [-1], dtype=np.int64)
    target_numbers = np.where(columns.suppressed != NONE, 0, known[columns.leak_kinds])
    targets = [suppressed] + [totals.of(name) if name in LEAK_KINDS else KindTotal()
                              for name in names]
    for number, target in enumerate(targets):
        chosen = target_numbers == number
        if chosen.any():
            target.blocks += int(columns.blocks[chosen].sum())
            target.bytes += int(columns.own_bytes[chosen].sum())
    if columns.estimates is not None:  # variances added in record order, as leak_totals does
        for number, estimate in zip(target_numbers.tolist(), columns.estimates, strict=True):
            if number >= 0:
                targets[number].add_estimate(estimate)
    return totals, suppressed


def column_suppressed_total(columns: RecordColumns) -> KindTotal:
    """suppressed_total of records as columns."""
    chosen = columns.suppressed != NONE
    return KindTotal(int(columns.blocks[chosen].sum()), int(columns.own_bytes[chosen].sum()))


def suppressed_total(records: Iterable[LeakRecord]) -> KindTotal:
    """Own bytes and blocks of the suppressed records (for reports without leak kinds)."""
    total = KindTotal()
    for record in records:
        if record.suppressed_by is not None:
            total.blocks += record.blocks
            total.bytes += record.own_bytes
    return total


def capture_leak_totals(capture: Capture) -> dict[str, tuple[int, int]]:
    """{leak kind: (bytes, blocks)} of a capture's heap blocks, straight from the scan's
    verdicts: no symbolization, no suppressions (whether a child process needs its report
    built); "unscanned" for the blocks no scan classified."""
    from leaktrace.capture import format as fmt

    totals: dict[str, tuple[int, int]] = {}
    for code, name in fmt.LEAK_KINDS.items():
        chosen = capture.blocks[(capture.blocks["leak_kind"] == code)
                                & ~np.isin(capture.blocks["kind"], list(fmt.MAPPING_KINDS))]
        totals[name] = (int(chosen["size"].sum()), len(chosen))
    return totals
