"""Build the leaktrace Report for an mtrace log: blocks still live, grouped by API and caller,
or by API and full backtrace when the log has leaktrace's backtrace extension."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import replace

from leaktrace.analyze.stack_ids import stable_stack_id
from leaktrace.model import Block, Frame, KindTotal, LeakRecord, Report, Summary
from leaktrace.sources.mtrace_callers import CallerResolver, caller_frame
from leaktrace.sources.mtrace_log import AnomalyKind, LiveBlock, MtraceLog, Stack


def _group_key(api: str, caller: str, stack: Stack | None) -> tuple[str, object]:
    return (api, stack) if stack else (api, caller)


def _stack_id(api: str, caller: str, stack: Stack | None) -> str:
    """Stable across runs: module file names and module offsets, never runtime addresses
    (the capture's scheme, so the same backtrace gets the same id from either source)."""
    if stack:
        return stable_stack_id(api, [(os.path.basename(f.module), f.offset) for f in stack])
    # glibc's caller text is already module-relative; drop the directory it was run from
    text = caller.rsplit("/", 1)[-1]
    return hashlib.blake2b(os.fsencode(f"{api}|{text}"), digest_size=4).hexdigest()


def _stack_frames(stack: Stack, resolved: Mapping[tuple[str, int], list[Frame]]) -> list[Frame]:
    frames: list[Frame] = []
    for entry in stack:
        symbolized = resolved.get((entry.module, entry.offset))
        if symbolized:
            frames.extend(
                replace(frame, address=entry.address, module=entry.module, offset=entry.offset)
                for frame in symbolized
            )
        else:
            frames.append(Frame(address=entry.address, module=entry.module, offset=entry.offset))
    return frames


def build_report(
    log: MtraceLog,
    resolver: CallerResolver,
    *,
    log_path: str,
) -> Report:
    groups: dict[tuple[str, object], list[LiveBlock]] = {}
    for block in log.live:
        groups.setdefault(_group_key(block.api, block.caller, block.stack), []).append(block)

    caller_frames = resolver.resolve(
        {blocks[0].caller for blocks in groups.values()}, call_site=True
    )
    stack_entries = {
        (entry.module, entry.offset)
        for blocks in groups.values()
        for entry in (blocks[0].stack or ())
    }
    stack_frames = resolver.resolve_backtrace_entries(stack_entries)

    totals: dict[tuple[str, object], list[int]] = {}
    for (api, caller, stack), total in log.totals.items():
        summed = totals.setdefault(_group_key(api, caller, stack), [0, 0])
        summed[0] += total.allocations
        summed[1] += total.bytes

    records: list[LeakRecord] = []
    summary = Summary()
    for key, blocks in groups.items():
        first = blocks[0]
        if first.stack:
            frames = _stack_frames(first.stack, stack_frames)
        else:
            frames = caller_frame(first.caller, caller_frames.get(first.caller, []))
        size = sum(block.size for block in blocks)
        allocations, allocated = totals.get(key, (None, None))
        records.append(
            LeakRecord(
                stack_id=_stack_id(first.api, first.caller, first.stack),
                kind=first.api,
                bytes=size,
                blocks=len(blocks),
                frames=frames,
                addresses=sorted(
                    (Block(b.address, b.size) for b in blocks), key=lambda b: b.address
                ),
                total_allocations=allocations,
                total_allocated_bytes=allocated,
            )
        )
        by_kind = summary.by_kind.setdefault(first.api, KindTotal())
        by_kind.blocks += len(blocks)
        by_kind.bytes += size
        summary.live_blocks += len(blocks)
        summary.live_bytes += size
    records.sort(key=lambda record: (-record.bytes, -record.blocks, record.stack_id))

    summary.total_allocations = sum(t.allocations for t in log.totals.values())
    summary.total_allocated_bytes = sum(t.bytes for t in log.totals.values())
    return Report(
        source="mtrace",
        program=resolver.binary,
        records=records,
        summary=summary,
        counters=dict(log.counters),
        capture_path=os.path.abspath(log_path),
        notes=_anomaly_notes(log) + resolver.notes,
    )


def _anomaly_notes(log: MtraceLog) -> list[str]:
    notes: list[str] = []
    first_line: dict[AnomalyKind, int] = {}
    counts: dict[AnomalyKind, int] = {}
    for anomaly in log.anomalies:
        first_line.setdefault(anomaly.kind, anomaly.line)
        counts[anomaly.kind] = counts.get(anomaly.kind, 0) + 1
    for kind, count in counts.items():
        notes.append(f"{count} x {kind.value} (first at line {first_line[kind]} of the log)")
    malformed = log.counters.get("malformed_lines", 0)
    if malformed:
        notes.append(f"{malformed} malformed lines were skipped")
    return notes
