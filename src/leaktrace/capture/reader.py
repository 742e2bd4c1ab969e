"""Parse a capture file (docs/capture-format.md) into typed objects.

The whole file is read into memory: captures are aggregated (one entry per live block and per
distinct backtrace), so they stay far smaller than the traced program's heap. Blocks are kept
as a numpy structured array viewed directly on the file bytes: a leaky program can have
millions of live blocks, and grouping them is then vectorized instead of a Python loop.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from leaktrace.capture import format as fmt
from leaktrace.capture.cursor import Cursor
from leaktrace.capture.errors import CaptureError
from leaktrace.capture.series import Series, Session, parse_series, parse_session

# Stack and MAX_TOTAL are re-exported: other modules have long imported them from here.
from leaktrace.capture.stack import Stack as Stack
from leaktrace.capture.stack_table import MAX_TOTAL as MAX_TOTAL
from leaktrace.capture.stack_table import parse_stacks
from leaktrace.capture.superblocks import drop_superblocks
from leaktrace.input_files import open_regular
from leaktrace.numpy_pages import ordinary_pages

# One BLOCKS record; numpy reads the section without copying it.
BLOCK_DTYPE = np.dtype(
    [
        ("address", "<u8"),
        ("size", "<u8"),
        ("stack_id", "<u4"),
        ("kind", "u1"),
        ("leak_kind", "u1"),  # version 2; always 0 in version 1
        ("heuristic", "u1"),  # version 2
        ("flags", "u1"),  # BLOCK_FLAG_*
        ("alloc_time_ns", "<u8"),
    ]
)
assert BLOCK_DTYPE.itemsize == fmt.BLOCK_RECORD_SIZE

# One LEAK_GROUPS entry: a definitely lost block and what its clique owns.
LEAK_GROUP_DTYPE = np.dtype(
    [("address", "<u8"), ("indirect_bytes", "<u8"), ("indirect_blocks", "<u8")]
)
assert LEAK_GROUP_DTYPE.itemsize == fmt.LEAK_GROUP_RECORD_SIZE

_HEADER = struct.Struct("<8sIIIIQQQQII")

# No block size a real process reaches: past it the field is corrupt.
MAX_BLOCK_SIZE = 1 << 57  # larger than any x86-64 address space (57-bit with 5-level paging)
_SECTION = struct.Struct("<IIQ")
_MAPPED_FROM = 1 << 20  # bytes: smaller captures are read into a bytearray


@dataclass(frozen=True)
class CaptureHeader:
    version: int
    header_size: int
    pid: int
    flags: int
    start_time_ns: int  # since the Unix epoch
    capture_time_ns: int
    start_monotonic_ns: int
    capture_monotonic_ns: int
    pointer_size: int

    @property
    def final(self) -> bool:
        """Written when the process ended, not an on-demand snapshot."""
        return bool(self.flags & fmt.FLAG_FINAL)

    @property
    def child(self) -> bool:
        return bool(self.flags & fmt.FLAG_CHILD)

    @property
    def run_seconds(self) -> float:
        """Time from the shim's start to the capture (monotonic clock)."""
        return max(0, self.capture_monotonic_ns - self.start_monotonic_ns) / 1e9


@dataclass(frozen=True)
class ProcessInfo:
    ppid: int
    executable: str  # paths are decoded with os.fsdecode so they can be opened again
    command_line: list[str]
    cwd: str


@dataclass(frozen=True)
class Module:
    load_bias: int  # added to the ELF file's virtual addresses (0 for a non-PIE executable)
    start: int  # [start, end) spans the loaded segments
    end: int
    unloaded: bool  # dlclosed before the capture; its frames still resolve
    build_id: bytes
    path: str

    def contains(self, address: int) -> bool:
        return self.start <= address < self.end


@dataclass(frozen=True)
class ScanStats:
    """The SCAN section: how the reachability scan at exit went."""

    duration_ns: int
    bytes_scanned: int
    root_bytes: int
    threads_stopped: int
    threads_not_stopped: int  # they block the scan signal (docs/capture-format.md)
    heuristics_mask: int  # bit (1 << h) set when heuristic h was on

    @property
    def heuristics(self) -> list[str]:
        """Names of the heuristics that were on, in the header's order."""
        return [name for number, name in fmt.HEURISTICS.items()
                if number != fmt.HEURISTIC_NONE and self.heuristics_mask & (1 << number)]


class BlockRow(NamedTuple):
    """One live block, as plain Python values (for dumping and for the test writer)."""

    address: int
    size: int
    stack_id: int
    kind: int
    alloc_time_ns: int
    leak_kind: int = fmt.LEAK_UNSCANNED
    heuristic: int = fmt.HEURISTIC_NONE


class LeakGroupRow(NamedTuple):
    """A definitely lost block and the indirectly lost blocks only it reaches."""

    address: int
    indirect_bytes: int
    indirect_blocks: int


class FatalRecord(NamedTuple):
    """FATAL: the signal that ended the program and the backtrace of the code it interrupted
    (the interrupted instruction's address + 1 first, looked up like the return addresses)."""

    signal: int
    code: int  # si_code, signed
    address: int  # a fault's address, else 0
    sender_pid: int  # a sent signal's sender, else 0
    thread_id: int
    thread_name: str
    flags: int  # FATAL_FLAG_*
    addresses: tuple[int, ...]
    # With FATAL_FLAG_IN_HANDLER (the struck code ran in a signal handler): the CPU's trap
    # number, error code and fault address of the thread's last fault, from the handler's frame.
    handler_trapno: int = 0
    handler_error: int = 0
    handler_fault_address: int = 0


class InvalidFreeRow(NamedTuple):
    """INVALID_FREES: calls from one backtrace that freed (or reallocated) an address the
    shim never saw allocated, or saw freed already."""

    stack_id: int
    api: int  # FREE_API_*
    calls: int
    first_address: int


@dataclass
class Capture:
    path: str
    header: CaptureHeader
    process: ProcessInfo | None = None
    modules: list[Module] = field(default_factory=list)
    # {stack id: Stack}; read from a file, a StackTable (numpy arrays, same mapping).
    stacks: Mapping[int, Stack] = field(default_factory=dict)
    blocks: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=BLOCK_DTYPE))
    counters: dict[str, int] = field(default_factory=dict)
    leak_groups: np.ndarray = field(
        default_factory=lambda: np.zeros(0, dtype=LEAK_GROUP_DTYPE))
    scan: ScanStats | None = None  # None: no reachability scan ran (or a version 1 file)
    session: Session | None = None  # SESSION: why the capture was written (capture/series.py)
    series: Series | None = None  # SERIES: per-backtrace totals at every snapshot
    notes: list[str] = field(default_factory=list)  # NOTES: what the shim could not see
    fatal: FatalRecord | None = None  # FATAL: the signal that ended the program
    # INVALID_FREES: None when the shim did not check (attached, sampling, paused, ...).
    invalid_frees: list[InvalidFreeRow] | None = None
    invalid_frees_unrecorded: int = 0  # such calls whose backtrace did not fit the shim's table
    # Tags this version does not know and skipped, in file order.
    unknown_sections: list[int] = field(default_factory=list)

    @property
    def scanned(self) -> bool:
        """Whether the heap blocks carry leak kinds from a reachability scan."""
        return self.scan is not None

    @property
    def sample_mean_bytes(self) -> int | None:
        """Sampling mode (`--sample BYTES`): the mean bytes between samples; None when every
        block was recorded."""
        return self.counters.get("sample_mean_bytes") or None

    def block_rows(self) -> Iterator[BlockRow]:
        for (address, size, stack_id, kind, leak_kind, heuristic, _flags,
             alloc_time) in self.blocks.tolist():
            yield BlockRow(address, size, stack_id, kind, alloc_time, leak_kind, heuristic)

    def leak_group_rows(self) -> Iterator[LeakGroupRow]:
        for address, indirect_bytes, indirect_blocks in self.leak_groups.tolist():
            yield LeakGroupRow(address, indirect_bytes, indirect_blocks)


def read_capture(path: str | os.PathLike[str]) -> Capture:
    """Read and check a capture file. Raises CaptureError (one line) for anything unreadable.
    The file is read up to the size it had when opened, placed in memory so that its BLOCKS
    section starts at a multiple of 8 bytes: the sections after the PROCESS and MODULES
    strings all start at the same place modulo 8, and numpy works on arrays of unaligned
    numbers through a slow, buffered path (a million-stack report spent seconds there)."""
    ordinary_pages()  # a big capture's arrays are first touched here and by the report
    name = os.fspath(path)
    with open_regular(name, "capture", error=CaptureError) as f:
        # Only the capture itself is read: what follows its END section (a file padded or
        # extended since) is never a capture's, nor is a file that does not start like one.
        size, blocks_at = _extent(f.fileno(), os.fstat(f.fileno()).st_size)
        pad = -blocks_at % 8
        buffer = _room(pad + size)
        view = memoryview(buffer)[pad:]
        filled = 0
        while filled < size:
            got = os.preadv(f.fileno(), [view[filled:]], filled)
            if not got:
                break  # the file shrank since it was opened
            filled += got
    # Read-only, as bytes were: no reader writes into the arrays viewed on it.
    return parse_capture(memoryview(buffer).toreadonly()[pad:pad + filled], name)


def _room(size: int) -> bytearray | mmap.mmap:
    """Zeroed memory to read `size` bytes into. A big capture's is mapped with its pages
    made at once (MAP_POPULATE): a page fault each as the read fills it cost this project's
    VMs 0.8-3.7 s of system time for a 600 MB capture, made at once 0.4-0.7 s."""
    populate = getattr(mmap, "MAP_POPULATE", 0)
    if size < _MAPPED_FROM or not populate:
        return bytearray(size)
    try:
        return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate)
    except OSError:
        return bytearray(size)


def _extent(fd: int, size: int) -> tuple[int, int]:
    """(bytes to read, where the BLOCKS section's content starts or 0), from the header and
    the section headers alone. A file that does not start with the magic gets its first
    bytes read only (the parse says what it is); one whose sections cannot be followed is
    read whole (the parse says where it breaks)."""
    head = os.pread(fd, fmt.HEADER_SIZE, 0)
    if len(head) < fmt.HEADER_SIZE or not head.startswith(fmt.MAGIC):
        return min(size, fmt.HEADER_SIZE), 0
    pos = _HEADER.unpack_from(head, 0)[2]  # header_size
    blocks_at = 0
    for _ in range(1024):  # a capture has about ten sections
        section = os.pread(fd, fmt.SECTION_HEADER_SIZE, pos)
        if len(section) < fmt.SECTION_HEADER_SIZE:
            return size, blocks_at
        tag, _reserved, length = _SECTION.unpack_from(section, 0)
        pos += fmt.SECTION_HEADER_SIZE
        if tag == fmt.SECTION_BLOCKS and not blocks_at:
            blocks_at = pos
        if length > size - pos:
            return size, blocks_at
        pos += length
        if tag == fmt.SECTION_END:
            return pos, blocks_at
    return size, blocks_at


def parse_capture(data: bytes | bytearray | memoryview, name: str = "<capture>") -> Capture:
    """Parse capture bytes; `name` only appears in error messages."""
    header = _parse_header(data, name)
    capture = Capture(path=name, header=header)
    view = memoryview(data)
    pos = header.header_size
    seen: set[int] = set()
    while True:
        if len(data) - pos < fmt.SECTION_HEADER_SIZE:
            raise CaptureError(
                f"{name} is truncated: it ends at byte {len(data)} without an END section "
                "(the program may have died while writing it)"
            )
        tag, _reserved, length = _SECTION.unpack_from(data, pos)
        pos += fmt.SECTION_HEADER_SIZE
        section = fmt.SECTION_NAMES.get(tag, f"section {tag}")
        if length > len(data) - pos:
            raise CaptureError(
                f"{name} is truncated: its {section} section at byte "
                f"{pos - fmt.SECTION_HEADER_SIZE} claims {length} bytes but only "
                f"{len(data) - pos} remain"
            )
        if tag == fmt.SECTION_END:
            break
        if tag in seen and tag in fmt.SECTION_NAMES:
            raise CaptureError(f"{name} is corrupt: it has two {section} sections")
        seen.add(tag)
        cursor = Cursor(view[pos : pos + length], f"{name}: {section} section")
        _parse_section(capture, tag, cursor)
        pos += length
    return capture


def _parse_header(data: bytes | bytearray | memoryview, name: str) -> CaptureHeader:
    if len(data) < len(fmt.MAGIC) or data[: len(fmt.MAGIC)] != fmt.MAGIC:
        raise CaptureError(f"{name} is not a leaktrace capture (its first bytes are not LEAKTRC)")
    if len(data) < fmt.HEADER_SIZE:
        raise CaptureError(f"{name} is truncated: {len(data)} bytes, shorter than its header")
    (_magic, version, header_size, pid, flags, start_ns, capture_ns, start_mono, capture_mono,
     pointer_size, _reserved) = _HEADER.unpack_from(data, 0)
    if version > fmt.VERSION:
        raise CaptureError(
            f"capture format version {version} is newer than this leaktrace "
            f"(reads up to {fmt.VERSION}); upgrade leaktrace"
        )
    if version == 0:
        raise CaptureError(f"{name} is corrupt: capture format version 0 does not exist")
    if header_size < fmt.HEADER_SIZE or header_size > len(data):
        raise CaptureError(f"{name} is corrupt: header size {header_size} is out of range")
    if pointer_size != fmt.POINTER_SIZE:
        raise CaptureError(
            f"{name} has {pointer_size}-byte pointers; this leaktrace reads only 64-bit captures"
        )
    return CaptureHeader(version, header_size, pid, flags, start_ns, capture_ns, start_mono,
                         capture_mono, pointer_size)


def _parse_section(capture: Capture, tag: int, cursor: Cursor) -> None:
    if tag == fmt.SECTION_PROCESS:
        capture.process = _parse_process(cursor)
    elif tag == fmt.SECTION_MODULES:
        capture.modules = _parse_modules(cursor)
    elif tag == fmt.SECTION_STACKS:
        capture.stacks = parse_stacks(cursor)
    elif tag == fmt.SECTION_BLOCKS:
        capture.blocks = _parse_blocks(cursor, capture.header.version)
    elif tag == fmt.SECTION_COUNTERS:
        capture.counters = _parse_counters(cursor)
    elif tag == fmt.SECTION_LEAK_GROUPS and capture.header.version >= 2:
        capture.leak_groups = _parse_leak_groups(cursor)
    elif tag == fmt.SECTION_SCAN and capture.header.version >= 2:
        capture.scan = _parse_scan(cursor)
    elif tag == fmt.SECTION_SESSION:
        capture.session = parse_session(cursor)
    elif tag == fmt.SECTION_SERIES:
        capture.series = parse_series(cursor)
    elif tag == fmt.SECTION_NOTES:
        capture.notes = _parse_notes(cursor)
    elif tag == fmt.SECTION_FATAL:
        capture.fatal = _parse_fatal(cursor)
    elif tag == fmt.SECTION_INVALID_FREES:
        capture.invalid_frees, capture.invalid_frees_unrecorded = _parse_invalid_frees(cursor)
    else:
        capture.unknown_sections.append(tag)  # a later minor addition: skipped by design


def _parse_process(c: Cursor) -> ProcessInfo:
    ppid = c.u32("ppid")
    c.u32("reserved")
    executable = os.fsdecode(c.string("executable"))
    raw_args = c.string("command line")
    cwd = os.fsdecode(c.string("cwd"))
    args = raw_args.split(b"\0")
    if args and args[-1] == b"":
        args.pop()  # a trailing NUL terminates the last argument
    return ProcessInfo(ppid, executable, [os.fsdecode(a) for a in args], cwd)


def _parse_modules(c: Cursor) -> list[Module]:
    count = c.count("module count", 32)
    c.u32("reserved")
    modules = []
    for i in range(count):
        what = f"module {i}"
        load_bias = c.u64(f"{what} load bias")
        start = c.u64(f"{what} start")
        end = c.u64(f"{what} end")
        flags = c.u32(f"{what} flags")
        build_id = bytes(c.take(c.u32(f"{what} build-id length"), f"{what} build-id"))
        path = os.fsdecode(c.string(f"{what} path"))
        if end < start:
            raise CaptureError(f"{c.where} is corrupt: {what} ends before it starts")
        modules.append(Module(load_bias, start, end, bool(flags & fmt.MODULE_FLAG_UNLOADED),
                              build_id, path))
    return modules


def _parse_blocks(c: Cursor, version: int) -> np.ndarray:
    count = c.count("block count", fmt.BLOCK_RECORD_SIZE, wide=True)
    if c.remaining() != count * fmt.BLOCK_RECORD_SIZE:
        raise CaptureError(
            f"{c.where} is corrupt: {count} blocks need {count * fmt.BLOCK_RECORD_SIZE} bytes, "
            f"the section has {c.remaining()}"
        )
    raw = c.take(count * fmt.BLOCK_RECORD_SIZE, "blocks")
    blocks = np.frombuffer(raw, dtype=BLOCK_DTYPE, count=count)
    if version < 2 and count and (blocks["leak_kind"].any() or blocks["heuristic"].any()
                                  or blocks["flags"].any()):
        # Version 1 called these bytes reserved: whatever a writer left there means nothing.
        blocks = blocks.copy()
        blocks["leak_kind"] = fmt.LEAK_UNSCANNED
        blocks["heuristic"] = fmt.HEURISTIC_NONE
        blocks["flags"] = 0
    if count and int(blocks["size"].max()) > MAX_BLOCK_SIZE:
        raise CaptureError(f"{c.where} is corrupt: a block is larger than any address space "
                           f"({int(blocks['size'].max())} bytes)")
    if version >= 2 and count:
        # A number the format does not define would silently drop blocks from every total.
        for byte, known in (("leak_kind", fmt.LEAK_KINDS), ("heuristic", fmt.HEURISTICS)):
            highest = int(blocks[byte].max())
            if highest > max(known):
                raise CaptureError(f"{c.where} is corrupt: a block has {byte} {highest}, "
                                   f"which the format does not define")
    return drop_superblocks(blocks)


def _parse_notes(c: Cursor) -> list[str]:
    count = c.count("note count", 4)
    c.u32("reserved")
    return [c.string(f"note {i}").decode("utf-8", "replace") for i in range(count)]


def _parse_invalid_frees(c: Cursor) -> tuple[list[InvalidFreeRow], int]:
    count = c.count("invalid free count", fmt.INVALID_FREE_RECORD_SIZE)
    unrecorded = c.u32("unrecorded invalid frees")
    rows = []
    for i in range(count):
        stack_id, api = c.u32(f"invalid free {i} stack id"), c.u32(f"invalid free {i} API")
        rows.append(InvalidFreeRow(stack_id, api, c.u64(f"invalid free {i} count"),
                                   c.u64(f"invalid free {i} address")))
    return rows, unrecorded


def _parse_fatal(c: Cursor) -> FatalRecord:
    signal = c.u32("signal")
    code = c.u32("si_code")
    address = c.u64("fault address")
    sender = c.u32("sender pid")
    thread_id = c.u32("thread id")
    flags = c.u32("flags")
    depth = c.u32("depth")
    name = bytes(c.take(16, "thread name")).split(b"\0", 1)[0].decode("utf-8", "replace")
    trapno = c.u32("handler trap number")
    error = c.u32("handler error code")
    fault_address = c.u64("handler fault address")
    if c.remaining() != depth * fmt.POINTER_SIZE:
        raise CaptureError(f"{c.where} is corrupt: a backtrace of {depth} frames needs "
                           f"{depth * fmt.POINTER_SIZE} bytes, the section has {c.remaining()}")
    addresses = struct.unpack(f"<{depth}Q", c.take(depth * fmt.POINTER_SIZE, "backtrace"))
    return FatalRecord(signal, _signed(code), address, sender, thread_id, name, flags,
                       addresses, trapno, error, fault_address)


def _signed(u32: int) -> int:
    return u32 - (1 << 32) if u32 >= 1 << 31 else u32


def _parse_counters(c: Cursor) -> dict[str, int]:
    count = c.count("counter count", 12)
    c.u32("reserved")
    counters = {}
    for i in range(count):
        name = c.string(f"counter {i} name").decode("utf-8", "replace")
        counters[name] = c.u64(f"counter {name} value")
    return counters


def _parse_leak_groups(c: Cursor) -> np.ndarray:
    count = c.count("leak group count", fmt.LEAK_GROUP_RECORD_SIZE, wide=True)
    if c.remaining() != count * fmt.LEAK_GROUP_RECORD_SIZE:
        raise CaptureError(
            f"{c.where} is corrupt: {count} leak groups need "
            f"{count * fmt.LEAK_GROUP_RECORD_SIZE} bytes, the section has {c.remaining()}"
        )
    raw = c.take(count * fmt.LEAK_GROUP_RECORD_SIZE, "leak groups")
    return np.frombuffer(raw, dtype=LEAK_GROUP_DTYPE, count=count)


def _parse_scan(c: Cursor) -> ScanStats:
    if c.remaining() < fmt.SCAN_PAYLOAD_SIZE:
        raise CaptureError(
            f"{c.where} is corrupt: it has {c.remaining()} bytes, fewer than the "
            f"{fmt.SCAN_PAYLOAD_SIZE} of its fields"
        )
    duration = c.u64("duration")
    scanned = c.u64("bytes scanned")
    roots = c.u64("root bytes")
    stopped = c.u32("threads stopped")
    not_stopped = c.u32("threads not stopped")
    heuristics = c.u32("heuristics")
    c.u32("reserved")  # later versions may append fields: the rest is skipped
    return ScanStats(duration, scanned, roots, stopped, not_stopped, heuristics)
