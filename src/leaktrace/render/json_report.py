"""The machine-readable report. Its layout is a contract documented in docs/json-report.md;
change it only by adding keys, or bump FORMAT_VERSION."""

from __future__ import annotations

import json
from typing import Any

from leaktrace.analyze.frame_totals import compute_frame_totals
from leaktrace.model import Frame, LeakRecord, Report
from leaktrace.render.options import RenderOptions, shown_records

FORMAT_VERSION = 1


def render_json(report: Report, options: RenderOptions) -> str:
    return json.dumps(report_to_json(report, options), indent=2) + "\n"


def report_to_json(report: Report, options: RenderOptions) -> dict[str, Any]:
    records = shown_records(report, options)
    totals = report.frame_totals or compute_frame_totals(report.records)
    s = report.summary
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
        "summary": {
            "live": {"blocks": s.live_blocks, "bytes": s.live_bytes},
            "by_kind": {k: {"blocks": t.blocks, "bytes": t.bytes} for k, t in s.by_kind.items()},
            "total_allocations": s.total_allocations,
            "total_allocated_bytes": s.total_allocated_bytes,
        },
        "counters": dict(report.counters),
        "notes": list(report.notes),
        "records_total": len(report.records),
        "records": [_record(r, options.show_addresses) for r in records],
        "frame_totals": [
            {"function": t.function, "module": t.module, "file": t.file, "bytes": t.bytes,
             "blocks": t.blocks, "records": t.records}
            for t in totals if t.bytes >= options.min_bytes
        ],
    }


def _record(record: LeakRecord, with_addresses: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "stack_id": record.stack_id,
        "kind": record.kind,
        "bytes": record.bytes,
        "blocks": record.blocks,
        "total_allocations": record.total_allocations,
        "total_allocated_bytes": record.total_allocated_bytes,
        "oldest_age_seconds": record.oldest_age_seconds,
        "frames": [frame_json(f) for f in record.frames],
    }
    if with_addresses:
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
