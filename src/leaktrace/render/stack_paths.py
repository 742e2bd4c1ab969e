"""Backtraces as the flame-graph exports see them: one weighted path of frame names per
loss record, outermost frame first, shared by the folded, speedscope, pprof and HTML
renderers so they all count the same bytes."""

from __future__ import annotations

import os
from dataclasses import dataclass

from leaktrace.model import Frame, LeakRecord, Report
from leaktrace.render.options import RenderOptions, shown_records

NO_BACKTRACE = "[no backtrace]"


def frame_name(frame: Frame) -> str:
    """The function, else module+offset, else the raw address: never empty."""
    if frame.function:
        return frame.function
    if frame.module is not None and frame.offset is not None:
        return f"{os.path.basename(frame.module)}+{frame.offset:#x}"
    return f"{frame.address:#x}"


@dataclass
class StackSample:
    """One record's weights. Leaked bytes are the blocks' own bytes (a definitely lost
    record's indirect bytes are their own records), so paths add up to the LEAK SUMMARY.
    Allocation totals belong to the backtrace, not to one leak kind: only the first record
    of each backtrace carries them, so they are not counted twice."""

    record: LeakRecord
    bytes: int
    blocks: int
    alloc_count: int
    alloc_bytes: int

    @property
    def root_first(self) -> list[Frame]:
        return list(reversed(self.record.frames))


def stack_samples(report: Report, options: RenderOptions) -> list[StackSample]:
    """The records the user asked for (--show, suppressions, --min-bytes, --top), largest
    first, as samples."""
    return samples_of(shown_records(report, options))


def samples_of(records: list[LeakRecord]) -> list[StackSample]:
    seen: set[tuple[str, str]] = set()
    samples = []
    for record in records:
        key = (record.kind, record.stack_id)
        first = key not in seen
        seen.add(key)
        samples.append(StackSample(
            record=record, bytes=record.own_bytes, blocks=record.blocks,
            alloc_count=(record.total_allocations or 0) if first else 0,
            alloc_bytes=(record.total_allocated_bytes or 0) if first else 0))
    return samples
