"""The SESSION and SERIES sections of a capture (docs/capture-format.md): why and when the
capture was taken, and the per-backtrace totals the shim recorded at every snapshot.

Kept apart from reader.py, which only calls parse_session / parse_series. SERIES can hold up
to 1024 snapshots of thousands of backtraces, so its entries are one numpy structured array
viewed on the file bytes, not Python objects.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from leaktrace.capture import format as fmt
from leaktrace.capture.cursor import Cursor
from leaktrace.capture.errors import CaptureError

# SESSION reason, for people (the codes: capture/format.py, REASON_*).
REASONS: dict[int, str] = {
    fmt.REASON_EXIT: "process exit",
    fmt.REASON_REPORT: "report command",
    fmt.REASON_SCAN: "scan command",
    fmt.REASON_MTRACE: "mtrace()",
    fmt.REASON_MUNTRACE: "muntrace()",
    fmt.REASON_SIGNAL: "signal",
    fmt.REASON_DETACH: "detach",
    fmt.REASON_EXEC: "exec of another program",
    fmt.REASON_SANDBOX: "seccomp filter (tracing stopped)",
    fmt.REASON_FILE_LIMIT: "file size limit of 0 (tracing stopped)",
}

# Captures written at mtrace()/muntrace() hold only the blocks allocated since the previous
# checkpoint: they are a difference already, not the whole heap.
CHECKPOINT_REASONS = frozenset({fmt.REASON_MTRACE, fmt.REASON_MUNTRACE})

MAX_TOTAL = (1 << 63) - 1  # as reader.MAX_TOTAL: the analysis computes in signed 64 bits
SERIES_ENTRY_DTYPE = np.dtype(
    [
        ("stack_id", "<u4"),
        ("reserved", "<u4"),
        ("alloc_count", "<u8"),
        ("alloc_bytes", "<u8"),
        ("live_blocks", "<u8"),
        ("live_bytes", "<u8"),
    ]
)
assert SERIES_ENTRY_DTYPE.itemsize == fmt.SERIES_ENTRY_SIZE

_SNAPSHOT_HEADER = struct.Struct("<QII")


@dataclass(frozen=True)
class Session:
    baseline_ns: int  # monotonic ns since the start; blocks allocated before it predate it
    sequence: int  # 0 for the final capture, n for the n-th on-demand capture
    reason: int
    collecting: bool  # new allocations were being recorded when the capture was taken
    snapshot_interval_ms: int

    @property
    def reason_name(self) -> str:
        return REASONS.get(self.reason, f"reason {self.reason}")

    @property
    def only_since_checkpoint(self) -> bool:
        """True for mtrace()/muntrace() captures: only what the last checkpoint left live."""
        return self.reason in CHECKPOINT_REASONS


class SeriesRow(NamedTuple):
    """One backtrace's absolute totals in one snapshot (for the test writer and for tests)."""

    stack_id: int
    alloc_count: int
    alloc_bytes: int
    live_blocks: int
    live_bytes: int


@dataclass
class Series:
    """Snapshot i was taken at times_ns[i] (ns since the start); its entries are the rows of
    `entries` whose `snapshot` is i. An entry holds the absolute totals of one backtrace, and
    a backtrace appears only in the snapshots where its totals changed."""

    times_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    entries: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=SERIES_ENTRY_DTYPE))
    snapshot: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.times_ns)

    def stack_ids(self) -> list[int]:
        return sorted(set(self.entries["stack_id"].tolist()))

    def rows(self, index: int) -> list[SeriesRow]:
        """The entries of snapshot `index`, as plain values."""
        picked = self.entries[self.snapshot == index]
        return [SeriesRow(s, a, b, lb, ly) for s, _r, a, b, lb, ly in picked.tolist()]


def parse_session(c: Cursor) -> Session:
    if c.remaining() < fmt.SESSION_PAYLOAD_SIZE:
        raise CaptureError(f"{c.where} is corrupt: it has {c.remaining()} bytes, fewer than "
                           f"the {fmt.SESSION_PAYLOAD_SIZE} of its fields")
    baseline = c.u64("baseline")
    sequence = c.u32("sequence")
    reason = c.u32("reason")
    collecting = c.u32("collecting")
    interval = c.u32("snapshot interval")
    return Session(baseline, sequence, reason, bool(collecting), interval)


def parse_series(c: Cursor) -> Series:
    count = c.count("snapshot count", fmt.SNAPSHOT_HEADER_SIZE)
    c.u32("reserved")
    times = np.zeros(count, dtype=np.uint64)
    chunks: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    for i in range(count):
        time_ns, entries, _reserved = _SNAPSHOT_HEADER.unpack(c.take(fmt.SNAPSHOT_HEADER_SIZE,
                                                                     f"snapshot {i}"))
        if entries * fmt.SERIES_ENTRY_SIZE > c.remaining():
            raise CaptureError(f"{c.where} is corrupt: snapshot {i} claims {entries} entries, "
                               "more than the section holds")
        if i and time_ns < times[i - 1]:
            raise CaptureError(f"{c.where} is corrupt: snapshot {i} is older than the one "
                               "before it")
        times[i] = time_ns
        raw = c.take(entries * fmt.SERIES_ENTRY_SIZE, f"snapshot {i} entries")
        chunks.append(np.frombuffer(raw, dtype=SERIES_ENTRY_DTYPE, count=entries))
        owners.append(np.full(entries, i, dtype=np.int64))
    if not chunks:
        return Series(times)
    entries = np.concatenate(chunks)
    for column in ("alloc_count", "alloc_bytes", "live_blocks", "live_bytes"):
        if len(entries) and int(entries[column].max()) > MAX_TOTAL:
            raise CaptureError(f"{c.where} is corrupt: a snapshot has a {column} of 2^63 "
                               "or more")
    return Series(times, entries, np.concatenate(owners))
