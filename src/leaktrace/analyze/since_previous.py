"""What changed since the previous capture of the same process: per (API kind, backtrace),
live bytes and blocks gained or lost, and which backtraces are new.

On-demand captures sit beside the main one as `<main without .lt>.<reason>-<n>.lt`, numbered
in one sequence per process, so the previous capture is found on disk without any state: the
sibling with the highest smaller number that belongs to the same process (same pid and start
time). Captures written at mtrace()/muntrace() hold only what was allocated since the previous
checkpoint, so they are their own difference; a whole-heap capture is compared with the newest
earlier whole-heap capture.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from leaktrace.capture import format as fmt
from leaktrace.capture.errors import CaptureError
from leaktrace.capture.reader import Capture, read_capture
from leaktrace.capture_names import numbered_siblings, parse_capture_name
from leaktrace.model import Change

RecordKey = tuple[str, int]  # (API kind name, the shim's stack id)


@dataclass
class Comparison:
    """How one capture differs from the one before it."""

    against: str  # what it is compared with, for people: "report-2", "the previous mtrace()"
    previous_path: str | None  # None when the capture is its own difference (checkpoints)
    seconds_earlier: float | None
    total: Change
    records: dict[RecordKey, Change] = field(default_factory=dict)
    new_records: int = 0
    gone_records: int = 0  # backtraces live before and not any more


def same_process(a: Capture, b: Capture) -> bool:
    return (a.header.pid, a.header.start_time_ns) == (b.header.pid, b.header.start_time_ns)


def previous_capture(path: str, capture: Capture, *, whole_heap: bool = True
                     ) -> tuple[str, Capture] | None:
    """The newest earlier capture of the same process beside `path`; with `whole_heap`,
    checkpoint captures (which hold only part of the heap) are skipped."""
    name = parse_capture_name(os.path.abspath(path))
    for number, candidate in reversed(numbered_siblings(path)):
        if name.number is not None and number >= name.number:
            continue
        try:
            earlier = read_capture(candidate)
        except CaptureError:
            continue  # being written, or damaged: not something to compare with
        if not same_process(earlier, capture):
            continue
        if whole_heap and earlier.session is not None and earlier.session.only_since_checkpoint:
            continue
        return candidate, earlier
    return None


def live_by_record(capture: Capture) -> dict[RecordKey, tuple[int, int]]:
    """{(kind, stack id): (live blocks, live bytes)}, grouped with numpy."""
    blocks = capture.blocks
    if len(blocks) == 0:
        return {}
    keys = (blocks["kind"].astype(np.uint64) << np.uint64(32)) | blocks["stack_id"]
    unique, inverse = np.unique(keys, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(unique))
    sizes = np.bincount(inverse, weights=blocks["size"].astype(np.float64),
                        minlength=len(unique))
    return {(fmt.kind_name(int(k) >> 32), int(k) & 0xFFFFFFFF): (int(c), round(s))
            for k, c, s in zip(unique.tolist(), counts.tolist(), sizes.tolist(), strict=True)}


def compare_with_previous(path: str, capture: Capture) -> Comparison | None:
    """The comparison `report` shows, or None when there is nothing earlier to compare with."""
    session = capture.session
    if session is not None and session.only_since_checkpoint:
        return _checkpoint_comparison(path, capture)
    found = previous_capture(path, capture)
    if found is None:
        return None
    previous_path, previous = found
    return compare(capture, previous, previous_path)


def compare(capture: Capture, previous: Capture, previous_path: str) -> Comparison:
    now, before = live_by_record(capture), live_by_record(previous)
    records = {}
    for key, (blocks, size) in now.items():
        old_blocks, old_bytes = before.get(key, (0, 0))
        records[key] = Change(size - old_bytes, blocks - old_blocks, new=key not in before)
    total_now = sum(b for _, b in now.values()), sum(n for n, _ in now.values())
    total_before = sum(b for _, b in before.values()), sum(n for n, _ in before.values())
    return Comparison(
        against=parse_capture_name(previous_path).short,
        previous_path=os.path.abspath(previous_path),
        seconds_earlier=_seconds_between(previous, capture),
        total=Change(total_now[0] - total_before[0], total_now[1] - total_before[1]),
        records=records,
        new_records=sum(1 for c in records.values() if c.new),
        gone_records=sum(1 for key in before if key not in now),
    )


def _checkpoint_comparison(path: str, capture: Capture) -> Comparison:
    """A checkpoint capture is what the last checkpoint left live: every block counts."""
    now = live_by_record(capture)
    earlier = previous_capture(path, capture, whole_heap=False)
    seen_before: set[int] = set()
    if earlier is not None:
        seen_before = {s for s, st in earlier[1].stacks.items() if st.live_blocks}
    records = {key: Change(size, blocks, new=key[1] not in seen_before)
               for key, (blocks, size) in now.items()}
    return Comparison(
        against="the previous mtrace() checkpoint",
        previous_path=None,
        seconds_earlier=None,
        total=Change(sum(b for _, b in now.values()), sum(n for n, _ in now.values())),
        records=records,
        new_records=sum(1 for c in records.values() if c.new),
    )


def _seconds_between(earlier: Capture, later: Capture) -> float:
    return round((later.header.capture_monotonic_ns - earlier.header.capture_monotonic_ns)
                 / 1e9, 6)
