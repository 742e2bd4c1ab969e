"""apply_suppressions for records as columns (analyze/record_columns.py): the same matches,
with the entries narrowed by the functions of the distinct return addresses and each record
tried only when its stack has every function some entry needs (a bit mask per stack, made
with numpy over the STACKS words); only those records are made as objects for the matcher."""

from __future__ import annotations

import numpy as np

from leaktrace import report_native as native
from leaktrace.analyze.column_frame_totals import column_frame_totals
from leaktrace.analyze.leak_totals import column_leak_totals, column_suppressed_total
from leaktrace.analyze.record_columns import RecordColumns
from leaktrace.analyze.stack_matrix import address_matrix, row_batches
from leaktrace.model import Report, SuppressionUse
from leaktrace.suppressions.apply import count_use
from leaktrace.suppressions.matcher import SuppressionMatcher, api_names

_MASK_BITS = 63  # needed names told apart per stack; past that, every record is tried


def apply_to_columns(report: Report, columns: RecordColumns,
                     matcher: SuppressionMatcher) -> None:
    frames_of = columns.frames.frames_by_address()
    names: set[str | None] = {n for kind in columns.kind_names for n in api_names(kind)}
    for frames in frames_of.values():
        for frame in frames:
            names.update(matcher.frame_names(frame))
    matcher = matcher.narrowed_to(names)
    if not matcher.suppressions:
        return
    uses: dict[int, SuppressionUse] = {}
    names_by_number = {id(s): i for i, s in enumerate(matcher.suppressions)}
    supp_names = [s.name for s in matcher.suppressions]
    for i in np.flatnonzero(_candidates(columns, matcher, frames_of)).tolist():
        record = columns.record(i)
        suppression = matcher.match(record)
        if suppression is None:
            continue
        columns.suppressed[i] = names_by_number[id(suppression)]
        count_use(uses, suppression, record)
    if not uses:
        return
    columns.suppression_names = supp_names
    summary = report.summary
    if summary.leaks is not None:
        summary.leaks, summary.suppressed = column_leak_totals(
            columns, summary.leaks.reachable_via_heuristic, summary.leaks.unknown_kinds,
            summary.leaks.heuristics_unknown)
    else:
        summary.suppressed = column_suppressed_total(columns)
    report.suppressions_used = sorted(uses.values(), key=lambda u: (-u.bytes, u.name))
    report.frame_totals = column_frame_totals(columns)


def _candidates(columns: RecordColumns, matcher: SuppressionMatcher,
                frames_of: dict[int, tuple]) -> np.ndarray:
    """Per record: could some entry match it? False only where every entry lacks a function
    it needs (the matcher's own quick no, made per stack)."""
    needed = matcher.needed_names()
    if any(not n for n in needed):
        return np.ones(len(columns), dtype=bool)  # an entry every stack may match
    wanted = sorted({name for n in needed for name in n})
    if len(wanted) > _MASK_BITS:
        return np.ones(len(columns), dtype=bool)
    bit_of = {name: 1 << b for b, name in enumerate(wanted)}

    def mask_of(functions: set[str]) -> int:
        mask = 0
        for (name, is_prefix), bit in bit_of.items():
            if (any(f.startswith(name) for f in functions) if is_prefix
                    else name in functions):
                mask |= bit
        return mask

    addresses = np.array(sorted(frames_of), dtype=np.uint64)
    address_masks = np.zeros(len(addresses) + 1, dtype=np.uint64)
    for a, address in enumerate(addresses.tolist()):
        address_masks[a] = mask_of({n for f in frames_of[address] for n in matcher.frame_names(f)})
    table = columns.frames.table
    used = np.zeros(len(table), dtype=bool)  # a flag per stack: no sort of a million rows
    used[columns.rows[columns.rows >= 0]] = True
    rows = np.flatnonzero(used)
    lib = native.usable(len(rows))
    row_masks = None if lib is None else native.stack_masks(
        lib, np.asarray(table.addresses), table.starts, table.depths, rows, addresses,
        address_masks)
    if row_masks is None:  # the same ORs from a matrix of the stacks' address numbers
        row_masks = np.zeros(len(rows), dtype=np.uint64)
        for chosen in row_batches(table, rows):
            found = address_matrix(table, addresses, rows[chosen])
            row_masks[chosen] = np.bitwise_or.reduce(address_masks[found], axis=1) \
                if found.shape[1] else 0
    # The API kind heads the stack the matcher sees (or operator new, a frame already).
    kind_masks = np.array([mask_of(api_names(name)) for name in columns.kind_names],
                          dtype=np.uint64)
    masks = kind_masks[columns.kinds]
    has_row = columns.rows >= 0
    by_row = np.zeros(len(table), dtype=np.uint64)  # a gather, not a search per record
    by_row[rows] = row_masks
    masks[has_row] |= by_row[columns.rows[has_row]]
    wanted_masks = [np.uint64(sum(bit_of[name] for name in set(n))) for n in needed]
    possible = np.zeros(len(columns), dtype=bool)
    for want in wanted_masks:
        possible |= (masks & want) == want
    return possible
