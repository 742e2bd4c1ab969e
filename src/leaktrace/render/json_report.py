"""The machine-readable report. Its layout is a contract documented in docs/json-report.md;
change it only by adding keys, or bump FORMAT_VERSION."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from leaktrace.analyze.frame_totals import PerFrame, compute_frame_totals, totals_of_selection
from leaktrace.leak_kinds import FIELD_NAMES, LEAK_KINDS
from leaktrace.model import (
    ChildProcess,
    FatalSignal,
    Frame,
    InvalidFree,
    KindTotal,
    LeakRecord,
    PreviousCapture,
    Report,
)
from leaktrace.render.options import (
    RenderOptions,
    selected_records,
    shown_mapped_regions,
    shown_records,
    suppression_text,
)

# 2: loss records with leak kinds, the LEAK SUMMARY, mapped regions, scan, suppressions.
FORMAT_VERSION = 2


def render_json(report: Report, options: RenderOptions) -> str:
    return "".join(json_chunks(report, options))


def json_chunks(report: Report, options: RenderOptions) -> Iterator[str]:
    """The same text as json.dumps(report_to_json(...), indent=2) + newline, in pieces: the
    records one by one, each frame's JSON made once (records share Frame objects), so a
    report of a million records is written as it is made."""
    records = shown_records(report, options)
    document = report_to_json(report, options, records=[])  # the records are written below
    head, marker, tail = json.dumps(document, indent=2).partition(_RECORDS_MARKER)
    if not records or not marker:
        yield json.dumps(report_to_json(report, options), indent=2) + "\n"
        return
    yield head + '\n  "records": [\n'
    frames = PerFrame(_frame_fragment)
    batch: list[str] = []
    separator = ""  # before the next batch: none before the first
    for record in records:
        text = "    " + indented_json(_record(record, options, with_frames=False), 2)
        if record.frames:
            text = text.replace(
                _NO_FRAMES, '\n      "frames": [\n' + ",\n".join(frames.of(record.frames))
                + "\n      ]", 1)
        batch.append(text)
        if len(batch) == 1000:
            yield separator + ",\n".join(batch)
            batch, separator = [], ",\n"
    if batch:
        yield separator + ",\n".join(batch)
    yield "\n  ],\n" + tail + "\n"


# Where the records go in the document made with none, and a record's empty frame list.
_RECORDS_MARKER = '\n  "records": [],\n'
_NO_FRAMES = '\n      "frames": []'


def _frame_fragment(frame: Frame) -> str:
    """A frame as it appears in the records list: 8 spaces in, its keys 10."""
    return "        " + indented_json(frame_json(frame), 4)


def indented_json(value: Any, level: int) -> str:
    """json.dumps(value, indent=2) for a value nested `level` deep, the same characters,
    without the pure-Python encoder json uses whenever it indents."""
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = "\n" + "  " * (level + 1)
        return "{" + ",".join(f"{inner}{encode_basestring_ascii(k)}: "
                              f"{indented_json(v, level + 1)}" for k, v in value.items()) \
            + "\n" + "  " * level + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        inner = "\n" + "  " * (level + 1)
        return "[" + ",".join(inner + indented_json(v, level + 1) for v in value) \
            + "\n" + "  " * level + "]"
    if isinstance(value, str):
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float) and math.isfinite(value):
        return float.__repr__(value)
    return json.dumps(value)  # NaN, Infinity, as json writes them


def report_to_json(report: Report, options: RenderOptions,
                   records: list[LeakRecord] | None = None) -> dict[str, Any]:
    """`records`: the records to list instead of the shown ones (json_chunks lists none and
    writes them itself)."""
    selected = selected_records(report, options)
    if records is None:
        records = shown_records(report, options, selected)
    if report.scanned or options.leak_kinds is not None:
        totals = totals_of_selection(report, selected)
    else:
        totals = report.frame_totals or compute_frame_totals(report.records)
    s = report.summary
    summary: dict[str, Any] = {
        "live": {"blocks": s.live_blocks, "bytes": s.live_bytes},
        "by_kind": {k: {"blocks": t.blocks, "bytes": t.bytes} for k, t in s.by_kind.items()},
        "total_allocations": s.total_allocations,
        "total_allocated_bytes": s.total_allocated_bytes,
    }
    for kind in LEAK_KINDS:
        known = s.leaks is not None and kind not in s.leaks.unknown_kinds
        summary[FIELD_NAMES[kind]] = _total(s.leaks.of(kind)) if s.leaks and known else None
    summary["reachable_via_heuristic"] = (
        {name: _total(t) for name, t in s.leaks.reachable_via_heuristic.items()}
        if s.leaks and not s.leaks.heuristics_unknown else None)
    summary["suppressed"] = _total(s.suppressed)
    summary["source_suppressed_errors"] = s.source_suppressed_errors
    summary["since_baseline"] = (None if s.since_baseline is None else
                                 {**_total(s.since_baseline), "seconds": s.baseline_seconds})
    summary["mapped"] = _total(s.mapped) if s.leaks else None
    scan = report.scan
    return {
        "format_version": FORMAT_VERSION,
        "source": report.source,
        "program": report.program,
        "command": list(report.command),
        "pid": report.pid,
        "start_time": report.start_time,
        "end_time": report.end_time,
        "capture_path": report.capture_path,
        "build_seconds": report.build_seconds,
        "sample_mean_bytes": report.sample_mean_bytes,
        "summary": summary,
        "scan": None if scan is None else {
            "seconds": scan.seconds, "bytes_scanned": scan.bytes_scanned,
            "root_bytes": scan.root_bytes, "threads_stopped": scan.threads_stopped,
            "threads_not_stopped": scan.threads_not_stopped,
            "heuristics": list(scan.heuristics),
        },
        "counters": dict(report.counters),
        "notes": list(report.notes),
        "previous_capture": _previous(report.previous),
        "leak_kinds_shown": (None if options.leak_kinds is None
                             else [k for k in LEAK_KINDS if k in options.leak_kinds]),
        "records_total": report.loss_records_total or len(report.records),
        "records": [_record(r, options) for r in records],
        "mapped_regions": [_record(r, options, suppressible=False)
                           for r in shown_mapped_regions(report, options)],
        "suppressions_used": [
            {"name": u.name, "origin": u.origin, "records": u.records, "blocks": u.blocks,
             "bytes": u.bytes, "invalid_free_calls": u.invalid_free_calls}
            for u in report.suppressions_used
        ],
        "frame_totals": [
            {"function": t.function, "module": t.module, "file": t.file, "bytes": t.bytes,
             "blocks": t.blocks, "records": t.records}
            for t in totals if t.bytes >= options.min_bytes
        ],
        "children": _children(report.children),
        "fatal_signal": _fatal(report.fatal),
        "invalid_frees": _frees(report.invalid_frees, mismatched=False),
        "mismatched_frees": _frees(report.invalid_frees, mismatched=True),
        "invalid_frees_unrecorded": report.invalid_frees_unrecorded,
        "invalid_frees_suppressed": report.invalid_frees_suppressed,
    }


def _frees(frees: list[InvalidFree] | None, *, mismatched: bool) -> list[dict[str, Any]] | None:
    if frees is None:
        return None
    return [{"api": f.api, "calls": f.calls, "first_address": f.first_address,
             "stack_id": f.stack_id, "frames": [frame_json(frame) for frame in f.frames]}
            for f in frees if f.mismatched == mismatched]


def _fatal(fatal: FatalSignal | None) -> dict[str, Any] | None:
    if fatal is None:
        return None
    return {"signal": fatal.signal, "name": fatal.name, "code": fatal.code,
            "cause": fatal.cause, "address": fatal.address, "sender_pid": fatal.sender_pid,
            "thread_id": fatal.thread_id, "thread_name": fatal.thread_name,
            "main_thread": fatal.main_thread, "truncated": fatal.truncated,
            "in_shim": fatal.in_shim, "handled": fatal.handled,
            "frames": [frame_json(f) for f in fatal.frames]}


def _children(children: list[ChildProcess] | None) -> list[dict[str, Any]] | None:
    if children is None:
        return None
    return [{"pid": c.pid, "capture": c.capture_path, "error": c.error,
             "invalid_frees": c.invalid_frees,
             **{FIELD_NAMES[kind]: (None if c.leaks is None else
                                    {"bytes": c.leaks[kind][0], "blocks": c.leaks[kind][1]})
                for kind in LEAK_KINDS}}
            for c in children]


def _previous(previous: PreviousCapture | None) -> dict[str, Any] | None:
    if previous is None:
        return None
    return {"against": previous.against, "path": previous.path,
            "seconds_earlier": previous.seconds_earlier, "bytes": previous.change.bytes,
            "blocks": previous.change.blocks, "new_records": previous.new_records,
            "gone_records": previous.gone_records}


def _total(total: KindTotal) -> dict[str, Any]:
    out: dict[str, Any] = {"bytes": total.bytes, "blocks": total.blocks}
    interval = total.bytes_interval()
    if interval is not None:  # sampling mode: estimates
        out["bytes_interval"] = list(interval)
    return out


def _record(record: LeakRecord, options: RenderOptions,
            suppressible: bool = True, with_frames: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "stack_id": record.stack_id,
        "kind": record.kind,
        "leak_kind": record.leak_kind,
        "loss_record": record.loss_record,
        "bytes": record.bytes,
        "direct_bytes": record.direct_bytes,
        "indirect_bytes": record.indirect_bytes,
        "blocks": record.blocks,
        "total_allocations": record.total_allocations,
        "total_allocated_bytes": record.total_allocated_bytes,
        "oldest_age_seconds": record.oldest_age_seconds,
        "since_previous": (None if record.since_previous is None else {
            "bytes": record.since_previous.bytes, "blocks": record.since_previous.blocks,
            "new": record.since_previous.new}),
        "growth": (None if record.growth is None else {
            "bytes_per_second": record.growth.bytes_per_second,
            "verdict": record.growth.verdict}),
        "frames": [frame_json(f) for f in record.frames] if with_frames else [],
    }
    if record.estimate is not None:
        e = record.estimate
        out["estimate"] = {"sampled_blocks": e.sampled_blocks,
                           "bytes_interval": [e.bytes_low, e.bytes_high]}
    if options.gen_suppressions and suppressible:
        out["suppression"] = suppression_text(record, options)
    if options.show_addresses:
        out["addresses"] = [
            {"address": b.address, "size": b.size, "age_seconds": b.age_seconds}
            for b in record.addresses
        ]
    return out


def frame_json(frame: Frame) -> dict[str, Any]:
    return {
        "function": frame.function,
        "file": frame.file,
        "line": frame.line,
        "module": frame.module,
        "offset": frame.offset,
        "address": frame.address,
        "inlined": frame.inlined,
    }

