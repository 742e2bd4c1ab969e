"""The growth section of the HTML report, from a capture with a snapshot series: the
process total and the best-ranked backtraces' live bytes at every snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from leaktrace.commands._capture_report import CaptureReport
    from leaktrace.render.html_report import Timeline


def html_timeline(loaded: CaptureReport | None) -> Timeline | None:
    if loaded is None or loaded.growth is None:
        return None
    from leaktrace.analyze.growth import describe_stacks
    from leaktrace.analyze.total_timeline import total_live_timeline
    from leaktrace.render.html_report import TIMELINE_LINES, Timeline, TimelineLine
    from leaktrace.render.stack_paths import frame_name

    growth = loaded.growth
    describe_stacks(loaded.capture, growth, limit=TIMELINE_LINES)
    lines = []
    for stack in growth.stacks[:TIMELINE_LINES]:
        where = next((frame_name(f) for f in stack.frames if f.function), "?")
        lines.append(TimelineLine(f"{stack.stack_id} {where}", stack.verdict, stack.timeline))
    total = total_live_timeline(loaded.capture, loaded.report.summary.live_bytes)
    return Timeline(total, lines)
