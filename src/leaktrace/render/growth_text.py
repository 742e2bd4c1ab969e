"""`leaktrace growth` for people: per backtrace (highest score first) its verdict and the
numbers behind it, the interval table in the spirit of libmemleak, and where it allocates."""

from __future__ import annotations

import os

from leaktrace.analyze.growth import GrowthAnalysis, Interval, StackGrowth
from leaktrace.model import Frame
from leaktrace.render.sizes import human_size

FRAMES_SHOWN = 8  # innermost frames per backtrace; `--format json` has them all


def render_growth_text(analysis: GrowthAnalysis, top: int | None = None) -> str:
    lines = ["== leaktrace growth =="]
    if analysis.program:
        lines.append(f"program:  {analysis.program} (pid {analysis.pid})")
    lines.append(f"capture:  {analysis.capture_path}")
    n = len(analysis.boundaries) - 1
    lines.append(f"run:      {analysis.run_seconds:.2f} s, {analysis.snapshots} snapshot(s), "
                 f"{n} interval(s)")
    counts = {v: sum(1 for s in analysis.stacks if s.verdict == v)
              for v in ("growing", "plateaued", "stable")}
    lines.append("verdicts: " + ", ".join(f"{c} {v}" for v, c in counts.items()))
    lines += [f"note: {note}" for note in analysis.notes]
    stacks = analysis.stacks if top is None else analysis.stacks[:top]
    if not stacks:
        lines += ["", "No backtrace allocated anything during the run."]
    for rank, stack in enumerate(stacks, start=1):
        lines += ["", *stack_lines(rank, stack)]
    if top is not None and len(analysis.stacks) > top:
        lines += ["", f"({len(analysis.stacks) - top} more backtraces; --top to see more)"]
    return "\n".join(lines) + "\n"


def stack_lines(rank: int, stack: StackGrowth, *, frames_shown: int | None = FRAMES_SHOWN
                ) -> list[str]:
    kind = f" {stack.kind}" if stack.kind else ""
    lines = [f"#{rank} stack {stack.stack_id}{kind}: {stack.verdict.upper()} "
             f"(score {stack.score:,.1f})"]
    oldest = (f"; oldest live block {stack.oldest_age_seconds:.2f} s old"
              if stack.oldest_age_seconds is not None else "")
    lines.append(f"   live at capture: {_blocks(stack.live_blocks)}, "
                 f"{human_size(stack.live_bytes)}{oldest}")
    lines.append(f"   net growth: {_rate(stack.bytes_per_second)} over the run, "
                 f"{_rate(stack.recent_bytes_per_second)} over its last half")
    lines.append(f"   why: {stack.reason}")
    lines += ["   " + row for row in interval_table(stack.intervals)]
    lines += ["   " + row for row in frame_lines(stack.frames, frames_shown)]
    return lines


def interval_table(intervals: list[Interval]) -> list[str]:
    header = ("interval", "length", "allocs", "unfreed", "%", "unfreed bytes", "allocs/s",
              "bytes/s", "live change")
    rows = [header]
    for i in intervals:
        percent = i.unfreed_percent
        rows.append((f"[{i.start:.2f}, {i.end:.2f})", f"{i.seconds:.2f} s", f"{i.allocations:,}",
                     f"{i.unfreed:,}", "-" if percent is None else f"{percent:.0f}%",
                     human_size(i.unfreed_bytes), f"{i.allocations_per_second:,.1f}",
                     human_size(round(i.bytes_per_second)), _signed(i.live_change_bytes)))
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    return ["  ".join(cell.ljust(w) if c == 0 else cell.rjust(w)
                      for c, (cell, w) in enumerate(zip(row, widths, strict=True)))
            for row in rows]


def frame_lines(frames: list[Frame], limit: int | None) -> list[str]:
    if not frames:
        return ["(no backtrace)"]
    shown = frames if limit is None else frames[:limit]
    lines = []
    for number, frame in enumerate(shown):
        where = f"  {frame.file}:{frame.line}" if frame.file and frame.line else ""
        module = f"  [{os.path.basename(frame.module)}]" if frame.module else ""
        name = frame.function or (f"{frame.offset:#x}" if frame.offset is not None
                                  else f"{frame.address:#x}")
        inlined = " (inlined)" if frame.inlined else ""
        lines.append(f"#{number} {name}{inlined}{where}{module}")
    if len(shown) < len(frames):
        lines.append(f"... {len(frames) - len(shown)} more frames")
    return lines


def _signed(n: int) -> str:
    return ("+" if n > 0 else "-" if n < 0 else "") + human_size(abs(n))


def _rate(bytes_per_second: float) -> str:
    return f"{_signed(round(bytes_per_second))}/s"


def _blocks(n: int) -> str:
    return f"{n:,} block" + ("" if n == 1 else "s")
