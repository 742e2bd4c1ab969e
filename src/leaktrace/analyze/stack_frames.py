"""Backtraces as the reports show them: symbolized frames and the text of the stable id
(encoded, os.fsencode: analyze/stack_ids.stable_stack_id_of_bytes).

A big capture has a million stacks but only thousands of distinct return addresses (call
sites), so each distinct address is located, symbolized and formatted once; a stack is then
a lookup per address. The Frame objects of one address are shared by every stack through it:
reports never modify frames."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator
from itertools import chain

import numpy as np

from leaktrace.analyze.module_map import ModuleMap
from leaktrace.capture.distinct import distinct
from leaktrace.capture.id_rows import take_rows
from leaktrace.capture.reader import Capture
from leaktrace.capture.stack_table import StackTable
from leaktrace.model import Frame
from leaktrace.symbolize import Symbolizer
from leaktrace.symbolize.elf_info import read_function_symbols
from leaktrace.symbolize.names import OPERATOR_NEW_SYMBOLS
from leaktrace.symbolize.signal_frames import SIGNAL_FRAME_NAME, is_signal_trampoline

_CXX_RUNTIMES = ("libstdc++.so", "libc++.so")


def is_runtime_operator_new(frame: Frame) -> bool:
    """Whether the frame is in an operator new valgrind replaces: the C++ runtime's, or one
    the program defines and exports (gdb does), which every object binds to. One it keeps to
    itself (a static libstdc++) is an ordinary function to both tools."""
    function = frame.function or ""
    if not function.startswith("operator new"):
        return False
    module = frame.module or ""
    if os.path.basename(module).startswith(_CXX_RUNTIMES):
        return True
    symbol = OPERATOR_NEW_SYMBOLS.get(function)
    return symbol is not None and symbol in _exported_functions(module)


@functools.cache
def _exported_functions(path: str) -> frozenset[str]:
    return frozenset(name.decode("utf-8", "replace")
                     for _, _, name in read_function_symbols(path, exported=True))


def symbolize_return_addresses(
        addresses: Iterable[int], modules: ModuleMap,
        symbolizer: Symbolizer) -> dict[int, tuple[tuple[Frame, ...], bytes]]:
    """Each return address's frames (inlined ones first; `address` set to it) and its part of
    a stable id's text (b"module+offset"). A return address points after the call; the call
    itself is one byte earlier, which matters when the call is the last instruction of an
    inlined range: each is looked up at address - 1."""
    out: dict[int, tuple[tuple[Frame, ...], bytes]] = {}
    place: dict[int, tuple[str, int]] = {}  # address -> (module path, lookup offset)
    for ra in addresses:
        module = modules.find(ra)
        if module is None:
            out[ra] = ((Frame(address=ra),), f"?+{ra:x}".encode())
        else:
            place[ra] = (module.path, ra - module.load_bias - 1)
    resolved = symbolizer.resolve(set(place.values()))
    for ra, (path, lookup) in place.items():
        frames = name_signal_frame(resolved[(path, lookup)], path, lookup + 1)
        for frame in frames:
            frame.address = ra
        out[ra] = (tuple(frames), os.fsencode(f"{os.path.basename(path)}+{lookup + 1:x}"))
    return out


def name_signal_frame(frames: list[Frame], path: str, file_address: int) -> list[Frame]:
    """An unresolved frame at a signal trampoline is "<signal handler called>", as in gdb."""
    if len(frames) == 1 and frames[0].function is None and is_signal_trampoline(path,
                                                                                 file_address):
        frames[0].function = SIGNAL_FRAME_NAME
    return frames


def runtime_api_name(operator: str, array: bool) -> str:
    """The API name of a block the runtime's `operator` made: an array new's block is made by
    its scalar operator (new[] calls new), so the name says new[] again."""
    if array and not operator.startswith("operator new[]"):
        return operator.replace("operator new", "operator new[]", 1)
    return operator


class StackFrames:
    """The frames of the given stacks (ids of the capture's STACKS; others have none)."""

    def __init__(self, capture: Capture, stack_ids: Iterable[int],
                 symbolizer: Symbolizer) -> None:
        self.table = StackTable.from_stacks(capture.stacks)
        wanted = distinct(np.fromiter(stack_ids, dtype=np.int64))
        rows = self.table.rows_of(wanted)
        self._wanted = wanted[rows >= 0], rows[rows >= 0]
        self._row_of_ids: dict[int, int] | None = None  # made when first asked for
        self._frames_of: dict[int, tuple[Frame, ...]] = {}  # return address -> its frames
        self._part_of: dict[int, bytes] = {}  # return address -> b"module+offset" of the id
        self._symbolize(self._distinct_addresses(rows[rows >= 0]), capture, symbolizer)
        self.runtime_operators = self._leave_out_runtime_operators(rows[rows >= 0])
        # Plain lists: one numpy call a stack, not three.
        self._start_list: list[int] | None = None  # made when first asked for
        self._depth_list: list[int] | None = None
        self._words = np.asarray(self.table.addresses)
        # Usually each return address is one frame (no inlined calls at it): then a stack
        # is a plain lookup per address.
        self._one_frame_each = all(len(f) == 1 for f in self._frames_of.values())
        self._frame_of = {ra: f[0] for ra, f in self._frames_of.items() if len(f) == 1}

    @property
    def _starts(self) -> list[int]:
        """Plain lists for the per-stack methods: one numpy call a stack, not three (70 MB
        at a million stacks: the report builder reads the arrays instead)."""
        if self._start_list is None:
            self._start_list = self.table.starts.tolist()
        return self._start_list

    @property
    def _depths(self) -> list[int]:
        if self._depth_list is None:
            self._depth_list = self.table.depths.tolist()
        return self._depth_list

    @property
    def _row_of(self) -> dict[int, int]:
        """Row of each wanted stack id (a dict: the report builder uses rows directly)."""
        if self._row_of_ids is None:
            ids, rows = self._wanted
            self._row_of_ids = dict(zip(ids.tolist(), rows.tolist(), strict=True))
        return self._row_of_ids

    def _distinct_addresses(self, rows: np.ndarray) -> list[int]:
        table = self.table
        if 2 * len(rows) >= len(table):  # most stacks: the few others' addresses cost little
            return table.distinct_addresses().tolist()
        addresses = np.asarray(table.addresses)
        pieces = [addresses[s:s + d] for s, d in zip(table.starts[rows].tolist(),
                                                     table.depths[rows].tolist(), strict=True)]
        if not pieces:
            return []
        return distinct(np.concatenate(pieces).astype(np.uint64)).tolist()

    def _symbolize(self, addresses: list[int], capture: Capture,
                   symbolizer: Symbolizer) -> None:
        for ra, (frames, part) in symbolize_return_addresses(
                addresses, ModuleMap(capture.modules), symbolizer).items():
            self._frames_of[ra] = frames
            self._part_of[ra] = part

    def _leave_out_runtime_operators(self, rows: np.ndarray) -> dict[int, str]:
        """The C++ runtime's operator new at the head of a stack is left out, as valgrind's
        replacement of it is: frame 0 is then the program's `new` expression, and the record's
        API is named after the operator instead (returned: row -> the outermost operator's
        name)."""
        operators = {ra: frames[-1].function or "" for ra, frames in self._frames_of.items()
                     if is_runtime_operator_new(frames[-1])}
        if not operators or not len(rows):
            return {}
        words = np.asarray(self.table.addresses)
        keys = np.array(sorted(operators), dtype=np.uint64)
        starts, depths = self.table.starts.copy(), self.table.depths.copy()
        outermost: dict[int, int] = {}
        candidates = rows
        while len(candidates):
            candidates = candidates[depths[candidates] > 0]
            first = words[starts[candidates]].astype(np.uint64)
            hit = np.isin(first, keys)
            candidates = candidates[hit]
            outermost.update(zip(candidates.tolist(), first[hit].tolist(), strict=True))
            starts[candidates] += 1
            depths[candidates] -= 1
        self.table.starts, self.table.depths = starts, depths
        return {row: operators[address] for row, address in outermost.items()}

    def _addresses(self, stack_id: int) -> list[int] | None:
        row = self._row_of.get(stack_id)
        if row is None:
            return None
        start = self._starts[row]
        return self._words[start:start + self._depths[row]].tolist()

    def _describe(self, addresses: list[int]) -> tuple[list[Frame], bytes]:
        if self._one_frame_each:
            frames = list(map(self._frame_of.__getitem__, addresses))
        else:
            frames = list(chain.from_iterable(map(self._frames_of.__getitem__, addresses)))
        return frames, b"|".join(map(self._part_of.__getitem__, addresses))

    def frames_and_id_text(self, stack_id: int) -> tuple[list[Frame], bytes] | None:
        """The stack's frames, innermost first (inlined frames each on their own), and the
        text its stable id is hashed from; None for a stack the capture does not have."""
        addresses = self._addresses(stack_id)
        return None if addresses is None else self._describe(addresses)

    def each(self, stack_ids: list[int]) -> Iterator[tuple[list[Frame], bytes] | None]:
        """frames_and_id_text of each id in turn, made as they are used (a million id texts
        would not fit in memory together). Ids in file order, as reports group them, are
        read a few thousand stacks at a time: one numpy call a batch, not one a stack."""
        batch_size = 4096
        for begin in range(0, len(stack_ids), batch_size):
            rows = [self._row_of.get(s) for s in stack_ids[begin:begin + batch_size]]
            present = [r for r in rows if r is not None]
            words, low = None, 0
            if present:
                low = min(self._starts[r] for r in present)
                high = max(self._starts[r] + self._depths[r] for r in present)
                if high - low <= 2 * sum(self._depths[r] for r in present) + 4096:
                    words = self._words[low:high].tolist()
            for row in rows:
                if row is None:
                    yield None
                elif words is None:
                    start = self._starts[row]
                    yield self._describe(self._words[start:start + self._depths[row]].tolist())
                else:
                    start = self._starts[row] - low
                    yield self._describe(words[start:start + self._depths[row]])

    def id_parts(self) -> dict[int, bytes]:
        """Each symbolized return address's part of the stable id's text (b"module+offset",
        offset in hex)."""
        return self._part_of

    def frames_by_address(self) -> dict[int, tuple[Frame, ...]]:
        """Every return address symbolized, and its frames (innermost first)."""
        return self._frames_of

    def frames_of_row(self, row: int) -> list[Frame]:
        """The frames of the stack in `row` of the table."""
        start = self._starts[row]
        return self._describe(self._words[start:start + self._depths[row]].tolist())[0]

    def id_texts_of_rows(self, rows: list[int]) -> Iterator[bytes]:
        """The text each stack's stable id is hashed from (b"" for row -1), made as they are
        used. Rows in file order are read a few thousand at a time: the parts of the words
        from the first stack's to the last one's are gathered by numpy at once, each stack's
        text a slice of that."""
        addresses = np.array(sorted(self._part_of), dtype=np.uint64)
        parts = [self._part_of[a] + b"|" for a in addresses.tolist()]
        lengths = np.array([len(p) for p in parts], dtype=np.int64)
        # Each part as a line of bytes, padded: a batch's text is then gathered by numpy.
        width = int(lengths.max(initial=1))
        padded = np.frombuffer(b"".join(p.ljust(width, b"\0") for p in parts),
                               dtype=np.uint8).reshape(len(parts), width)
        used = np.arange(width)[None, :] < lengths[:, None]
        batch_size = 4096
        for begin in range(0, len(rows), batch_size):
            batch = np.asarray(rows[begin:begin + batch_size], dtype=np.int64)
            present = batch >= 0
            starts = take_rows(self.table.starts, batch, 0)
            depths = take_rows(self.table.depths, batch, 0)
            low = int(starts[present].min(initial=1 << 62))
            high = int((starts + depths)[present].max(initial=0))
            if not present.any():
                low = high = 0
            if high - low > 2 * int(depths.sum()) + 4096:
                yield from self._id_texts_one_by_one(batch.tolist())
                continue
            # Words between stacks (entry headers) are joined too, as any address: only
            # the stacks' slices are used.
            numbers = np.minimum(np.searchsorted(addresses, self._words[low:high]),
                                 len(addresses) - 1) if len(addresses) else \
                np.zeros(high - low, dtype=np.int64)
            joined = padded[numbers][used[numbers]].tobytes() if len(parts) else b""
            ends = np.cumsum(lengths[numbers]).tolist() if len(parts) else []
            ends.insert(0, 0)
            for start, depth in zip((starts - low).tolist(), depths.tolist(), strict=True):
                yield joined[ends[start]:ends[start + depth] - 1] if depth else b""

    def _id_texts_one_by_one(self, rows: list[int]) -> Iterator[bytes]:
        part = self._part_of.__getitem__
        for row in rows:
            if row < 0:
                yield b""
                continue
            start = self._starts[row]
            yield b"|".join(map(part, self._words[start:start + self._depths[row]].tolist()))

    def frames(self, stack_id: int) -> list[Frame]:
        found = self.frames_and_id_text(stack_id)
        return found[0] if found is not None else []

