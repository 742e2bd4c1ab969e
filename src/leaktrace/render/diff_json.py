"""`leaktrace diff --format json`: a contract like the JSON report (docs/exports.md, "diff");
keys are only added, or DIFF_FORMAT_VERSION is bumped."""

from __future__ import annotations

import json
from typing import Any

from leaktrace.analyze.report_diff import ReportDiff, StackChange
from leaktrace.model import KindTotal, Report
from leaktrace.render.json_report import frame_json

DIFF_FORMAT_VERSION = 1


def render_diff_json(diff: ReportDiff) -> str:
    return json.dumps(diff_to_json(diff), indent=2) + "\n"


def diff_to_json(diff: ReportDiff) -> dict[str, Any]:
    before, after = diff.total("before"), diff.total("after")
    return {
        "diff_format_version": DIFF_FORMAT_VERSION,
        "before": _side(diff.before),
        "after": _side(diff.after),
        "total": {"before": _total(before), "after": _total(after),
                  "change": {"bytes": after.bytes - before.bytes,
                             "blocks": after.blocks - before.blocks}},
        "stacks": [_change(c) for c in diff.changes],
    }


def _side(report: Report) -> dict[str, Any]:
    return {"source": report.source, "program": report.program, "pid": report.pid,
            "capture_path": report.capture_path, "end_time": report.end_time}


def _total(total: KindTotal) -> dict[str, int]:
    return {"bytes": total.bytes, "blocks": total.blocks}


def _change(change: StackChange) -> dict[str, Any]:
    return {
        "status": change.status,
        "kind": change.kind,
        "leak_kind": change.leak_kind,
        "before": _total(change.before),
        "after": _total(change.after),
        "change": {"bytes": change.bytes_change, "blocks": change.blocks_change},
        "stack_ids_before": change.stack_ids_before,
        "stack_ids_after": change.stack_ids_after,
        "frames": [frame_json(f) for f in change.frames],
    }
