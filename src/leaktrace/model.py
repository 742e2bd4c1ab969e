"""The report model: what every source (shim captures, mtrace logs, valgrind XML, ...) turns
into and what every renderer (text, JSON, ...) reads. Renderers never see a capture file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)  # a big capture has millions of these
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


@dataclass(slots=True)  # a big capture has millions of these
class Block:
    address: int
    size: int
    age_seconds: float | None = None


# z of a two-sided 95% normal interval: statistics.NormalDist().inv_cdf(0.975).
Z95 = 1.959963984540054


@dataclass(slots=True)  # a big capture has millions of these
class Estimate:
    """Sampling mode: a record's bytes and blocks are estimates from its sampled blocks (each
    divided by its chance of being sampled). The 95% interval is the normal one around the
    Horvitz-Thompson estimate."""

    sampled_blocks: int
    bytes_low: int
    bytes_high: int
    bytes_variance: float


@dataclass(slots=True)  # a big capture has millions of these
class LeakRecord:
    """Blocks grouped by (API kind, backtrace), and by leak kind when a reachability scan
    classified them (then it is one of valgrind's "loss records")."""

    stack_id: str  # short, stable across runs of the same binaries
    kind: str  # the API that made the blocks: malloc, calloc, mmap, ...
    bytes: int  # for a definitely lost record: direct + indirect bytes, as valgrind prints
    blocks: int
    frames: list[Frame] = field(default_factory=list)
    addresses: list[Block] = field(default_factory=list)
    total_allocations: int | None = None  # every allocation ever made from this backtrace
    total_allocated_bytes: int | None = None
    oldest_age_seconds: float | None = None
    leak_kind: str | None = None  # leak_kinds.LEAK_KINDS; None when no scan ran
    direct_bytes: int | None = None  # the blocks' own bytes
    indirect_bytes: int | None = None  # definitely lost: what only these blocks point to
    loss_record: int | None = None  # valgrind's "loss record N of M" number
    # The shim's number for the backtrace: the same in every capture of one process.
    native_stack_id: int | None = None
    since_previous: Change | None = None  # change since the previous capture of the process
    growth: Growth | None = None  # how its backtrace grew over the run (snapshot series)
    suppressed_by: str | None = None  # name of the suppression that matched, if any
    estimate: Estimate | None = None  # sampling mode: bytes and blocks are estimates

    @property
    def own_bytes(self) -> int:
        """The blocks' own bytes, whatever the source filled in."""
        return self.direct_bytes if self.direct_bytes is not None else self.bytes


@dataclass(slots=True)  # a big capture has millions of these
class Change:
    """Live bytes and blocks gained (negative: lost) since an earlier capture."""

    bytes: int
    blocks: int
    new: bool = False  # nothing of it was live in the earlier capture


@dataclass(slots=True)  # a big capture has millions of these
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
class ChildProcess:
    """A child `run --follow-children` traced: its capture and its leak totals, suppressions
    applied as in its own report ({leak kind: (bytes, blocks)}; None when its capture could
    not be read, `error` says why)."""

    pid: int
    capture_path: str
    leaks: dict[str, tuple[int, int]] | None
    error: str | None = None
    invalid_frees: int = 0  # calls that freed an address not allocated (0: none or unchecked)


@dataclass
class KindTotal:
    blocks: int = 0
    bytes: int = 0
    # Sampling mode: the variance of the bytes estimate (None: exact, nothing estimated).
    bytes_variance: float | None = None

    def add_estimate(self, estimate: Estimate | None) -> None:
        if estimate is not None:
            self.bytes_variance = (self.bytes_variance or 0.0) + estimate.bytes_variance

    def bytes_interval(self) -> tuple[int, int] | None:
        """Sampling mode: the 95% interval of the bytes (records are independent, so their
        variances add)."""
        if self.bytes_variance is None:
            return None
        half = Z95 * self.bytes_variance ** 0.5
        return max(0, round(self.bytes - half)), round(self.bytes + half)


@dataclass
class LeakTotals:
    """valgrind's LEAK SUMMARY: direct bytes and blocks per leak kind (a definitely lost
    block's indirect bytes are counted once, as indirectly lost), suppressed ones apart."""

    definitely_lost: KindTotal = field(default_factory=KindTotal)
    indirectly_lost: KindTotal = field(default_factory=KindTotal)
    possibly_lost: KindTotal = field(default_factory=KindTotal)
    still_reachable: KindTotal = field(default_factory=KindTotal)
    # Blocks a heuristic (stdstring, length64, ...) made reachable, whatever their kind.
    reachable_via_heuristic: dict[str, KindTotal] = field(default_factory=dict)
    # Kinds the source did not report (valgrind's --show-leak-kinds left them out of its
    # XML): their totals are unknown, not 0.
    unknown_kinds: frozenset[str] = frozenset()
    # The source does not say which blocks a heuristic made reachable (valgrind's XML):
    # reachable_via_heuristic is then empty for want of knowledge, not because none was.
    heuristics_unknown: bool = False

    def of(self, leak_kind: str) -> KindTotal:
        total: KindTotal = getattr(self, leak_kind.replace(" ", "_"))
        return total


@dataclass
class Summary:
    live_blocks: int = 0
    live_bytes: int = 0
    by_kind: dict[str, KindTotal] = field(default_factory=dict)
    total_allocations: int | None = None
    total_allocated_bytes: int | None = None
    leaks: LeakTotals | None = None  # None when no reachability scan ran
    suppressed: KindTotal = field(default_factory=KindTotal)  # own bytes of suppressed records
    mapped: KindTotal = field(default_factory=KindTotal)  # mmap/mremap/brk regions (scan only)
    # Live blocks allocated after the baseline (control reset, mtrace()): None when the
    # capture has no baseline, or is an mtrace() checkpoint (whose blocks are all new).
    since_baseline: KindTotal | None = None
    baseline_seconds: float | None = None  # when the baseline was set, seconds after the start
    # Errors the source suppressed itself without giving their sizes (valgrind XML's
    # <suppcounts>): counted, not in `suppressed`.
    source_suppressed_errors: int = 0


@dataclass
class ScanInfo:
    """How the reachability scan at exit went."""

    seconds: float
    bytes_scanned: int
    root_bytes: int
    threads_stopped: int
    threads_not_stopped: int  # they block the scan signal (docs/capture-format.md)
    heuristics: list[str] = field(default_factory=list)  # the heuristics that were on


@dataclass
class SuppressionUse:
    """One suppression that matched, and what it hid."""

    name: str
    origin: str  # FILE:LINE where it is defined
    records: int = 0
    blocks: int = 0
    bytes: int = 0  # own bytes, as counted under "suppressed"
    invalid_free_calls: int = 0  # a Memcheck:Free entry's: the invalid frees it matched


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
class InvalidFree:
    """Calls from one backtrace that freed (or reallocated) an address never allocated, or
    freed already; or, `mismatched`, a block their function does not release (a capture's
    INVALID_FREES section)."""

    api: str  # "free", "realloc", "reallocarray", "operator delete", "operator delete[]"
    calls: int
    first_address: int  # the address the first of them passed
    stack_id: str  # stable id of (api, backtrace)
    frames: list[Frame] = field(default_factory=list)
    # valgrind's "Mismatched free() / delete / delete []": delete[] of a block new[] did not
    # make, or free or delete of one it did (new's own blocks are malloc's to the shim).
    mismatched: bool = False

    @property
    def block_from_new_array(self) -> bool:
        """Of a mismatched free: whether operator new[] made the block (every API but
        delete[] is a mismatch only for such a block)."""
        return self.api != "operator delete[]"


@dataclass
class FatalSignal:
    """The signal that ended the program, and where it struck (a capture's FATAL section)."""

    signal: int
    name: str  # "SIGSEGV"
    code: int  # si_code
    cause: str  # "address not mapped, at address 0x0", "sent by process 812 (kill)", ...
    address: int | None  # a fault's address
    sender_pid: int | None  # a sent signal's sender
    thread_id: int
    thread_name: str
    main_thread: bool
    frames: list[Frame] = field(default_factory=list)  # the interrupted code first
    truncated: bool = False  # cut at the depth limit
    in_shim: bool = False  # it struck while the thread ran leaktrace's own code
    # The program's handler of a fault raised this signal again (a crash reporter's, Python's
    # faulthandler): that fault, e.g. "address not mapped, at address 0x0"; else None.
    handled: str | None = None


@dataclass
class LoadedModule:
    """An executable or shared library of the traced process (for exports that name
    mappings, like pprof's): where it was loaded and its GNU build id."""

    path: str
    start: int
    end: int
    load_bias: int
    build_id: str = ""  # hex; empty when unknown


@dataclass
class Report:
    source: str  # "leaktrace", "mtrace", "valgrind", ...
    program: str | None = None
    command: list[str] = field(default_factory=list)
    pid: int | None = None
    start_time: float | None = None  # Unix seconds
    end_time: float | None = None
    # A capture's records are analyze/record_columns.ColumnRecords: made on access.
    records: Sequence[LeakRecord] = field(default_factory=list)
    summary: Summary = field(default_factory=Summary)
    counters: dict[str, int] = field(default_factory=dict)
    capture_path: str | None = None
    build_seconds: float | None = None  # time taken to read, symbolize and build this report
    notes: list[str] = field(default_factory=list)
    frame_totals: list[FrameTotal] = field(default_factory=list)  # bytes descending
    previous: PreviousCapture | None = None  # set when compared with an earlier capture
    # With a reachability scan: memory mappings (mmap, mremap, brk) never unmapped. They are
    # not heap blocks, so not loss records (valgrind does not report them at all).
    mapped_regions: list[LeakRecord] = field(default_factory=list)
    scan: ScanInfo | None = None
    captured_when: str = "at exit"  # "at exit", "at detach", "at the on-demand report", ...
    suppressions_used: list[SuppressionUse] = field(default_factory=list)
    modules: list[LoadedModule] = field(default_factory=list)  # empty when the source has none
    sample_mean_bytes: int | None = None  # sampling mode: mean bytes between samples
    # M of "loss record N of M" when the source numbered its records (valgrind XML) and M
    # also counts records it left out; None: M is the largest number among the records.
    loss_records_total: int | None = None
    # `run --follow-children`: the traced children, each with its leak totals (None: not
    # followed). --fail-on-leak counts their leaks too.
    children: list[ChildProcess] | None = None
    fatal: FatalSignal | None = None  # the signal that ended the program, if one did
    # Frees of addresses never allocated or freed already, most calls first; None when the
    # source did not check (a capture of an attach, of sampling mode, ...).
    invalid_frees: list[InvalidFree] | None = None
    invalid_frees_unrecorded: int = 0  # more such calls, whose backtrace the shim did not keep
    invalid_frees_suppressed: int = 0  # calls a Memcheck:Free suppression took off the list

    @property
    def scanned(self) -> bool:
        """Whether the records are loss records with leak kinds."""
        return self.summary.leaks is not None
