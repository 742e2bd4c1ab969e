"""The report model: what every source (shim captures, mtrace logs, valgrind XML, ...) turns
into and what every renderer (text, JSON, ...) reads. Renderers never see a capture file."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Frame:
    """One symbolized frame. `address` is the runtime address (a return address for every
    frame but possibly the first of foreign sources); `offset` is relative to the module."""

    address: int
    function: str | None = None
    file: str | None = None
    line: int | None = None
    module: str | None = None
    offset: int | None = None
    inlined: bool = False  # True for a frame that was inlined into the next (outer) one

    def location(self) -> str:
        """file:line when known, else module+offset, else the raw address."""
        if self.file and self.line:
            return f"{self.file}:{self.line}"
        if self.module is not None and self.offset is not None:
            return f"{self.module}+{self.offset:#x}"
        return f"{self.address:#x}"


@dataclass
class Block:
    address: int
    size: int
    age_seconds: float | None = None


@dataclass
class LeakRecord:
    """Blocks grouped by (API kind, backtrace)."""

    stack_id: str  # short, stable across runs of the same binaries
    kind: str  # the API that made the blocks: malloc, calloc, mmap, ...
    bytes: int
    blocks: int
    frames: list[Frame] = field(default_factory=list)
    addresses: list[Block] = field(default_factory=list)
    total_allocations: int | None = None  # every allocation ever made from this backtrace
    total_allocated_bytes: int | None = None
    oldest_age_seconds: float | None = None
    leak_kind: str | None = None  # definitely/indirectly/possibly lost, still reachable (later)
    direct_bytes: int | None = None
    indirect_bytes: int | None = None
    loss_record: int | None = None  # valgrind's "loss record N of M" number
    # The shim's number for the backtrace: the same in every capture of one process.
    native_stack_id: int | None = None
    since_previous: Change | None = None  # change since the previous capture of the process
    growth: Growth | None = None  # how its backtrace grew over the run (snapshot series)


@dataclass
class Change:
    """Live bytes and blocks gained (negative: lost) since an earlier capture."""

    bytes: int
    blocks: int
    new: bool = False  # nothing of it was live in the earlier capture


@dataclass
class Growth:
    """Net growth of a backtrace's live bytes over the run and its verdict
    (analyze/growth.py: growing, plateaued or stable)."""

    bytes_per_second: float
    verdict: str


@dataclass
class PreviousCapture:
    """The capture a report is compared with, and the totals of the change."""

    against: str  # for people: "report-2", "the previous mtrace() checkpoint"
    path: str | None  # None when the capture holds only what is new (mtrace checkpoints)
    seconds_earlier: float | None
    change: Change
    new_records: int = 0
    gone_records: int = 0  # records live before and not any more


@dataclass
class KindTotal:
    blocks: int = 0
    bytes: int = 0


@dataclass
class Summary:
    live_blocks: int = 0
    live_bytes: int = 0
    by_kind: dict[str, KindTotal] = field(default_factory=dict)
    total_allocations: int | None = None
    total_allocated_bytes: int | None = None


@dataclass
class FrameTotal:
    """Inclusive leaked bytes of one function over all records: every record whose backtrace
    passes through the function counts once, so the caller responsible shows up even when
    the allocation itself happens deep inside a library."""

    function: str  # demangled name, or module+offset when unresolved
    module: str | None = None
    file: str | None = None
    bytes: int = 0
    blocks: int = 0
    records: int = 0


@dataclass
class Report:
    source: str  # "leaktrace", "mtrace", "valgrind", ...
    program: str | None = None
    command: list[str] = field(default_factory=list)
    pid: int | None = None
    start_time: float | None = None  # Unix seconds
    end_time: float | None = None
    records: list[LeakRecord] = field(default_factory=list)
    summary: Summary = field(default_factory=Summary)
    counters: dict[str, int] = field(default_factory=dict)
    capture_path: str | None = None
    build_seconds: float | None = None  # time taken to read, symbolize and build this report
    notes: list[str] = field(default_factory=list)
    frame_totals: list[FrameTotal] = field(default_factory=list)  # bytes descending
    previous: PreviousCapture | None = None  # set when compared with an earlier capture
