"""Capture -> model.Report: group live blocks by (API kind, backtrace) and, when a reachability
scan classified them, by leak kind too (valgrind's loss records); symbolize the backtraces,
add up totals, and say what the counters mean for the numbers."""

from __future__ import annotations

import gc
import math
import os
import time
from dataclasses import dataclass
from hashlib import blake2b
from itertools import islice

import numpy as np

from leaktrace import report_native as native
from leaktrace.analyze.column_frame_totals import column_frame_totals
from leaktrace.analyze.column_order import kind_ranks, number_loss_records
from leaktrace.analyze.fatal_signal import describe_fatal
from leaktrace.analyze.invalid_frees import describe_invalid_frees
from leaktrace.analyze.leak_totals import column_leak_totals
from leaktrace.analyze.record_columns import NO_LEAK_KIND, NONE, ColumnRecords, RecordColumns
from leaktrace.analyze.signal_causes import signal_name
from leaktrace.analyze.stack_frames import StackFrames, runtime_api_name
from leaktrace.analyze.stack_ids import stable_id_prefix
from leaktrace.capture import format as fmt
from leaktrace.capture.distinct import distinct
from leaktrace.capture.id_rows import take_rows
from leaktrace.capture.reader import Capture, read_capture
from leaktrace.capture.stack_table import ALLOC_BYTES, ALLOC_COUNT, StackTable
from leaktrace.leak_kinds import DEFINITELY_LOST
from leaktrace.model import (
    Z95,
    Block,
    Estimate,
    Frame,
    KindTotal,
    LeakRecord,
    LoadedModule,
    Report,
    ScanInfo,
    Summary,
)
from leaktrace.symbolize import Symbolizer


def load_report(path: str, symbolizer: Symbolizer | None = None, *,
                with_addresses: bool = True) -> Report:
    """Read, symbolize and build; build_seconds covers all three."""
    started = time.monotonic()
    capture = read_capture(path)
    return build_report(capture, symbolizer, with_addresses=with_addresses, started=started)


def build_report(capture: Capture, symbolizer: Symbolizer | None = None, *,
                 with_addresses: bool = True, started: float | None = None) -> Report:
    """`with_addresses=False` skips the per-block list (faster with millions of blocks when
    no renderer will show it). `started` is a time.monotonic() value to count from."""
    started = time.monotonic() if started is None else started
    if symbolizer is None:
        expected = {m.path: m.build_id for m in capture.modules if m.build_id}
        symbolizer = Symbolizer(expected_build_ids=expected)
    # Millions of new objects and no cycles among them: the cycle collector would only walk
    # them again and again.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _build(capture, symbolizer, with_addresses, started)
    finally:
        if collecting:
            gc.enable()


def _build(capture: Capture, symbolizer: Symbolizer, with_addresses: bool,
           started: float) -> Report:
    groups = _group_blocks(capture, with_addresses)
    invalid_ids = [row.stack_id for row in capture.invalid_frees or ()]
    described = StackFrames(capture, np.concatenate([groups.stack_ids, invalid_ids])
                            if invalid_ids else groups.stack_ids, symbolizer)
    table = described.table
    every = _columns(capture, groups, described)
    notes = _notes(capture, groups, table) + symbolizer.notes
    mapping = np.isin(groups.kinds, list(fmt.MAPPING_KINDS))
    del groups  # the columns hold what the report needs of it
    if capture.scanned:
        heap = np.flatnonzero(~mapping)
        order = number_loss_records(every, heap)  # sets every.loss_records
        mapped_order = _largest_first(every, np.flatnonzero(mapping))
    else:
        order = _largest_first(every, np.arange(len(every)))
        mapped_order = np.zeros(0, dtype=np.int64)
    # Not heap blocks: no leak kind, no loss record; a few, kept as objects.
    mapped_regions = ColumnRecords(every.take(mapped_order)).materialized()
    columns = every.reorder(order)
    records = ColumnRecords(columns)

    header, process = capture.header, capture.process
    report = Report(
        source="leaktrace",
        program=process.executable if process else None,
        command=list(process.command_line) if process else [],
        pid=header.pid,
        start_time=header.start_time_ns / 1e9,
        end_time=header.capture_time_ns / 1e9,
        records=records,
        summary=_summary(capture, table, columns, mapped_regions),
        counters=dict(capture.counters),
        capture_path=os.path.abspath(capture.path),
        notes=notes,
        frame_totals=column_frame_totals(columns),
        mapped_regions=mapped_regions,
        scan=_scan_info(capture),
        captured_when=_captured_when(capture),
        modules=[LoadedModule(m.path, m.start, m.end, m.load_bias, m.build_id.hex())
                 for m in capture.modules],
        sample_mean_bytes=capture.sample_mean_bytes,
        fatal=describe_fatal(capture, symbolizer),
        invalid_frees=describe_invalid_frees(capture, described),
        invalid_frees_unrecorded=capture.invalid_frees_unrecorded,
    )
    report.build_seconds = time.monotonic() - started
    return report


def _columns(capture: Capture, groups: _Groups, described: StackFrames) -> RecordColumns:
    """One entry per group, in the groups' order."""
    table = described.table
    rows = table.rows_of(groups.stack_ids)
    has_stack = rows >= 0
    kind_names, kinds = _api_kinds(groups.kinds, rows, described.runtime_operators)
    leak_numbers = distinct(groups.leak_kinds)
    leak_kinds = np.searchsorted(leak_numbers, groups.leak_kinds)
    classified = (np.zeros(len(kinds), dtype=bool) if not capture.scanned else
                  (groups.leak_kinds != fmt.LEAK_UNSCANNED)
                  & ~np.isin(groups.kinds, list(fmt.MAPPING_KINDS)))
    leak_kinds[~classified] = NO_LEAK_KIND
    leak_kind_names = [fmt.leak_kind_name(k) for k in leak_numbers.tolist()]
    definitely = [name == DEFINITELY_LOST for name in leak_kind_names]
    lost = classified & np.array([*definitely, False], dtype=bool)[leak_kinds]
    indirect = np.where(lost, groups.indirect_bytes, 0)
    count = len(kinds)
    return RecordColumns(
        # Small numbers in small types: a million records' columns are 100 MB as it is.
        kind_names=kind_names, kinds=kinds.astype(np.int16),
        leak_kind_names=leak_kind_names, leak_kinds=leak_kinds.astype(np.int16),
        ids=_stable_ids(kind_names, kinds, rows, described),
        native_ids=groups.stack_ids.astype(np.int64), rows=rows.astype(np.int32),
        bytes=groups.bytes + indirect, own_bytes=groups.bytes, indirect_bytes=indirect,
        blocks=groups.blocks.astype(np.int64),
        alloc_counts=np.where(has_stack, table.totals[rows, ALLOC_COUNT], -1),
        alloc_bytes=np.where(has_stack, table.totals[rows, ALLOC_BYTES], -1),
        oldest_ages=round_micro(groups.oldest_ages),
        loss_records=np.zeros(count, dtype=np.int32),
        growth_rates=np.full(count, math.nan),
        growth_verdicts=np.full(count, NONE, dtype=np.int8), growth_verdict_names=[],
        suppressed=np.full(count, NONE, dtype=np.int32), suppression_names=[],
        addresses=groups.addresses or None, estimates=groups.estimates or None,
        frames=described)


def _api_kinds(kind_numbers: np.ndarray, rows: np.ndarray,
               operators: dict[int, str]) -> tuple[list[str], np.ndarray]:
    """Each group's API: the block kind's name, or for a stack that began in the C++ runtime's
    operator new (left out of its frames: StackFrames), that operator's name, as valgrind
    names the API it replaced. Returns the names and each group's index into them."""
    distinct_numbers = distinct(kind_numbers)
    names = [fmt.kind_name(k) for k in distinct_numbers.tolist()]
    kinds = np.searchsorted(distinct_numbers, kind_numbers)
    if not operators:
        return names, kinds
    index_of = {name: i for i, name in enumerate(names)}
    at = np.flatnonzero(np.isin(rows, np.fromiter(operators, dtype=np.int64)))
    for i, row, number in zip(at.tolist(), rows[at].tolist(), kind_numbers[at].tolist(),
                              strict=True):
        name = runtime_api_name(operators[row], number == fmt.KIND_NEW_ARRAY)
        kinds[i] = index_of.setdefault(name, len(index_of))
    return list(index_of), kinds


def _stable_ids(kind_names: list[str], kinds: np.ndarray, rows: np.ndarray,
                described: StackFrames) -> np.ndarray:
    """stable_stack_id_of_bytes of each group, as the number its 8 hex digits spell."""
    lib = native.usable(len(kinds))
    if lib is not None:
        table = described.table
        ids = native.stable_ids(lib, [stable_id_prefix(name) for name in kind_names],
                                described.id_parts(), np.asarray(table.addresses), kinds,
                                take_rows(table.starts, rows, 0),
                                take_rows(table.depths, rows, 0))
        if ids is not None:
            return ids
    # Each kind's prefix hashed once; a record's hash is a copy of it, updated.
    hashes = [blake2b(stable_id_prefix(name), digest_size=4) for name in kind_names]
    # In the order of the stacks in the file: their words are then read in long runs.
    order = np.argsort(take_rows(described.table.starts, rows), kind="stable")
    texts = described.id_texts_of_rows(rows[order].tolist())
    ids = np.empty(len(kinds), dtype=np.uint32)
    step = 1 << 16  # digests collected a chunk at a time: a million bytes objects are 45 MB
    for begin in range(0, len(order), step):
        chosen = order[begin:begin + step]
        digests = []
        for kind, text in zip(kinds[chosen].tolist(), islice(texts, len(chosen)),
                              strict=True):
            digest = hashes[kind].copy()
            digest.update(text)
            digests.append(digest.digest())
        ids[chosen] = np.frombuffer(b"".join(digests), dtype=">u4")
    return ids


def round_micro(values: np.ndarray) -> np.ndarray:
    """Python's round(value, 6) of each float64 (NaN stays NaN), by numpy: rint of value x
    10^6 (one rounding, then an exact division: the double nearest the decimal, as round
    gives). Only where that product is too close to a tie for its rounding error, or too large
    to hold whole numbers, is Python's round asked (a million calls cost a second)."""
    values = np.asarray(values, dtype=np.float64)
    scaled = values * 1e6
    result = np.rint(scaled) / 1e6
    with np.errstate(invalid="ignore"):
        doubtful = ~(np.abs(np.abs(scaled - np.floor(scaled)) - 0.5)
                     > 4 * np.spacing(np.abs(scaled))) | ~(np.abs(scaled) < 2.0 ** 52)
    doubtful &= ~np.isnan(values)
    at = np.flatnonzero(doubtful)
    result[at] = [round(value, 6) for value in values[at].tolist()]
    return result


def _largest_first(columns: RecordColumns, chosen: np.ndarray) -> np.ndarray:
    """`chosen` sorted as (-bytes, -blocks, stack id, API kind), a stable sort."""
    return chosen[np.lexsort((kind_ranks(columns)[chosen], columns.ids[chosen],
                              -columns.blocks[chosen], -columns.bytes[chosen]))]


# How the report names the moment of the capture ("still live at exit").
_MOMENTS = {
    fmt.REASON_EXIT: "at exit",
    fmt.REASON_SIGNAL: "when a signal ended the process",
    fmt.REASON_REPORT: "at the on-demand report",
    fmt.REASON_SCAN: "at the on-demand scan",
    fmt.REASON_MTRACE: "at the mtrace() checkpoint",
    fmt.REASON_MUNTRACE: "at the muntrace() checkpoint",
    fmt.REASON_DETACH: "at detach",
    fmt.REASON_EXEC: "when the process exec'd another program",
    fmt.REASON_SANDBOX: "when the program installed a seccomp filter",
    fmt.REASON_FILE_LIMIT: "when the program set its file size limit to 0",
}


def _captured_when(capture: Capture) -> str:
    if capture.session is not None:
        return _MOMENTS.get(capture.session.reason, "at capture")
    return "at exit" if capture.header.final else "at capture"


@dataclass
class _Groups:
    """Live blocks grouped by (API kind, leak kind, stack id), one array entry per group, in
    that key's order."""

    kinds: np.ndarray
    leak_kinds: np.ndarray  # fmt.LEAK_UNSCANNED without a scan
    stack_ids: np.ndarray
    blocks: np.ndarray
    bytes: np.ndarray
    indirect_bytes: np.ndarray  # what the definitely lost blocks among them own (LEAK_GROUPS)
    oldest_ages: np.ndarray  # seconds; NaN when unknown
    addresses: list[list[Block]]  # per group, in file order; empty unless asked for
    estimates: list[Estimate]  # sampling mode only: blocks and bytes are then estimates


def _sampling_weights(capture: Capture) -> np.ndarray | None:
    """Sampling mode: per block, 1 / (its chance of being sampled), 1 - exp(-size / mean).
    Mappings are always recorded: weight 1. None in exact mode."""
    mean = capture.sample_mean_bytes
    if not mean:
        return None
    blocks = capture.blocks
    sizes = np.maximum(blocks["size"].astype(np.float64), 1.0)
    weights = 1.0 / -np.expm1(-sizes / mean)
    weights[~_heap_blocks(blocks["kind"])] = 1.0
    return weights


def _exact_sums(bins: np.ndarray, values: np.ndarray, length: int) -> np.ndarray:
    """Per bin, the exact sum of uint64 `values` (bincount adds in float64: exact for each
    24-bit half-word sum below 2^53, i.e. for any total below 2^77)."""
    low = np.zeros(length, dtype=np.int64)
    high = np.zeros(length, dtype=np.int64)
    # A million values at a time: float copies of ten million would be 160 MB more at peak.
    step = 1 << 20
    for begin in range(0, len(values), step):
        chunk, chunk_bins = values[begin:begin + step], bins[begin:begin + step]
        low += np.bincount(chunk_bins, weights=(chunk & np.uint64(0xFFFFFF)).astype(
            np.float64), minlength=length).astype(np.int64)
        high += np.bincount(chunk_bins, weights=(chunk >> np.uint64(24)).astype(np.float64),
                            minlength=length).astype(np.int64)
    return (high << 24) + low


def _group_blocks(capture: Capture, with_addresses: bool) -> _Groups:
    """Vectorized without sorting millions of keys: a group number per block (dense stack
    numbers within each (kind, leak kind) pair present), then bincount sums per group.
    Temporaries of the size of the block list are few and dropped early: a capture may hold
    tens of millions of blocks."""
    blocks = capture.blocks
    count = len(blocks)
    top = int(blocks["stack_id"].max()) if count else -1
    sparse = top >= 4 * count + (1 << 21)
    pair = (blocks["kind"].astype(np.uint16) << 8) | blocks["leak_kind"]
    pairs = np.flatnonzero(np.bincount(pair)) if count else np.zeros(0, dtype=np.int64)
    firsts: list[np.ndarray] = []  # per pair: its groups' dense stack numbers
    if len(pairs) == 1 and not sparse:  # the usual case: one API, one leak kind
        stack_values = np.arange(top + 1)
        group, first = _one_pair_groups(blocks["stack_id"], top + 1)
        firsts.append(first)
        del pair
    else:
        dense = blocks["stack_id"].astype(np.int64)
        if sparse:
            stack_values, dense = np.unique(dense, return_inverse=True)
        else:
            stack_values = np.arange(top + 1)
        group = np.zeros(count, dtype=np.int64)  # group number of each block
        for p in pairs.tolist():
            chosen = pair == p
            members = dense[chosen]
            present = np.bincount(members, minlength=len(stack_values)) > 0
            group[chosen] = (np.cumsum(present) - 1 + sum(len(f) for f in firsts))[members]
            firsts.append(np.flatnonzero(present))
        del dense, pair
    groups = sum(len(f) for f in firsts)
    pair_of_group = np.repeat(pairs, [len(f) for f in firsts]) if firsts else \
        np.zeros(0, dtype=np.int64)
    sizes = blocks["size"]
    run_ns = capture.header.capture_monotonic_ns - capture.header.start_monotonic_ns
    alloc_ns = blocks["alloc_time_ns"]
    # An allocation time past the capture cannot be right: its age is unknown (NaN), not
    # negative. The oldest block of a group is the one allocated first.
    first_ns = np.full(groups, np.iinfo(np.uint64).max, dtype=np.uint64)
    valid = alloc_ns <= run_ns
    if valid.all():
        np.minimum.at(first_ns, group, alloc_ns)
    else:
        np.minimum.at(first_ns, group[valid], alloc_ns[valid])
    known = first_ns <= run_ns
    oldest = np.full(groups, np.nan)
    oldest[known] = (run_ns - first_ns[known].astype(np.float64)) / 1e9
    result = _Groups(
        kinds=pair_of_group >> 8, leak_kinds=pair_of_group & 0xFF,
        stack_ids=stack_values[np.concatenate(firsts)] if firsts else np.zeros(0, np.int64),
        blocks=np.bincount(group, minlength=groups),
        bytes=_exact_sums(group, sizes, groups),
        indirect_bytes=(_exact_sums(group, _indirect_bytes(capture), groups)
                        if len(capture.leak_groups) else np.zeros(groups, dtype=np.int64)),
        oldest_ages=oldest, addresses=[], estimates=[])
    if with_addresses and groups:
        order = np.argsort(group, kind="stable")
        ends = np.cumsum(result.blocks).tolist()
        ages = np.where(valid, (run_ns - alloc_ns.astype(np.float64)) / 1e9, np.nan)
        picked = blocks[order]
        every = [Block(a, s, _age(age)) for a, s, age in zip(
            picked["address"].tolist(), picked["size"].tolist(), ages[order].tolist(),
            strict=True)]
        result.addresses = [every[end - n:end] for end, n in zip(
            ends, result.blocks.tolist(), strict=True)]
    weights = _sampling_weights(capture)
    if weights is not None:
        sizes_f = np.asarray(sizes, dtype=np.float64)
        est_blocks = np.bincount(group, weights=weights, minlength=groups)
        est_bytes = np.bincount(group, weights=sizes_f * weights, minlength=groups)
        # Horvitz-Thompson: Var = sum of size^2 (1 - p) / p^2 = size^2 w (w - 1).
        variances = np.bincount(group, weights=sizes_f * sizes_f * weights * (weights - 1.0),
                                minlength=groups)
        for sampled, exact_bytes, estimate, variance in zip(
                result.blocks.tolist(), result.bytes.tolist(), est_bytes.tolist(),
                variances.tolist(), strict=True):
            half = Z95 * variance ** 0.5
            result.estimates.append(Estimate(
                sampled_blocks=sampled, bytes_low=max(round(estimate - half), exact_bytes),
                bytes_high=round(estimate + half), bytes_variance=variance))
        result.blocks = np.array([round(b) for b in est_blocks.tolist()], dtype=np.int64)
        result.bytes = np.array([round(b) for b in est_bytes.tolist()], dtype=np.int64)
        result.indirect_bytes[:] = 0  # owned blocks are estimated in their own records
    return result


def _one_pair_groups(stack_ids: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Each block's group number when every block has the same (kind, leak kind): the rank
    of its stack id among those present; and the ids present. A million ids at a time: an
    int64 copy of ten million (what numpy's indexing would make) is 80 MB of new pages, which
    cost the kernel more than the rest of the step."""
    step = 1 << 20
    present = np.zeros(length, dtype=bool)
    for begin in range(0, len(stack_ids), step):
        present[stack_ids[begin:begin + step]] = True
    rank = np.cumsum(present) - 1
    group = np.empty(len(stack_ids), dtype=np.int64)
    for begin in range(0, len(stack_ids), step):
        group[begin:begin + step] = rank[stack_ids[begin:begin + step]]
    return group, np.flatnonzero(present)


def _indirect_bytes(capture: Capture) -> np.ndarray:
    """Per block: the indirect bytes LEAK_GROUPS gives its address (0 for most blocks)."""
    blocks, groups = capture.blocks, capture.leak_groups
    owned = np.zeros(len(blocks), dtype=np.uint64)
    if len(groups) == 0:
        return owned
    group_order = np.argsort(groups["address"])
    group_addresses = groups["address"][group_order]
    at = np.searchsorted(group_addresses, blocks["address"])
    at_clipped = np.minimum(at, len(group_addresses) - 1)
    found = ((at < len(group_addresses)) & (group_addresses[at_clipped] == blocks["address"])
             & (blocks["leak_kind"] == fmt.LEAK_DEFINITELY_LOST))
    owned[found] = groups["indirect_bytes"][group_order][at_clipped[found]]
    return owned


def _age(seconds: float) -> float | None:
    return None if math.isnan(seconds) else round(seconds, 6)


def symbolize_stacks(capture: Capture, stack_ids: set[int], symbolizer: Symbolizer
                      ) -> tuple[dict[int, tuple[list[Frame], bytes]], dict[int, str]]:
    """For each stack the capture has: its symbolized frames, and the text its stable id is
    hashed from, encoded (analyze/stack_ids.py); and for the stacks that began in the C++
    runtime's operator new (left out of their frames), that operator's name."""
    described = StackFrames(capture, stack_ids, symbolizer)
    result = {}
    for stack_id in stack_ids:
        found = described.frames_and_id_text(stack_id)
        if found is not None:
            result[stack_id] = found
    ids = described.table.ids
    operators = {int(ids[row]): name for row, name in described.runtime_operators.items()}
    return result, operators


def _summary(capture: Capture, table: StackTable, columns: RecordColumns,
             mapped_regions: list[LeakRecord]) -> Summary:
    by_kind: dict[str, KindTotal] = {}
    for number, name in enumerate(columns.kind_names):
        chosen = columns.kinds == number
        if chosen.any():
            by_kind[name] = KindTotal(int(columns.blocks[chosen].sum()),
                                      int(columns.own_bytes[chosen].sum()))
    if columns.estimates is not None:  # added up in order, as the records come
        for kind, estimate in zip(columns.kinds.tolist(), columns.estimates, strict=True):
            by_kind[columns.kind_names[kind]].add_estimate(estimate)
    for r in mapped_regions:
        total = by_kind.get(r.kind)
        if total is None:
            total = by_kind[r.kind] = KindTotal()
        total.blocks += r.blocks
        total.bytes += r.own_bytes
        total.add_estimate(r.estimate)
    summary = Summary(
        live_blocks=sum(t.blocks for t in by_kind.values()),
        live_bytes=sum(t.bytes for t in by_kind.values()),
        by_kind=dict(sorted(by_kind.items(), key=lambda kv: (-kv[1].bytes, kv[0]))),
        total_allocations=_exact_total(table.totals[:, ALLOC_COUNT]) if len(table) else None,
        total_allocated_bytes=(_exact_total(table.totals[:, ALLOC_BYTES]) if len(table)
                               else None),
    )
    session = capture.session
    if session is not None and session.baseline_ns and not session.only_since_checkpoint:
        born_since = (capture.blocks["flags"] & fmt.BLOCK_FLAG_SINCE_BASELINE) != 0
        summary.since_baseline = KindTotal(int(born_since.sum()),
                                           int(capture.blocks["size"][born_since].sum()))
        summary.baseline_seconds = session.baseline_ns / 1e9
    if capture.scanned:
        summary.leaks, summary.suppressed = column_leak_totals(
            columns, _heuristic_totals(capture))
        summary.mapped = KindTotal(sum(r.blocks for r in mapped_regions),
                                   sum(r.bytes for r in mapped_regions))
    return summary


def _exact_total(values: np.ndarray) -> int:
    """The sum of non-negative int64 values, exact past 2^63 (by 32-bit halves: a list of a
    million Python ints would cost 70 MB)."""
    low = int((values & 0xFFFFFFFF).sum())
    return (int((values >> 32).sum()) << 32) + low


def _heuristic_totals(capture: Capture) -> dict[str, KindTotal]:
    """Heap blocks a heuristic made reachable, per heuristic, in the header's order."""
    blocks = capture.blocks
    heuristics = blocks["heuristic"]
    if not (heuristics != fmt.HEURISTIC_NONE).any():
        return {}  # the usual case: ten million blocks are looked at once, not per heuristic
    heap = _heap_blocks(blocks["kind"])
    totals = {}
    for number, name in fmt.HEURISTICS.items():
        if number == fmt.HEURISTIC_NONE:
            continue
        chosen = heap & (heuristics == number)
        if chosen.any():
            totals[name] = KindTotal(int(chosen.sum()), int(blocks["size"][chosen].sum()))
    return totals


def _heap_blocks(kinds: np.ndarray) -> np.ndarray:
    """Per block: not a memory mapping. (np.isin of ten million values sorts copies of
    them.)"""
    heap = np.ones(len(kinds), dtype=bool)
    for kind in fmt.MAPPING_KINDS:
        heap &= kinds != kind
    return heap


def _scan_info(capture: Capture) -> ScanInfo | None:
    scan = capture.scan
    if scan is None:
        return None
    return ScanInfo(seconds=scan.duration_ns / 1e9, bytes_scanned=scan.bytes_scanned,
                    root_bytes=scan.root_bytes, threads_stopped=scan.threads_stopped,
                    threads_not_stopped=scan.threads_not_stopped,
                    heuristics=scan.heuristics)


def _notes(capture: Capture, groups: _Groups, table: StackTable) -> list[str]:
    """What the user must know to trust (or distrust) the numbers."""
    c = capture.counters
    notes = list(capture.notes)
    if c.get("fatal_signal"):
        notes.append(f"the capture was written as {signal_name(c['fatal_signal'])} ended the "
                     "program")
    if capture.sample_mean_bytes:
        notes.append(
            f"sampling mode (--sample {capture.sample_mean_bytes}): a block was recorded with "
            f"probability 1 - exp(-size/{capture.sample_mean_bytes}); bytes and blocks are "
            "estimates (each sampled block divided by that probability), shown with their 95% "
            "interval; leak kinds are the sampled blocks' (the scan follows pointers through "
            "the blocks of glibc's heap that were not sampled too: a block that only lost "
            "blocks point to is indirectly lost even when they, not sampled, are not shown), "
            "and a definitely lost record's indirect bytes are not added to it; per-backtrace "
            "allocation totals count sampled allocations only")
    if c.get("scan_unrecorded_missed"):
        notes.append("the scan had no memory for the heap's blocks without a record (not "
                     "sampled, or allocated before the attach): in sampling mode a sampled block "
                     "that only such blocks hold shows as lost; attached, the heaps were taken "
                     "as roots, so a block that only lost ones hold shows as reachable")
    if not capture.header.final:
        notes.append("this capture is a snapshot taken while the program ran, not at its exit")
    if c.get("dropped_blocks"):
        notes.append(f"{c['dropped_blocks']:,} blocks were not recorded (the shim ran out of "
                     "memory): live totals are too low")
    if c.get("dropped_stacks"):
        notes.append(f"{c['dropped_stacks']:,} allocations have no backtrace (the stack table "
                     "was full, or the shim had no memory left for it)")
    if c.get("truncated_stacks"):
        depth = c.get("max_depth")
        at = f" at {depth} frames" if depth else ""
        notes.append(f"{c['truncated_stacks']:,} allocation(s) had their backtrace cut{at}: "
                     "rerun with a larger --max-depth to see their outer callers")
    scan = capture.scan
    if scan is not None and scan.threads_not_stopped:
        notes.append(f"{scan.threads_not_stopped} thread(s) block the scan signal and were "
                     "not stopped: their registers were not read, but for a system call's "
                     "arguments (a block only they point to may show as lost), and their "
                     "stacks were read from where they waited in a system call, or whole "
                     "where they ran (a lost block may show as reachable)")
    unclassified = (~np.isin(groups.kinds, list(fmt.MAPPING_KINDS))
                    & (groups.leak_kinds == fmt.LEAK_UNSCANNED))
    if capture.scanned and unclassified.any():
        notes.append(f"{int(groups.blocks[unclassified].sum()):,} heap blocks were not "
                     "classified by the reachability scan: they have no leak kind")
    stack_ids = distinct(groups.stack_ids)
    missing = stack_ids[(table.rows_of(stack_ids) < 0) & (stack_ids != fmt.NO_STACK_ID)]
    if len(missing):
        notes.append(f"{len(missing)} stack ids used by blocks are missing from the STACKS "
                     "section: those blocks show no backtrace")
    return notes
