"""`leaktrace growth --format json`: the growth analysis as one JSON object. Keys are only
ever added (docs/user-guide.md lists them)."""

from __future__ import annotations

import json
from typing import Any

from leaktrace.analyze.growth import GrowthAnalysis, Interval, StackGrowth
from leaktrace.render.json_report import frame_json

FORMAT_VERSION = 1


def render_growth_json(analysis: GrowthAnalysis, top: int | None = None) -> str:
    return json.dumps(growth_to_json(analysis, top), indent=2) + "\n"


def growth_to_json(analysis: GrowthAnalysis, top: int | None = None) -> dict[str, Any]:
    stacks = analysis.stacks if top is None else analysis.stacks[:top]
    return {
        "format_version": FORMAT_VERSION,
        "capture_path": analysis.capture_path,
        "pid": analysis.pid,
        "program": analysis.program,
        "run_seconds": analysis.run_seconds,
        "snapshots": analysis.snapshots,
        "boundaries": analysis.boundaries,
        "notes": list(analysis.notes),
        "stacks_total": len(analysis.stacks),
        "stacks": [stack_json(s) for s in stacks],
    }


def stack_json(stack: StackGrowth) -> dict[str, Any]:
    return {
        "stack_id": stack.stack_id,
        "native_stack_id": stack.native_id,
        "kind": stack.kind,
        "verdict": stack.verdict,
        "reason": stack.reason,
        "score": stack.score,
        "growth_fraction": stack.growth_fraction,
        "growth_intervals": stack.growth_intervals,
        "first_third_bytes": stack.first_third_bytes,
        "last_third_bytes": stack.last_third_bytes,
        "net_bytes": stack.net_bytes,
        "bytes_per_second": stack.bytes_per_second,
        "recent_bytes_per_second": stack.recent_bytes_per_second,
        "live_blocks": stack.live_blocks,
        "live_bytes": stack.live_bytes,
        "oldest_age_seconds": stack.oldest_age_seconds,
        "intervals": [_interval(i) for i in stack.intervals],
        "frames": [frame_json(f) for f in stack.frames],
    }


def _interval(i: Interval) -> dict[str, Any]:
    return {
        "start": i.start,
        "end": i.end,
        "seconds": i.seconds,
        "allocations": i.allocations,
        "allocated_bytes": i.allocated_bytes,
        "unfreed": i.unfreed,
        "unfreed_percent": i.unfreed_percent,
        "unfreed_bytes": i.unfreed_bytes,
        "allocations_per_second": i.allocations_per_second,
        "bytes_per_second": i.bytes_per_second,
        "live_change_bytes": i.live_change_bytes,
        "live_change_blocks": i.live_change_blocks,
    }
