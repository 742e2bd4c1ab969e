"""`leaktrace diff` as text: the two sides, the totals and their change, then each stack
whose bytes changed (largest change first) with its backtrace."""

from __future__ import annotations

from leaktrace.analyze.report_diff import GONE, GREW, NEW, SAME, SHRANK, ReportDiff, StackChange
from leaktrace.model import KindTotal, Report
from leaktrace.render.sizes import size_with_bytes
from leaktrace.render.text import frame_line

_LABELS = {NEW: "NEW", GONE: "GONE", GREW: "GREW", SHRANK: "SHRANK", SAME: "SAME"}


def render_diff_text(diff: ReportDiff, *, top: int | None = None,
                     show_unchanged: bool = False) -> str:
    lines = ["== leaktrace diff ==",
             f"before: {_side(diff.before)}",
             f"after:  {_side(diff.after)}",
             "",
             f"total: {_total(diff.total('before'))} -> {_total(diff.total('after'))} "
             f"({_change(diff.total('after').bytes - diff.total('before').bytes, 'byte')}, "
             f"{_change(diff.total('after').blocks - diff.total('before').blocks, 'block')})",
             f"stacks: {diff.count(GREW)} grew, {diff.count(SHRANK)} shrank, "
             f"{diff.count(NEW)} new, {diff.count(GONE)} gone, {diff.count(SAME)} unchanged"]
    shown = [c for c in diff.changes if show_unchanged or c.status != SAME]
    for change in shown if top is None else shown[:top]:
        lines += ["", _headline(change)]
        width = len(str(len(change.frames) - 1))
        lines += [f"    {frame_line(n, width, f, False)}" for n, f in enumerate(change.frames)]
        if not change.frames:
            lines.append("    (no backtrace)")
    return "\n".join(lines) + "\n"


def _side(report: Report) -> str:
    where = report.capture_path or report.program or report.source
    pid = f", pid {report.pid}" if report.pid is not None else ""
    return f"{where}{pid}"


def _total(total: KindTotal) -> str:
    word = "block" if total.blocks == 1 else "blocks"
    return f"{size_with_bytes(total.bytes)} in {total.blocks:,} {word}"


def _change(n: int, word: str) -> str:
    return f"{n:+,} {word}" + ("" if abs(n) == 1 else "s")


def _headline(change: StackChange) -> str:
    what = change.kind + (f", {change.leak_kind}" if change.leak_kind else "")
    return (f"{_LABELS[change.status]} {_change(change.bytes_change, 'byte')} "
            f"({_change(change.blocks_change, 'block')}): {_total(change.before)} -> "
            f"{_total(change.after)}  [{what}; stack "
            f"{','.join(change.stack_ids_after or change.stack_ids_before)}]")
