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


def loss_records(lib: ctypes.CDLL, texts: TextTable, more_texts: TextTable, of_total: int,
                 no_backtrace: int,
                 columns: dict[str, np.ndarray], words: np.ndarray, addresses: np.ndarray,
                 first_slots: np.ndarray, frame_counts: np.ndarray) -> np.ndarray | None:
    """report_native.h's lt_loss_records: the records' text (uint8, UTF-8), or None when the
    library leaves them to Python. Text numbers past len(texts.starts) are more_texts'.
    `columns`: lt_loss_columns' arrays by name (ids uint32, ages float64, the rest int64)."""
    texts_type, columns_type, stacks_type = _structures()
    kept = {name: np.ascontiguousarray(
        array, dtype=np.uint32 if name == "ids" else np.float64 if name == "ages" else np.int64)
        for name, array in columns.items()}
    count = len(kept["ids"])
    words = np.ascontiguousarray(words, dtype=np.uint64)
    addresses = np.ascontiguousarray(addresses, dtype=np.uint64)
    first_slots = np.ascontiguousarray(first_slots, dtype=np.int64)
    frame_counts = np.ascontiguousarray(frame_counts, dtype=np.int64)
    table = texts_type(_address(texts.data), _address(texts.starts), _address(texts.lengths),
                       len(texts.starts), _address(more_texts.data),
                       _address(more_texts.starts), _address(more_texts.lengths), of_total,
                       no_backtrace)
    record_columns = columns_type(**{name: _address(array) for name, array in kept.items()})
    stacks = stacks_type(_address(words), _address(addresses), len(addresses),
                         _address(first_slots), _address(frame_counts))
    global _out
    if _out is None:
        _out = np.empty(1 << 21, dtype=np.uint8)
    while True:
        written = lib.lt_loss_records(ctypes_ref(table), ctypes_ref(record_columns), count,
                                      ctypes_ref(stacks), _address(_out), len(_out))
        if written >= 0:
            return _out[:written]
        if written != -1 or len(_out) > 1 << 34:
            return None
        _out = np.empty(4 * len(_out), dtype=np.uint8)


# Where loss_records writes, kept from batch to batch (a new buffer each time would be new
# pages for the kernel to fault in); its text is copied out (a str) before the next batch.
_out: np.ndarray | None = None


def ctypes_ref(structure: ctypes.Structure) -> Any:
    import ctypes

    return ctypes.byref(structure)
