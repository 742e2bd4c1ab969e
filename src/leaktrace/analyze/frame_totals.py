"""Leaked bytes per frame: inclusive totals per function over all leak records."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from leaktrace.model import Frame, FrameTotal, LeakRecord, Report

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
    records); suppressed records do not count. Each record counts once per function, however
    often its backtrace passes through it (recursion). Records through the same set of
    functions are added up together first: a million records share a few hundred sets."""
    totals: list[FrameTotal] = []  # by key number
    numbers: dict[tuple[str, str | None], int] = {}  # key -> its number (-1: not counted)

    def number(frame: Frame) -> int:
        key = total_key(frame)
        if key is None:
            return -1
        found = numbers.get(key)
        if found is None:
            found = numbers[key] = len(totals)
            # Its file is that of the function's first frame, as the report shows it.
            totals.append(FrameTotal(function=key[0], module=key[1], file=frame.file))
        return found

    keys = PerFrame(number)  # records share Frame objects: each is keyed once
    by_set: dict[frozenset[int], list[int]] = {}
    for record in records:
        if record.suppressed_by is not None:
            continue
        functions = keys.distinct(record.frames)
        sums = by_set.get(functions)
        if sums is None:
            sums = by_set[functions] = [0, 0, 0]
        sums[0] += record.own_bytes
        sums[1] += record.blocks
        sums[2] += 1
    for functions, (size, blocks, count) in by_set.items():
        for key_number in functions:
            if key_number >= 0:
                total = totals[key_number]
                total.bytes += size
                total.blocks += blocks
                total.records += count
    return sorted(totals, key=lambda t: (-t.bytes, -t.blocks, t.function))


def totals_of_selection(report: Report, selected: list[LeakRecord]) -> list[FrameTotal]:
    """compute_frame_totals(selected), `selected` being the records of the leak kinds shown
    (render/options.selected_records): the report's own totals when it selects every record
    no suppression matched, as with a capture whose leaks are all definitely lost (a
    million records are then added up once, not twice)."""
    if report.source == "leaktrace" and report.frame_totals and len(selected) == sum(
            1 for r in report.records if r.suppressed_by is None):
        return report.frame_totals
    return compute_frame_totals(selected)


def total_key(frame: Frame) -> tuple[str, str | None] | None:
    key = frame_key(frame)
    return None if key[0] in PROCESS_START_FUNCTIONS else key


T = TypeVar("T")


class PerFrame(Generic[T]):
    """A value computed once per Frame object. The records of a big capture share the frames
    of their return addresses, so a backtrace is a few lookups done by C code, not a
    Python call per frame."""

    def __init__(self, compute: Callable[[Frame], T]) -> None:
        self._compute = compute
        self._values: dict[int, T] = {}  # id(frame) -> value
        self._frames: list[Frame] = []  # keeps every frame seen alive: its id stays its own

    def of(self, frames: list[Frame]) -> list[T]:
        try:
            return list(map(self._values.__getitem__, map(id, frames)))
        except KeyError:
            self._add(frames)
            return list(map(self._values.__getitem__, map(id, frames)))

    def distinct(self, frames: list[Frame]) -> frozenset[T]:
        """The set of the frames' values (T hashable)."""
        try:
            return frozenset(map(self._values.__getitem__, map(id, frames)))
        except KeyError:
            self._add(frames)
            return frozenset(map(self._values.__getitem__, map(id, frames)))

    def _add(self, frames: list[Frame]) -> None:
        """Computes the value of each frame not seen yet, in order."""
        values = self._values
        for frame in frames:
            if id(frame) not in values:
                values[id(frame)] = self._compute(frame)
                self._frames.append(frame)
