"""What `leaktrace status` and `leaktrace ps` print: a traced process's `status` answer
(docs/control-protocol.md) for people."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from leaktrace.render.sizes import human_size, size_with_bytes


def uptime_text(milliseconds: int) -> str:
    """'2.5 s', '3m07s', '5h02m', '2d03h': short enough for a table column."""
    seconds = milliseconds / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def render_status(status: Mapping[str, Any]) -> str:
    collecting = "yes" if status.get("collecting") else "no (paused, or waiting for mtrace())"
    interval = status.get("snapshot_interval_ms", 0) / 1000
    lines = [
        f"pid:        {status.get('pid')}",
        f"program:    {status.get('program')}",
        f"uptime:     {uptime_text(int(status.get('uptime_ms', 0)))}",
        f"collecting: {collecting}",
        f"live:       {status.get('live_blocks', 0):,} blocks, "
        f"{size_with_bytes(int(status.get('live_bytes', 0)))}",
        f"backtraces: {status.get('stacks', 0):,}",
        f"snapshots:  {status.get('snapshots', 0):,} (every {interval:g} s)",
        f"baseline:   {_baseline(int(status.get('baseline_ms', 0)))}",
    ]
    dropped = [f"{name}={status[name]:,}" for name in ("dropped_blocks", "dropped_stacks")
               if status.get(name)]
    if dropped:
        lines.append(f"dropped:    {', '.join(dropped)} (live totals are too low)")
    return "\n".join(lines) + "\n"


def _baseline(ms: int) -> str:
    return "the start" if ms == 0 else f"{ms / 1000:.3f} s after the start (reset)"


def render_process_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "No traced process of yours answers in the control directory.\n"
    table = [("PID", "PROGRAM", "UPTIME", "LIVE", "BLOCKS", "COLLECTING")]
    for s in rows:
        table.append((str(s.get("pid")), str(s.get("program")),
                      uptime_text(int(s.get("uptime_ms", 0))),
                      human_size(int(s.get("live_bytes", 0))), f"{s.get('live_blocks', 0):,}",
                      "yes" if s.get("collecting") else "no"))
    widths = [max(len(r[c]) for r in table) for c in range(len(table[0]))]
    right = {0, 3, 4}
    lines = ["  ".join(cell.rjust(w) if c in right else cell.ljust(w)
                       for c, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in table]
    return "\n".join(lines) + "\n"
