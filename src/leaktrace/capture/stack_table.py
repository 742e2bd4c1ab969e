"""The STACKS section as numpy arrays: a big capture has a million distinct backtraces and
tens of millions of return addresses, far too many for a Python tuple each. `StackTable` still
reads as the `{stack id: Stack}` mapping small consumers use; the report builder works on its
arrays."""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping

import numpy as np

from leaktrace.capture import format as fmt
from leaktrace.capture.cursor import Cursor
from leaktrace.capture.distinct import distinct
from leaktrace.capture.errors import CaptureError
from leaktrace.capture.id_rows import rows_in, take_rows
from leaktrace.capture.stack import Stack

# No count or byte total a real process reaches: past this a field is corrupt, and the
# analysis (64-bit signed numpy arithmetic) must never see it.
MAX_TOTAL = (1 << 63) - 1

_ID_DEPTH = struct.Struct("<II")
_WORDS_BEFORE_ADDRESSES = fmt.STACK_ENTRY_SIZE // 8  # id+depth, then six u64 totals
# Columns of StackTable.totals, in the file's order.
ALLOC_COUNT, ALLOC_BYTES, FREE_COUNT, FREED_BYTES, LIVE_BLOCKS, LIVE_BYTES = range(6)


class StackTable(Mapping[int, Stack]):
    """Stacks in file order. `ids[i]`, `totals[i]` (six int64 columns, see ALLOC_COUNT...)
    and `addresses[starts[i]:starts[i] + depths[i]]` (innermost first) describe the i-th.
    `addresses` may hold other words between stacks: read from a file it is a view of the
    whole section, so nothing is copied."""

    def __init__(self, ids: np.ndarray, totals: np.ndarray, depths: np.ndarray,
                 addresses: np.ndarray, starts: np.ndarray | None = None) -> None:
        self.ids = ids.astype(np.int64, copy=False)
        self.totals = totals.astype(np.int64, copy=False).reshape(len(ids), 6)
        self.depths = depths.astype(np.int64, copy=False)
        if starts is None:  # the stacks' addresses one after the other
            starts = np.concatenate(([0], np.cumsum(self.depths)[:-1])) if len(ids) else \
                np.zeros(0)
        self.starts = starts.astype(np.int64, copy=False)
        self.addresses = addresses
        self._order = np.argsort(self.ids, kind="stable")
        self._sorted_ids = self.ids[self._order]
        if len(self.ids) == 0:
            # No stacks (every block without a backtrace): one row of zeros past the ids, so
            # that gathering by row -1 ("no stack", masked by the caller) reads something, as
            # it reads the last row of a table that has stacks.
            self.totals = np.zeros((1, 6), dtype=np.int64)
            self.depths = np.zeros(1, dtype=np.int64)
            self.starts = np.zeros(1, dtype=np.int64)

    def distinct_addresses(self) -> np.ndarray:
        """Every return address of every stack, once each, sorted (uint64). Taken a few
        million words at a time: 25 million return addresses copied and sorted whole would
        cost more memory than the rest of a report."""
        from leaktrace import report_native

        words = np.asarray(self.addresses)
        lib = report_native.usable(len(self.ids))
        found = None if lib is None else report_native.distinct_words(
            lib, words, self.starts, self.depths)
        if found is not None:
            return found
        chunk = 1 << 20
        pieces = [np.zeros(0, dtype=np.uint64)]
        for low in range(0, len(words), chunk):
            high = min(low + chunk, len(words))
            starts = np.clip(self.starts, low, high) - low
            ends = np.clip(self.starts + self.depths, low, high) - low
            # +1 at a start, -1 at an end (bincount: ufunc.at is 15x slower)
            inside = np.bincount(starts, minlength=high - low + 1) - np.bincount(
                ends, minlength=high - low + 1)
            keep = np.cumsum(inside[:-1]) > 0  # stacks never overlap
            pieces.append(distinct(words[low:high][keep].astype(np.uint64)))
        return distinct(np.concatenate(pieces))

    @classmethod
    def from_stacks(cls, stacks: Mapping[int, Stack]) -> StackTable:
        """The arrays of a plain {id: Stack} mapping (captures built by hand, in tests)."""
        if isinstance(stacks, StackTable):
            return stacks
        values = list(stacks.values())
        return cls(np.array([s.stack_id for s in values], dtype=np.int64),
                   np.array([(s.alloc_count, s.alloc_bytes, s.free_count, s.freed_bytes,
                              s.live_blocks, s.live_bytes) for s in values],
                            dtype=np.int64).reshape(len(values), 6),
                   np.array([len(s.return_addresses) for s in values], dtype=np.int64),
                   np.array([a for s in values for a in s.return_addresses], dtype=np.uint64),
                   )

    def rows_of(self, stack_ids: np.ndarray) -> np.ndarray:
        """Row of each id, -1 where the table has no such stack."""
        return take_rows(self._order, rows_in(self._sorted_ids, stack_ids))

    def return_addresses(self, row: int) -> tuple[int, ...]:
        start = int(self.starts[row])
        return tuple(self.addresses[start:start + int(self.depths[row])].tolist())

    def stack(self, row: int) -> Stack:
        allocs, alloc_bytes, frees, freed_bytes, live, live_bytes = self.totals[row].tolist()
        return Stack(int(self.ids[row]), allocs, alloc_bytes, frees, freed_bytes, live,
                     live_bytes, self.return_addresses(row))

    def __getitem__(self, stack_id: int) -> Stack:
        if not isinstance(stack_id, int) or not 0 <= stack_id < 1 << 32:
            raise KeyError(stack_id)
        row = int(self.rows_of(np.array([stack_id]))[0])
        if row < 0:
            raise KeyError(stack_id)
        return self.stack(row)

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids.tolist())

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, stack_id: object) -> bool:
        if not isinstance(stack_id, int) or not 0 <= stack_id < 1 << 32:
            return False
        return bool(self.rows_of(np.array([stack_id]))[0] >= 0)

    def __repr__(self) -> str:
        return f"StackTable({len(self)} stacks, {len(self.addresses)} return addresses)"


def parse_stacks(c: Cursor) -> StackTable:
    """The STACKS section. Only each entry's id and depth are read one by one (the entries
    have different lengths); totals and return addresses are gathered by numpy."""
    count = c.count("stack count", fmt.STACK_ENTRY_SIZE)
    c.u32("reserved")
    data, base = c.data, c.pos
    found = _entries_in_c(data, base, count)
    if found is not None:
        entry_bytes, depths, pos = found
    else:
        entry_bytes, depths, pos = _entries(c, count)
    c.pos = pos
    entry_words = entry_bytes >> 3
    # Every entry is a whole number of u64 words after the count: one view of them all.
    words = np.frombuffer(data[base:pos], dtype="<u8")
    ids = (words[entry_words] & 0xFFFFFFFF).astype(np.int64)
    totals = words[entry_words[:, None] + np.arange(1, 7)] if count else \
        np.zeros((0, 6), dtype=np.uint64)
    _check_ids_and_totals(c, ids, totals)
    return StackTable(ids, totals, depths, words, entry_words + _WORDS_BEFORE_ADDRESSES)


def _entries_in_c(data: bytes | memoryview, base: int, count: int
                  ) -> tuple[np.ndarray, np.ndarray, int] | None:
    """_entries by the report helper library, for big sections; None without it, or when an
    entry does not fit (_entries then names it)."""
    from leaktrace import report_native

    lib = report_native.usable(count)
    if lib is None:
        return None
    found = report_native.stack_entries(lib, memoryview(data)[base:], count,
                                        fmt.STACK_ENTRY_SIZE)
    if found is None:
        return None
    entries, depths = found
    end = int(entries[-1] + fmt.STACK_ENTRY_SIZE + 8 * depths[-1]) if count else 0
    return entries, depths, base + end


def _entries(c: Cursor, count: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Where each entry starts (bytes after the count), its depth, and where the section's
    entries end."""
    data, base, end = c.data, c.pos, len(c.data)
    entry_list: list[int] = []
    depth_list: list[int] = []
    unpack_from, entry_size = _ID_DEPTH.unpack_from, fmt.STACK_ENTRY_SIZE
    pos = base
    for i in range(count):
        if end - pos < entry_size:
            c.pos = pos
            c.take(entry_size, f"stack {i}")  # raises: names the missing bytes
        stack_id, depth = unpack_from(data, pos)
        if depth * 8 > end - pos - entry_size:
            raise CaptureError(
                f"{c.where} is corrupt: stack {stack_id} has depth {depth}, more than the "
                "section holds"
            )
        entry_list.append(pos - base)
        depth_list.append(depth)
        pos += entry_size + depth * 8
    return (np.array(entry_list, dtype=np.int64), np.array(depth_list, dtype=np.int64),
            pos)


def _check_ids_and_totals(c: Cursor, ids: np.ndarray, totals: np.ndarray) -> None:
    """The first entry (in file order) that repeats an earlier id or has a total of 2^63 or
    more makes the section corrupt."""
    if len(ids) == 0:
        return
    order = np.argsort(ids, kind="stable")
    repeated = np.zeros(len(ids), dtype=bool)
    repeated[order[1:]] = ids[order[1:]] == ids[order[:-1]]
    too_big = (totals > MAX_TOTAL).any(axis=1)
    bad = np.flatnonzero(repeated | too_big)
    if len(bad) == 0:
        return
    first = int(bad[0])
    stack_id = int(ids[first])
    if repeated[first]:
        raise CaptureError(f"{c.where} is corrupt: stack id {stack_id} appears twice")
    raise CaptureError(f"{c.where} is corrupt: stack {stack_id} has a total of 2^63 or more")
