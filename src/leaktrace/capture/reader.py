"""Parse a capture file (docs/capture-format.md) into typed objects.

The whole file is read into memory: captures are aggregated (one entry per live block and per
distinct backtrace), so they stay far smaller than the traced program's heap. Blocks are kept
as a numpy structured array viewed directly on the file bytes: a leaky program can have
millions of live blocks, and grouping them is then vectorized instead of a Python loop.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from leaktrace.capture import format as fmt
from leaktrace.capture.cursor import Cursor
from leaktrace.capture.errors import CaptureError

# One BLOCKS record; numpy reads the section without copying it.
BLOCK_DTYPE = np.dtype(
    [
        ("address", "<u8"),
        ("size", "<u8"),
        ("stack_id", "<u4"),
        ("kind", "u1"),
        ("reserved", "V3"),
        ("alloc_time_ns", "<u8"),
    ]
)
assert BLOCK_DTYPE.itemsize == fmt.BLOCK_RECORD_SIZE

_HEADER = struct.Struct("<8sIIIIQQQQII")
_SECTION = struct.Struct("<IIQ")


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
class Stack:
    stack_id: int
    alloc_count: int
    alloc_bytes: int
    free_count: int
    freed_bytes: int
    live_blocks: int
    live_bytes: int
    return_addresses: tuple[int, ...]  # innermost first


class BlockRow(NamedTuple):
    """One live block, as plain Python values (for dumping and for the test writer)."""

    address: int
    size: int
    stack_id: int
    kind: int
    alloc_time_ns: int


@dataclass
class Capture:
    path: str
    header: CaptureHeader
    process: ProcessInfo | None = None
    modules: list[Module] = field(default_factory=list)
    stacks: dict[int, Stack] = field(default_factory=dict)
    blocks: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=BLOCK_DTYPE))
    counters: dict[str, int] = field(default_factory=dict)
    # Tags this version does not know and skipped, in file order.
    unknown_sections: list[int] = field(default_factory=list)

    def block_rows(self) -> Iterator[BlockRow]:
        for address, size, stack_id, kind, _reserved, alloc_time in self.blocks.tolist():
            yield BlockRow(address, size, stack_id, kind, alloc_time)


def read_capture(path: str | os.PathLike[str]) -> Capture:
    """Read and check a capture file. Raises CaptureError (one line) for anything unreadable."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CaptureError(f"cannot read {name}: {e.strerror or e}") from None
    return parse_capture(data, name)


def parse_capture(data: bytes, name: str = "<capture>") -> Capture:
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


def _parse_header(data: bytes, name: str) -> CaptureHeader:
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
        capture.stacks = _parse_stacks(cursor)
    elif tag == fmt.SECTION_BLOCKS:
        capture.blocks = _parse_blocks(cursor)
    elif tag == fmt.SECTION_COUNTERS:
        capture.counters = _parse_counters(cursor)
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


_STACK_FIXED = struct.Struct("<II6Q")


def _parse_stacks(c: Cursor) -> dict[int, Stack]:
    count = c.count("stack count", fmt.STACK_ENTRY_SIZE)
    c.u32("reserved")
    stacks: dict[int, Stack] = {}
    for i in range(count):
        fixed = c.take(fmt.STACK_ENTRY_SIZE, f"stack {i}")
        stack_id, depth, allocs, alloc_bytes, frees, freed_bytes, live, live_bytes = (
            _STACK_FIXED.unpack(fixed))
        if depth * 8 > c.remaining():
            raise CaptureError(
                f"{c.where} is corrupt: stack {stack_id} has depth {depth}, more than the "
                "section holds"
            )
        addresses = struct.unpack(f"<{depth}Q", c.take(depth * 8, f"stack {stack_id}"))
        if stack_id in stacks:
            raise CaptureError(f"{c.where} is corrupt: stack id {stack_id} appears twice")
        stacks[stack_id] = Stack(stack_id, allocs, alloc_bytes, frees, freed_bytes, live,
                                 live_bytes, tuple(addresses))
    return stacks


def _parse_blocks(c: Cursor) -> np.ndarray:
    count = c.count("block count", fmt.BLOCK_RECORD_SIZE, wide=True)
    if c.remaining() != count * fmt.BLOCK_RECORD_SIZE:
        raise CaptureError(
            f"{c.where} is corrupt: {count} blocks need {count * fmt.BLOCK_RECORD_SIZE} bytes, "
            f"the section has {c.remaining()}"
        )
    raw = c.take(count * fmt.BLOCK_RECORD_SIZE, "blocks")
    return np.frombuffer(raw, dtype=BLOCK_DTYPE, count=count)


def _parse_counters(c: Cursor) -> dict[str, int]:
    count = c.count("counter count", 12)
    c.u32("reserved")
    counters = {}
    for i in range(count):
        name = c.string(f"counter {i} name").decode("utf-8", "replace")
        counters[name] = c.u64(f"counter {name} value")
    return counters
