"""The report helper library (report_native/, libleaktrace_report.so, built by meson next to
the shim): C for the per-record loops Python is too slow for at a million records. Loaded
with ctypes when a report is big enough to gain from it; when the library is absent (a
source tree not built, a platform without a compiler) every caller takes its Python path,
which computes the same values."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import ctypes

LIBRARY_FILE_NAME = "libleaktrace_report.so"
# Below this many records the Python paths take milliseconds: loading ctypes would cost more.
MIN_RECORDS = 2000


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The loaded library, or None when it is not installed (or cannot be loaded)."""
    path = Path(__file__).resolve().parent / LIBRARY_FILE_NAME
    if not path.is_file():
        return None
    import ctypes

    try:
        lib = ctypes.CDLL(os.fspath(path))
    except OSError:
        return None
    pointer, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.lt_blake2b_4.restype = ctypes.c_uint32
    lib.lt_blake2b_4.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    lib.lt_distinct_rows.restype = i64
    lib.lt_distinct_rows.argtypes = [pointer, i64, i64, pointer, pointer, pointer, i64]
    lib.lt_stack_masks.restype = i64
    lib.lt_stack_masks.argtypes = [pointer, pointer, pointer, pointer, i64, pointer, i64,
                                   pointer, pointer]
    lib.lt_distinct_words.restype = i64
    lib.lt_distinct_words.argtypes = [pointer, pointer, pointer, i64, pointer, i64, pointer]
    lib.lt_frame_totals.restype = i64
    lib.lt_frame_totals.argtypes = [pointer, pointer, pointer, pointer, i64, pointer, i64,
                                    pointer, i64, i64, pointer, pointer, pointer, pointer,
                                    pointer]
    lib.lt_gather.restype = i64
    lib.lt_gather.argtypes = [pointer, pointer, pointer, i64, pointer, pointer, pointer, i64,
                              pointer, i64, pointer, i64]
    lib.lt_loss_records.restype = i64
    lib.lt_loss_records.argtypes = [pointer, pointer, i64, pointer, pointer, i64]
    lib.lt_stack_entries.restype = i64
    lib.lt_stack_entries.argtypes = [pointer, i64, i64, i64, pointer, pointer]
    lib.lt_stable_ids.restype = i64
    lib.lt_stable_ids.argtypes = [pointer, pointer, pointer, pointer, pointer, i64, pointer,
                                  pointer, pointer, pointer, i64, pointer]
    return lib


def usable(records: int) -> ctypes.CDLL | None:
    """The library, when `records` records are worth it and it is there."""
    return library() if records >= MIN_RECORDS else None


def _ends(pieces: list[bytes]) -> np.ndarray:
    return np.cumsum([len(p) for p in pieces], dtype=np.int64) if pieces else \
        np.zeros(1, dtype=np.int64)


def _address(array: np.ndarray) -> Any:
    return array.ctypes.data


def stable_ids(lib: ctypes.CDLL, prefixes: list[bytes], parts: dict[int, bytes],
               words: np.ndarray, kinds: np.ndarray, starts: np.ndarray,
               depths: np.ndarray) -> np.ndarray | None:
    """analyze/stack_ids.stable_stack_id_of_bytes of each record, as the number its 8 hex
    digits spell: record i hashes prefixes[kinds[i]] and the parts of
    words[starts[i]:starts[i] + depths[i]] joined by b"|". None when a word has no part (the
    caller's Python path then says what is wrong)."""
    addresses = np.array(sorted(parts), dtype=np.uint64)
    part_list = [parts[a] for a in addresses.tolist()]
    prefix_blob = np.frombuffer(b"".join(prefixes) or b"\0", dtype=np.uint8)
    part_blob = np.frombuffer(b"".join(part_list) or b"\0", dtype=np.uint8)
    prefix_ends, part_ends = _ends(prefixes), _ends(part_list)
    words = np.ascontiguousarray(words, dtype=np.uint64)
    kinds = np.ascontiguousarray(kinds, dtype=np.int64)
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    depths = np.ascontiguousarray(depths, dtype=np.int64)
    count = len(kinds)
    ids = np.empty(count, dtype=np.uint32)
    done = lib.lt_stable_ids(
        _address(prefix_blob), _address(prefix_ends), _address(part_blob),
        _address(part_ends), _address(addresses), len(addresses), _address(words),
        _address(kinds), _address(starts), _address(depths), count, _address(ids))
    return ids if done == count else None


def gather(lib: ctypes.CDLL, lines: np.ndarray, line_starts: np.ndarray,
           line_lengths: np.ndarray, heads: np.ndarray, head_starts: np.ndarray,
           head_lengths: np.ndarray, pieces: np.ndarray) -> np.ndarray | None:
    """The concatenation of `pieces` (uint8): piece p < len(line_starts) is
    lines[line_starts[p]:][:line_lengths[p]], a larger one head p - len(line_starts) of
    `heads` likewise (all int64 but the uint8 texts). None if a piece is out of range."""
    pieces = np.ascontiguousarray(pieces, dtype=np.int64)
    count = len(line_starts)
    inside = (pieces >= 0) & (pieces < count + len(head_starts))
    if not inside.all():
        return None
    room = int(np.concatenate((line_lengths, head_lengths))[pieces].sum())
    out = np.empty(max(room, 1), dtype=np.uint8)
    written = lib.lt_gather(
        _address(lines), _address(line_starts), _address(line_lengths), count,
        _address(heads), _address(head_starts), _address(head_lengths), len(head_starts),
        _address(pieces), len(pieces), _address(out), room)
    return out[:written] if written == room else None


def stack_entries(lib: ctypes.CDLL, data: memoryview, count: int, entry_size: int
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """Where each of `count` STACKS entries starts in `data` (bytes) and its depth, as
    capture/stack_table.parse_stacks finds them; None if one does not fit."""
    raw = np.frombuffer(data, dtype=np.uint8) if len(data) else np.zeros(1, dtype=np.uint8)
    entries = np.empty(count, dtype=np.int64)
    depths = np.empty(count, dtype=np.int64)
    done = lib.lt_stack_entries(_address(raw), len(data), count, entry_size,
                                _address(entries), _address(depths))
    return (entries, depths) if done == count else None


@lru_cache(maxsize=1)
def _structures() -> tuple[type[ctypes.Structure], type[ctypes.Structure],
                           type[ctypes.Structure]]:
    """report_native.h's lt_texts, lt_loss_columns and lt_stacks."""
    import ctypes

    pointer, i64 = ctypes.c_void_p, ctypes.c_int64

    class Texts(ctypes.Structure):
        _fields_ = [("bytes", pointer), ("starts", pointer), ("lengths", pointer),
                    ("count", i64), ("more_bytes", pointer), ("more_starts", pointer),
                    ("more_lengths", pointer), ("of_total", i64), ("no_backtrace", i64)]

    class LossColumns(ctypes.Structure):
        _fields_ = [(name, pointer) for name in (
            "sentences", "numbers", "kinds", "allocated", "growth", "starts", "depths", "ids",
            "ages")]

    class Stacks(ctypes.Structure):
        _fields_ = [("words", pointer), ("addresses", pointer), ("address_count", i64),
                    ("first_slots", pointer), ("frame_counts", pointer)]

    return Texts, LossColumns, Stacks


@dataclass
class TextTable:
    """Texts by number, encoded (UTF-8): text i is data[starts[i]:][:lengths[i]]."""

    data: np.ndarray  # uint8
    starts: np.ndarray  # int64
    lengths: np.ndarray  # int64

    @classmethod
    def of(cls, texts: list[str]) -> TextTable:
        encoded = [t.encode() for t in texts]
        lengths = np.array([len(e) for e in encoded], dtype=np.int64)
        return cls(np.frombuffer(b"".join(encoded) or b"\0", dtype=np.uint8),
                   np.cumsum(lengths) - lengths, lengths)


class LossRecordWriter:
    """report_native.h's lt_loss_records over the columns of a run of records, any
    consecutive few of them at a time (`write`). Text numbers past len(texts.starts) are
    more_texts'. `columns`: lt_loss_columns' arrays by name, one value per record of the run
    (ids uint32, ages float64, the rest int64)."""

    def __init__(self, lib: ctypes.CDLL, texts: TextTable, more_texts: TextTable,
                 of_total: int, no_backtrace: int, columns: dict[str, np.ndarray],
                 words: np.ndarray, addresses: np.ndarray, first_slots: np.ndarray,
                 frame_counts: np.ndarray) -> None:
        texts_type, columns_type, stacks_type = _structures()
        self._lib = lib
        # Kept referenced: the structures below hold their addresses.
        self._kept: list[object] = [texts, more_texts]
        self._columns = {name: np.ascontiguousarray(array, dtype=np.uint32 if name == "ids"
                                                    else np.float64 if name == "ages"
                                                    else np.int64)
                         for name, array in columns.items()}
        self._bases = {name: (_address(array), array.itemsize)
                       for name, array in self._columns.items()}
        stacks = [np.ascontiguousarray(words, dtype=np.uint64),
                  np.ascontiguousarray(addresses, dtype=np.uint64),
                  np.ascontiguousarray(first_slots, dtype=np.int64),
                  np.ascontiguousarray(frame_counts, dtype=np.int64)]
        self._kept += stacks
        self._table = texts_type(
            _address(texts.data), _address(texts.starts), _address(texts.lengths),
            len(texts.starts), _address(more_texts.data), _address(more_texts.starts),
            _address(more_texts.lengths), of_total, no_backtrace)
        self._stacks = stacks_type(_address(stacks[0]), _address(stacks[1]), len(stacks[1]),
                                   _address(stacks[2]), _address(stacks[3]))
        self._record_columns = columns_type()

    def write(self, first: int, count: int) -> np.ndarray | None:
        """Records first to first + count - 1 of the run as text (uint8, UTF-8, valid until
        the next write), or None when the library leaves them to Python."""
        for name, (base, size) in self._bases.items():
            setattr(self._record_columns, name, base + first * size)
        global _out
        if _out is None:
            _out = np.empty(1 << 21, dtype=np.uint8)
        while True:
            written = self._lib.lt_loss_records(
                ctypes_ref(self._table), ctypes_ref(self._record_columns), count,
                ctypes_ref(self._stacks), _address(_out), len(_out))
            if written >= 0:
                return _out[:written]
            if written != -1 or len(_out) > 1 << 34:
                return None
            _out = np.empty(4 * len(_out), dtype=np.uint8)


def frame_totals(lib: ctypes.CDLL, words: np.ndarray, starts: np.ndarray, depths: np.ndarray,
                 rows: np.ndarray, addresses: np.ndarray, functions: np.ndarray,
                 function_count: int, sizes: np.ndarray, blocks: np.ndarray,
                 records: np.ndarray) -> np.ndarray | None:
    """report_native.h's lt_frame_totals: (3, function_count) int64 sums of sizes, blocks
    and records (one value per row of `rows`) per function of the stacks `rows`; stack r is
    words[starts[r]:][:depths[r]], the functions of addresses[a] functions[a] (2-D, -1 for
    none). None when an address is not in `addresses`."""
    kept = [np.ascontiguousarray(words, dtype=np.uint64),
            np.ascontiguousarray(starts, dtype=np.int64),
            np.ascontiguousarray(depths, dtype=np.int64),
            np.ascontiguousarray(rows, dtype=np.int64),
            np.ascontiguousarray(addresses, dtype=np.uint64),
            np.ascontiguousarray(functions, dtype=np.int64),
            *(np.ascontiguousarray(v, dtype=np.int64) for v in (sizes, blocks, records))]
    if kept[5].ndim != 2 or kept[5].shape[0] < len(kept[4]) or not len(kept[0]):
        return None
    last_row = np.empty(max(function_count, 1), dtype=np.int64)
    totals = np.empty((3, function_count), dtype=np.uint64)
    done = lib.lt_frame_totals(
        *(_address(array) for array in kept[:4]), len(kept[3]), _address(kept[4]),
        len(kept[4]), _address(kept[5]), kept[5].shape[1], function_count,
        *(_address(array) for array in kept[6:]), _address(last_row), _address(totals))
    return totals.view(np.int64) if done == len(kept[3]) else None


def stack_masks(lib: ctypes.CDLL, words: np.ndarray, starts: np.ndarray, depths: np.ndarray,
                rows: np.ndarray, addresses: np.ndarray, address_masks: np.ndarray
                ) -> np.ndarray | None:
    """report_native.h's lt_stack_masks: per stack of `rows` (stack r is
    words[starts[r]:][:depths[r]]) the OR of address_masks[a] (uint64) over its addresses
    addresses[a]. None when an address is not in `addresses`."""
    kept = [np.ascontiguousarray(words, dtype=np.uint64),
            np.ascontiguousarray(starts, dtype=np.int64),
            np.ascontiguousarray(depths, dtype=np.int64),
            np.ascontiguousarray(rows, dtype=np.int64),
            np.ascontiguousarray(addresses, dtype=np.uint64),
            np.ascontiguousarray(address_masks, dtype=np.uint64)]
    if len(kept[5]) < len(kept[4]) or not len(kept[0]):
        return None
    masks = np.empty(max(len(kept[3]), 1), dtype=np.uint64)
    done = lib.lt_stack_masks(*(_address(array) for array in kept[:4]), len(kept[3]),
                              _address(kept[4]), len(kept[4]), _address(kept[5]),
                              _address(masks))
    return masks[:len(kept[3])] if done == len(kept[3]) else None


def distinct_words(lib: ctypes.CDLL, words: np.ndarray, starts: np.ndarray,
                   depths: np.ndarray) -> np.ndarray | None:
    """The distinct words of the stacks (stack i is words[starts[i]:][:depths[i]]), sorted
    (uint64); None when there are more than a few million (numpy's sort then finds them)."""
    kept = [np.ascontiguousarray(words, dtype=np.uint64),
            np.ascontiguousarray(starts, dtype=np.int64),
            np.ascontiguousarray(depths, dtype=np.int64)]
    if not len(kept[0]):
        return None
    for size in (1 << 16, 1 << 22):  # room for half as many distinct words
        table = np.empty(size, dtype=np.uint64)
        out = np.empty(size // 2, dtype=np.uint64)
        found = lib.lt_distinct_words(*(_address(array) for array in kept), len(kept[1]),
                                      _address(table), size, _address(out))
        if found >= 0:
            return np.sort(out[:found])
    return None


def distinct_rows(lib: ctypes.CDLL, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of `rows` (2-D, int64), numbered in the order first met: each
    row's number, and the first row of each number."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    count, width = rows.shape
    numbers = np.empty(count, dtype=np.int64)
    firsts = np.empty(max(count, 1), dtype=np.int64)
    table = np.empty(1 << (2 * count + 1).bit_length(), dtype=np.int64)
    distinct = lib.lt_distinct_rows(_address(rows) if count else 0, count, max(width, 1),
                                    _address(numbers), _address(firsts), _address(table),
                                    len(table))
    assert distinct >= 0  # the table is a power of two past twice count
    return numbers, firsts[:distinct]


# Where LossRecordWriter writes, kept from batch to batch (a new buffer each time would be new
# pages for the kernel to fault in); its text is copied out (a str) before the next batch.
_out: np.ndarray | None = None


def ctypes_ref(structure: ctypes.Structure) -> Any:
    import ctypes

    return ctypes.byref(structure)
