"""Streaming reader for glibc MALLOC_TRACE logs (what `mtrace()` writes).

It replays the log the way glibc's `mtrace` perl script does: `+`/`>` add a live block,
`-`/`<` remove one, `!` (failed realloc) and `=` (Start/End markers) change nothing. Only the
blocks still live are kept in memory, so logs of any size stream through in one pass.

The caller texts are kept as written; turning them into file:line is `mtrace_callers`' job.
Lines `# <hex address> <module>+<hex offset>` right after an allocation are leaktrace's
backtrace extension (docs/mtrace-log.md); glibc's script ignores them.
"""

from __future__ import annotations

import enum
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from leaktrace.input_files import open_regular
from leaktrace.progress import byte_progress

MALLOC_API = "malloc"  # a `+` line: malloc, calloc, strdup, ... glibc does not say which
REALLOC_API = "realloc"  # a `>` line: the new block of a realloc

_OPERATIONS = frozenset((b"+", b"-", b"<", b">", b"!", b"="))
_CHUNK_BYTES = 4 << 20  # read this much at a time
_MAX_LINE_BYTES = 1 << 20  # longer than any log line: the file is not an mtrace log


@dataclass(frozen=True)
class StackFrame:
    """One line of the backtrace extension."""

    address: int  # runtime return address
    module: str
    offset: int  # address minus the module's load bias: an ELF virtual address


Stack = tuple[StackFrame, ...]


@dataclass(frozen=True)
class LiveBlock:
    address: int
    size: int
    caller: str  # as written after `@`, "" when the line had no caller
    stack: Stack | None  # the full backtrace when the log has the extension
    api: str  # MALLOC_API or REALLOC_API


class AnomalyKind(enum.Enum):
    FREE_UNKNOWN = "free of a block that was never allocated"
    REALLOC_UNKNOWN = "realloc of a block that was never allocated"
    ALLOC_DUPLICATE = "allocation of an address that is still live"
    REALLOC_DUPLICATE = "realloc returned an address that is still live"


@dataclass(frozen=True)
class Anomaly:
    """Something glibc's script prints while reading (a free of an unknown pointer, ...)."""

    kind: AnomalyKind
    line: int  # 1-based line number in the log
    address: int
    caller: str  # the caller on this line
    live_caller: str = ""  # for duplicates: the caller of the block already live there
    live_size: int = 0  # for duplicates: the size of the block already live there


@dataclass
class CallSiteTotal:
    """Every allocation made from one caller (and backtrace), freed or not."""

    allocations: int = 0
    bytes: int = 0


@dataclass
class MtraceLog:
    live: list[LiveBlock]
    anomalies: list[Anomaly]
    totals: dict[tuple[str, str, Stack | None], CallSiteTotal]  # by (api, caller, stack)
    counters: Counter[str] = field(default_factory=Counter)

    @property
    def has_backtraces(self) -> bool:
        return any(block.stack for block in self.live)


MalformedLineHandler = Callable[[int, str, bytes], None]  # (line number, reason, raw line)


class _MalformedLine(Exception):
    pass


_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


def _hex(token: bytes, what: str) -> int:
    """A 64-bit value as glibc writes it (%p, %#lx): hex digits, "0x" allowed; no sign."""
    digits = token[2:] if token[:2] in (b"0x", b"0X") else token
    if not digits or not set(digits) <= _HEX_DIGITS:
        raise _MalformedLine(f"{what} is not a hexadecimal number")
    value = int(digits, 16)
    if value >> 64:
        raise _MalformedLine(f"{what} does not fit in 64 bits")
    return value


class MtraceLogReader:
    """Feed it the log's lines (bytes, in order), then call `finish()`."""

    def __init__(self, on_malformed: MalformedLineHandler | None = None) -> None:
        self._on_malformed = on_malformed
        # live blocks: address -> (size, caller, stack, api); tuples keep millions of them cheap
        self._live: dict[int, tuple[int, str, Stack | None, str]] = {}
        self._callers: dict[bytes, str] = {}  # interning: one str per distinct caller
        self._stacks: dict[Stack, Stack] = {}
        self._anomalies: list[Anomaly] = []
        self._totals: dict[tuple[str, str, Stack | None], CallSiteTotal] = {}
        self._counters: Counter[str] = Counter()
        self._line_number = 0
        # The last allocation, kept open while its backtrace lines follow:
        # (address, size, caller, api, recorded as live?, frames so far)
        self._pending: tuple[int, int, str, str, bool, list[StackFrame]] | None = None

    def feed(self, lines: Iterable[bytes]) -> None:
        for line in lines:
            self._line_number += 1
            try:
                self._feed_line(line)
            except _MalformedLine as problem:
                self._counters["malformed_lines"] += 1
                if self._on_malformed is not None:
                    self._on_malformed(self._line_number, str(problem), line.rstrip(b"\r\n"))

    def finish(self) -> MtraceLog:
        self._close_pending()
        self._counters["lines"] = self._line_number
        live = [
            LiveBlock(address, size, caller, stack, api)
            for address, (size, caller, stack, api) in self._live.items()
        ]
        return MtraceLog(live, self._anomalies, self._totals, self._counters)

    def _feed_line(self, line: bytes) -> None:
        tokens = line.split()
        if not tokens:
            self._counters["blank_lines"] += 1
            return
        if tokens[0] == b"#":
            self._add_stack_frame(tokens)
            return
        self._close_pending()

        if tokens[0] == b"@":
            index = 2
            if len(tokens) > 2 and tokens[2] in _OPERATIONS:
                caller = self._intern_caller(tokens[1])
            else:  # the caller is everything up to the operation: a path may contain spaces
                while index < len(tokens) and tokens[index] not in _OPERATIONS:
                    index += 1
                if index >= len(tokens):
                    raise _MalformedLine("no operation (+ - < > ! =) after the caller")
                caller = self._intern_caller(b" ".join(tokens[1:index]))
        else:
            index = 0
            caller = ""
        operation, arguments = tokens[index], tokens[index + 1 :]

        if operation == b"=":
            self._counters["markers"] += 1
        elif operation in (b"+", b">"):
            if len(arguments) < 2:
                raise _MalformedLine("an allocation needs an address and a size")
            api = MALLOC_API if operation == b"+" else REALLOC_API
            if arguments[0] == b"(nil)":  # a failed allocation: nothing became live
                self._counters["failed_allocations"] += 1
                return
            size = _hex(arguments[1], "size")
            if size >> 63:
                raise _MalformedLine("size is larger than any address space")
            self._allocate(_hex(arguments[0], "address"), size, caller, api)
        elif operation in (b"-", b"<"):
            if not arguments:
                raise _MalformedLine("a free needs an address")
            self._release(_hex(arguments[0], "address"), caller, is_realloc=operation == b"<")
        elif operation == b"!":
            self._counters["failed_reallocs"] += 1
        else:
            raise _MalformedLine(f"unknown operation {operation.decode(errors='replace')!r}")

    def _intern_caller(self, raw: bytes) -> str:
        caller = self._callers.get(raw)
        if caller is None:
            caller = self._callers[raw] = raw.decode("utf-8", errors="surrogateescape")
        return caller

    def _allocate(self, address: int, size: int, caller: str, api: str) -> None:
        self._counters["allocations" if api == MALLOC_API else "reallocations"] += 1
        live = self._live.get(address)
        if live is not None:
            # glibc's script keeps the first block and reports the second; so do we.
            kind = AnomalyKind.ALLOC_DUPLICATE
            if api == REALLOC_API:
                kind = AnomalyKind.REALLOC_DUPLICATE
            self._anomalies.append(
                Anomaly(kind, self._line_number, address, caller, live[1], live[0])
            )
            self._counters["duplicate_allocations"] += 1
        else:
            self._live[address] = (size, caller, None, api)
        self._pending = (address, size, caller, api, live is None, [])

    def _release(self, address: int, caller: str, *, is_realloc: bool) -> None:
        self._counters["realloc_frees" if is_realloc else "frees"] += 1
        if self._live.pop(address, None) is None:
            kind = AnomalyKind.REALLOC_UNKNOWN if is_realloc else AnomalyKind.FREE_UNKNOWN
            self._anomalies.append(Anomaly(kind, self._line_number, address, caller))
            self._counters["unmatched_frees"] += 1

    def _add_stack_frame(self, tokens: list[bytes]) -> None:
        if self._pending is None:
            raise _MalformedLine("a backtrace line (#) must follow an allocation line")
        if len(tokens) < 3:
            raise _MalformedLine("a backtrace line needs '# <address> <module>+<offset>'")
        module, plus, offset = b" ".join(tokens[2:]).rpartition(b"+")
        if not plus or not module:
            raise _MalformedLine("a backtrace frame must be written <module>+<offset>")
        frame = StackFrame(
            _hex(tokens[1], "return address"),
            self._intern_caller(module),
            _hex(offset, "module offset"),
        )
        self._pending[5].append(frame)
        self._counters["backtrace_lines"] += 1

    def _close_pending(self) -> None:
        if self._pending is None:
            return
        address, size, caller, api, recorded, frames = self._pending
        self._pending = None
        stack: Stack | None = None
        if frames:
            as_tuple = tuple(frames)
            stack = self._stacks.setdefault(as_tuple, as_tuple)
            if recorded:
                self._live[address] = (size, caller, stack, api)
        total = self._totals.get((api, caller, stack))
        if total is None:
            total = self._totals[(api, caller, stack)] = CallSiteTotal()
        total.allocations += 1
        total.bytes += size


def read_mtrace_log(path: str, on_malformed: MalformedLineHandler | None = None) -> MtraceLog:
    """Read a whole log, showing a progress bar on a terminal."""
    log = open_regular(path, "mtrace log")
    size = os.fstat(log.fileno()).st_size

    reader = MtraceLogReader(on_malformed)
    with log, byte_progress(size, "reading mtrace log") as advance:
        for lines, consumed in _chunked_lines(log, size):
            reader.feed(lines)
            advance(consumed)
    return reader.finish()


def _chunked_lines(log: BinaryIO, size: int) -> Iterator[tuple[list[bytes], int]]:
    """Yield (lines, bytes consumed) a large chunk at a time: splitting in C is much faster
    than a readline per line, and a file without newlines cannot fill the memory. Reads stop
    at the size the file had when opened: a log still being written is read to that point."""
    carry = b""
    skipping = False  # in the rest of an overlong line, already given as one malformed line
    left = size
    while left > 0 and (chunk := log.read(min(_CHUNK_BYTES, left))):
        left -= len(chunk)
        data = carry + chunk
        if skipping:
            end = data.find(b"\n")
            if end < 0:
                carry = b""
                yield [], len(chunk)
                continue
            data, skipping = data[end + 1:], False
        lines = data.split(b"\n")
        carry = lines.pop()
        if len(carry) > _MAX_LINE_BYTES:  # not a log line: let the parser call it malformed
            lines.append(carry[:200])
            carry, skipping = b"", True
        yield lines, len(chunk)
    if carry:
        yield [carry], 0
