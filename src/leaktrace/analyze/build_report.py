"""Capture -> model.Report: group live blocks by (API kind, backtrace) and, when a reachability
scan classified them, by leak kind too (valgrind's loss records); symbolize the backtraces,
add up totals, and say what the counters mean for the numbers."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import numpy as np

from leaktrace.analyze.frame_totals import compute_frame_totals
from leaktrace.analyze.leak_totals import leak_totals
from leaktrace.analyze.loss_records import number_loss_records
from leaktrace.analyze.module_map import ModuleMap
from leaktrace.analyze.stack_ids import stable_stack_id
from leaktrace.capture import format as fmt
from leaktrace.capture.reader import Capture, Stack, read_capture
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
    groups = _group_blocks(capture, with_addresses)
    stack_frames = symbolize_stacks(capture, {g.stack_id for g in groups}, symbolizer)

    records: list[LeakRecord] = []
    mapped_regions: list[LeakRecord] = []
    for g in groups:
        stack = capture.stacks.get(g.stack_id)
        kind = fmt.kind_name(g.kind)
        frames, id_parts = stack_frames.get(g.stack_id, ([], []))
        record = LeakRecord(
            stack_id=stable_stack_id(kind, id_parts),
            kind=kind,
            bytes=g.bytes,
            blocks=g.blocks,
            frames=[Frame(**vars(f)) for f in frames],  # records never share frame objects
            addresses=g.addresses,
            total_allocations=stack.alloc_count if stack else None,
            total_allocated_bytes=stack.alloc_bytes if stack else None,
            oldest_age_seconds=g.oldest_age,
            native_stack_id=g.stack_id,
            estimate=g.estimate,
        )
        if capture.scanned and g.kind in fmt.MAPPING_KINDS:
            mapped_regions.append(record)  # not a heap block: no leak kind, no loss record
            continue
        if capture.scanned and g.leak_kind != fmt.LEAK_UNSCANNED:
            record.leak_kind = fmt.leak_kind_name(g.leak_kind)
            record.direct_bytes = g.bytes
            record.indirect_bytes = g.indirect_bytes if record.leak_kind == DEFINITELY_LOST else 0
            record.bytes = record.direct_bytes + record.indirect_bytes
        records.append(record)
    if capture.scanned:
        records = number_loss_records(records)
    else:
        records.sort(key=lambda r: (-r.bytes, -r.blocks, r.stack_id, r.kind))
    mapped_regions.sort(key=lambda r: (-r.bytes, -r.blocks, r.stack_id, r.kind))

    header, process = capture.header, capture.process
    report = Report(
        source="leaktrace",
        program=process.executable if process else None,
        command=list(process.command_line) if process else [],
        pid=header.pid,
        start_time=header.start_time_ns / 1e9,
        end_time=header.capture_time_ns / 1e9,
        records=records,
        summary=_summary(capture, records, mapped_regions),
        counters=dict(capture.counters),
        capture_path=os.path.abspath(capture.path),
        notes=_notes(capture, groups) + symbolizer.notes,
        frame_totals=compute_frame_totals(records),
        mapped_regions=mapped_regions,
        scan=_scan_info(capture),
        captured_when=_captured_when(capture),
        modules=[LoadedModule(m.path, m.start, m.end, m.load_bias, m.build_id.hex())
                 for m in capture.modules],
        sample_mean_bytes=capture.sample_mean_bytes,
    )
    report.build_seconds = time.monotonic() - started
    return report


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
}


def _captured_when(capture: Capture) -> str:
    if capture.session is not None:
        return _MOMENTS.get(capture.session.reason, "at capture")
    return "at exit" if capture.header.final else "at capture"


@dataclass
class _Group:
    kind: int
    leak_kind: int  # fmt.LEAK_UNSCANNED without a scan
    stack_id: int
    blocks: int
    bytes: int
    indirect_bytes: int  # what the definitely lost blocks among them own (LEAK_GROUPS)
    oldest_age: float | None
    addresses: list[Block]
    estimate: Estimate | None = None  # sampling mode: blocks and bytes are estimates


def _sampling_weights(capture: Capture) -> np.ndarray | None:
    """Sampling mode: per block, 1 / (its chance of being sampled), 1 - exp(-size / mean).
    Mappings are always recorded: weight 1. None in exact mode."""
    mean = capture.sample_mean_bytes
    if not mean:
        return None
    blocks = capture.blocks
    sizes = np.maximum(blocks["size"].astype(np.float64), 1.0)
    weights = 1.0 / -np.expm1(-sizes / mean)
    weights[np.isin(blocks["kind"], list(fmt.MAPPING_KINDS))] = 1.0
    return weights


def _group_blocks(capture: Capture, with_addresses: bool) -> list[_Group]:
    """Vectorized: sort the blocks by (kind, leak kind, stack id) once, then sum each run."""
    blocks = capture.blocks
    if len(blocks) == 0:
        return []
    keys = ((blocks["kind"].astype(np.uint64) << np.uint64(40))
            | (blocks["leak_kind"].astype(np.uint64) << np.uint64(32)) | blocks["stack_id"])
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(sorted_keys)) + 1))
    ends = np.append(starts[1:], len(blocks))
    sizes = blocks["size"][order]
    byte_sums = np.add.reduceat(sizes, starts)
    indirect_sums = np.add.reduceat(_indirect_bytes(capture)[order], starts)
    run_ns = capture.header.capture_monotonic_ns - capture.header.start_monotonic_ns
    alloc_ns = blocks["alloc_time_ns"][order]
    # An allocation time past the capture cannot be right: its age is unknown (NaN), not
    # negative.
    ages = np.where(alloc_ns <= run_ns, (run_ns - alloc_ns.astype(np.float64)) / 1e9, np.nan)
    oldest = np.fmax.reduceat(ages, starts)
    weights = _sampling_weights(capture)
    if weights is not None:
        w = weights[order]
        sizes_f = sizes.astype(np.float64)
        est_blocks = np.add.reduceat(w, starts)
        est_bytes = np.add.reduceat(sizes_f * w, starts)
        # Horvitz-Thompson: Var = sum of size^2 (1 - p) / p^2 = size^2 w (w - 1).
        variances = np.add.reduceat(sizes_f * sizes_f * w * (w - 1.0), starts)

    groups = []
    for i, (start, end) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        key = int(sorted_keys[start])
        addresses = []
        if with_addresses:
            picked = blocks[order[start:end]]
            addresses = [Block(a, s, _age(age)) for a, s, age in zip(
                picked["address"].tolist(), picked["size"].tolist(),
                ages[start:end].tolist(), strict=True)]
        group = _Group(kind=key >> 40, leak_kind=(key >> 32) & 0xFF,
                       stack_id=key & 0xFFFFFFFF, blocks=end - start,
                       bytes=int(byte_sums[i]), indirect_bytes=int(indirect_sums[i]),
                       oldest_age=_age(float(oldest[i])), addresses=addresses)
        if weights is not None:
            estimate, variance = float(est_bytes[i]), float(variances[i])
            half = Z95 * variance ** 0.5
            group.estimate = Estimate(sampled_blocks=end - start,
                                      bytes_low=max(round(estimate - half), group.bytes),
                                      bytes_high=round(estimate + half),
                                      bytes_variance=variance)
            group.blocks, group.bytes = round(float(est_blocks[i])), round(estimate)
            group.indirect_bytes = 0  # owned blocks are estimated in their own records
        groups.append(group)
    return groups


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
    return None if np.isnan(seconds) else round(seconds, 6)


def symbolize_stacks(capture: Capture, stack_ids: set[int], symbolizer: Symbolizer
                      ) -> dict[int, tuple[list[Frame], list[tuple[str, int]]]]:
    """For each stack: its symbolized frames, and the (module name, return offset) pairs its
    stable id is made of. Each distinct return address is located and symbolized once: a big
    capture has a million stacks but only thousands of call sites."""
    modules = ModuleMap(capture.modules)
    stacks = [(stack_id, capture.stacks[stack_id]) for stack_id in stack_ids
              if stack_id in capture.stacks]
    # A return address points after the call; the call itself is one byte earlier, which
    # matters when the call is the last instruction of an inlined range.
    place: dict[int, tuple[str | None, int]] = {}  # ra -> (module path or None, lookup)
    for _, stack in stacks:
        for ra in stack.return_addresses:
            if ra not in place:
                module = modules.find(ra)
                place[ra] = (None, ra) if module is None else (module.path,
                                                              ra - module.load_bias - 1)
    resolved = symbolizer.resolve({(path, lookup) for path, lookup in place.values()
                                   if path is not None})
    per_ra: dict[int, tuple[list[Frame], tuple[str, int]]] = {}
    for ra, (path, lookup) in place.items():
        if path is None:
            per_ra[ra] = ([Frame(address=ra)], ("?", ra))
            continue
        frames = resolved[(path, lookup)]
        for frame in frames:
            frame.address = ra
        per_ra[ra] = (frames, (os.path.basename(path), lookup + 1))

    result: dict[int, tuple[list[Frame], list[tuple[str, int]]]] = {}
    for stack_id, stack in stacks:
        stack_frames: list[Frame] = []
        id_parts: list[tuple[str, int]] = []
        for ra in stack.return_addresses:
            frame_list, part = per_ra[ra]
            stack_frames.extend(frame_list)
            id_parts.append(part)
        result[stack_id] = (stack_frames, id_parts)
    return result


def _summary(capture: Capture, records: list[LeakRecord],
             mapped_regions: list[LeakRecord]) -> Summary:
    by_kind: dict[str, KindTotal] = {}
    for r in records + mapped_regions:
        total = by_kind.setdefault(r.kind, KindTotal())
        total.blocks += r.blocks
        total.bytes += r.own_bytes
        total.add_estimate(r.estimate)
    stack_list: list[Stack] = list(capture.stacks.values())
    summary = Summary(
        live_blocks=sum(t.blocks for t in by_kind.values()),
        live_bytes=sum(t.bytes for t in by_kind.values()),
        by_kind=dict(sorted(by_kind.items(), key=lambda kv: (-kv[1].bytes, kv[0]))),
        total_allocations=sum(s.alloc_count for s in stack_list) if stack_list else None,
        total_allocated_bytes=sum(s.alloc_bytes for s in stack_list) if stack_list else None,
    )
    session = capture.session
    if session is not None and session.baseline_ns and not session.only_since_checkpoint:
        born_since = (capture.blocks["flags"] & fmt.BLOCK_FLAG_SINCE_BASELINE) != 0
        summary.since_baseline = KindTotal(int(born_since.sum()),
                                           int(capture.blocks["size"][born_since].sum()))
        summary.baseline_seconds = session.baseline_ns / 1e9
    if capture.scanned:
        summary.leaks, summary.suppressed = leak_totals(records, _heuristic_totals(capture))
        summary.mapped = KindTotal(sum(r.blocks for r in mapped_regions),
                                   sum(r.bytes for r in mapped_regions))
    return summary


def _heuristic_totals(capture: Capture) -> dict[str, KindTotal]:
    """Heap blocks a heuristic made reachable, per heuristic, in the header's order."""
    blocks = capture.blocks
    heap = ~np.isin(blocks["kind"], list(fmt.MAPPING_KINDS))
    totals = {}
    for number, name in fmt.HEURISTICS.items():
        if number == fmt.HEURISTIC_NONE:
            continue
        chosen = heap & (blocks["heuristic"] == number)
        if chosen.any():
            totals[name] = KindTotal(int(chosen.sum()), int(blocks["size"][chosen].sum()))
    return totals


def _scan_info(capture: Capture) -> ScanInfo | None:
    scan = capture.scan
    if scan is None:
        return None
    return ScanInfo(seconds=scan.duration_ns / 1e9, bytes_scanned=scan.bytes_scanned,
                    root_bytes=scan.root_bytes, threads_stopped=scan.threads_stopped,
                    threads_not_stopped=scan.threads_not_stopped,
                    heuristics=scan.heuristics)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _notes(capture: Capture, groups: list[_Group]) -> list[str]:
    """What the user must know to trust (or distrust) the numbers."""
    c = capture.counters
    notes = list(capture.notes)
    if c.get("fatal_signal"):
        notes.append(f"the capture was written as {_signal_name(c['fatal_signal'])} ended the "
                     "program")
    if capture.sample_mean_bytes:
        notes.append(
            f"sampling mode (--sample {capture.sample_mean_bytes}): a block was recorded with "
            f"probability 1 - exp(-size/{capture.sample_mean_bytes}); bytes and blocks are "
            "estimates (each sampled block divided by that probability), shown with their 95% "
            "interval; leak kinds come from the reachability scan of the sampled blocks only, "
            "and a definitely lost record's indirect bytes are not added to it; per-backtrace "
            "allocation totals count sampled allocations only")
    if not capture.header.final:
        notes.append("this capture is a snapshot taken while the program ran, not at its exit")
    if c.get("dropped_blocks"):
        notes.append(f"{c['dropped_blocks']:,} blocks were not recorded (the shim ran out of "
                     "memory): live totals are too low")
    if c.get("dropped_stacks"):
        notes.append(f"{c['dropped_stacks']:,} allocations have no backtrace (the stack table "
                     "was full)")
    if c.get("truncated_stacks"):
        depth = c.get("max_depth")
        at = f" at {depth} frames" if depth else ""
        notes.append(f"{c['truncated_stacks']:,} backtrace(s) were cut{at}: rerun with a "
                     "larger --max-depth to see their outer callers")
    scan = capture.scan
    if scan is not None and scan.threads_not_stopped:
        notes.append(f"{scan.threads_not_stopped} thread(s) block the scan signal: their "
                     "registers were not read and their whole stacks counted as roots, so "
                     "some lost blocks may show as reachable")
    unclassified = [g for g in groups if capture.scanned and g.kind not in fmt.MAPPING_KINDS
                    and g.leak_kind == fmt.LEAK_UNSCANNED]
    if unclassified:
        notes.append(f"{sum(g.blocks for g in unclassified):,} heap blocks were not classified "
                     "by the reachability scan: they have no leak kind")
    missing = sorted({g.stack_id for g in groups} - capture.stacks.keys() - {fmt.NO_STACK_ID})
    if missing:
        notes.append(f"{len(missing)} stack ids used by blocks are missing from the STACKS "
                     "section: those blocks show no backtrace")
    return notes
