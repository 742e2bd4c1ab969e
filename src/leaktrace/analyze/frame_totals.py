"""Leaked bytes per frame: inclusive totals per function over all leak records."""

from __future__ import annotations

import os
from collections.abc import Iterable

from leaktrace.model import Frame, FrameTotal, LeakRecord

# Frames every backtrace passes through, which would top the table and tell nothing.
PROCESS_START_FUNCTIONS = frozenset({
    "_start", "__libc_start_main", "__libc_start_call_main", "start_thread", "clone",
    "clone3", "__clone", "__clone3", "__GI___clone3",
})


def frame_key(frame: Frame) -> tuple[str, str | None]:
    """Functions are told apart by name and module; an unresolved frame by its location."""
    if frame.function:
        return frame.function, frame.module
    if frame.module is not None and frame.offset is not None:
        return f"{os.path.basename(frame.module)}+{frame.offset:#x}", frame.module
    return f"{frame.address:#x}", None


def compute_frame_totals(records: Iterable[LeakRecord]) -> list[FrameTotal]:
    """Own bytes only (a definitely lost record's indirect bytes belong to the indirectly lost
    records); suppressed records do not count."""
    totals: dict[tuple[str, str | None], FrameTotal] = {}
    for record in records:
        if record.suppressed_by is not None:
            continue
        seen: set[tuple[str, str | None]] = set()
        for frame in record.frames:
            key = frame_key(frame)
            if key in seen or key[0] in PROCESS_START_FUNCTIONS:
                continue  # recursion: a record counts once per function
            seen.add(key)
            total = totals.get(key)
            if total is None:
                total = totals[key] = FrameTotal(function=key[0], module=key[1], file=frame.file)
            total.bytes += record.own_bytes
            total.blocks += record.blocks
            total.records += 1
    return sorted(totals.values(), key=lambda t: (-t.bytes, -t.blocks, t.function))
