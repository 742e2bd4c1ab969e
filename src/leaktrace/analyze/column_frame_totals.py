"""Leaked bytes per frame (analyze/frame_totals.py) of records as columns, with numpy over the
STACKS words: each distinct return address is keyed once (a few thousand), and a record's
set of functions is a sorted row of a small matrix, not a Python set.

The result is compute_frame_totals' exactly: the same sums, each function's file that of its
first frame met (records in display order, frames innermost first), the same stable sort."""

from __future__ import annotations

import numpy as np

from leaktrace import report_native as native
from leaktrace.analyze.frame_totals import total_key
from leaktrace.analyze.record_columns import NONE, RecordColumns
from leaktrace.analyze.stack_matrix import address_matrix, row_batches
from leaktrace.model import Frame, FrameTotal


class _Keys:
    """Each return address's frames as function numbers (frame_key), padded with -1."""

    def __init__(self, columns: RecordColumns) -> None:
        frames_of = columns.frames.frames_by_address()
        self.addresses = np.array(sorted(frames_of), dtype=np.uint64)
        width = max((len(f) for f in frames_of.values()), default=1)
        self.numbers = np.full((len(self.addresses) + 1, width), -1, dtype=np.int64)
        self.frames: list[list[Frame | None]] = []
        self.names: list[tuple[str, str | None]] = []  # by function number
        self.index: dict[tuple[str, str | None], int] = {}  # of the functions met
        number_of: dict[tuple[str, str | None], int] = {}
        for a, address in enumerate(self.addresses.tolist()):
            frames = frames_of[address]
            self.frames.append([*frames, *[None] * (width - len(frames))])
            for f, frame in enumerate(frames):
                key = total_key(frame)
                if key is not None:
                    number = number_of.setdefault(key, len(self.names))
                    if number == len(self.names):
                        self.names.append(key)
                    self.numbers[a, f] = number

    def matrix(self, columns: RecordColumns, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(function numbers, address numbers) of each stack in `rows`, one line each:
        frames innermost first, -1 past the stack's end (address numbers: len(addresses))."""
        found = address_matrix(columns.frames.table, self.addresses, rows)
        return self.numbers[found].reshape(len(rows), -1), found


def column_frame_totals(columns: RecordColumns) -> list[FrameTotal]:
    """compute_frame_totals of the records no suppression matched."""
    counted = np.flatnonzero((columns.suppressed == NONE) & (columns.rows >= 0))
    if len(counted) == 0:
        return []
    keys = _Keys(columns)
    if not keys.names:
        return []
    # Records of one stack (split by kind) count once each: sums per stack row first.
    table = columns.frames.table
    number_of_row = np.full(len(table), -1, dtype=np.int64)  # no sort of a million rows
    number_of_row[columns.rows[counted]] = 0
    rows = np.flatnonzero(number_of_row == 0)
    number_of_row[rows] = np.arange(len(rows))
    per_row = number_of_row[columns.rows[counted]]
    size = _exact_sums(per_row, columns.own_bytes[counted], len(rows))
    blocks = _exact_sums(per_row, columns.blocks[counted], len(rows))
    records = np.bincount(per_row, minlength=len(rows))
    count = len(keys.names)
    lib = native.usable(len(counted))
    made = None if lib is None else native.frame_totals(
        lib, np.asarray(table.addresses), table.starts, table.depths, rows, keys.addresses,
        keys.numbers, count, size, blocks, records)
    totals = made if made is not None else _matrix_totals(columns, keys, rows, size, blocks,
                                                          records)
    met = _first_met(columns, counted, keys, int((totals[2] > 0).sum()))
    result = [FrameTotal(name, module, file, *totals[:, keys.index[(name, module)]].tolist())
              for (name, module), file in met]
    return sorted(result, key=lambda t: (-t.bytes, -t.blocks, t.function))


def _matrix_totals(columns: RecordColumns, keys: _Keys, rows: np.ndarray, size: np.ndarray,
                   blocks: np.ndarray, records: np.ndarray) -> np.ndarray:
    """Per function (3, count): the sums of size, blocks and records (per entry of `rows`)
    over the stacks `rows` going through it, each stack once: from a matrix of the stacks'
    function numbers, each row sorted (the report helper library's lt_frame_totals does the
    same in one pass)."""
    count = len(keys.names)
    totals = np.zeros((3, count), dtype=np.int64)
    for chosen in row_batches(columns.frames.table, rows):
        numbers, _ = keys.matrix(columns, rows[chosen])
        numbers.sort(axis=1)
        first = np.ones(numbers.shape, dtype=bool)
        first[:, 1:] = numbers[:, 1:] != numbers[:, :-1]
        first &= numbers >= 0
        which = numbers[first]
        owner = np.broadcast_to(chosen[:, None], numbers.shape)[first]
        for column, values in enumerate((size, blocks, records)):
            totals[column] += _exact_sums(which, values[owner], count)
    return totals


def _first_met(columns: RecordColumns, counted: np.ndarray, keys: _Keys, wanted: int
               ) -> list[tuple[tuple[str, str | None], str | None]]:
    """Each function met, in the order met (records in display order, frames innermost
    first), with the file of the frame it was first met in. Usually the first records hold
    every function: the rest are read only as far as needed."""
    met: list[tuple[tuple[str, str | None], str | None]] = []
    step = 256
    low = 0
    while low < len(counted) and len(met) < wanted:
        chosen = counted[low:low + step]
        numbers, found = keys.matrix(columns, columns.rows[chosen])
        flat = numbers.ravel()
        present, first = np.unique(flat, return_index=True)
        width = numbers.shape[1] if numbers.ndim == 2 else 1
        frames_each = keys.numbers.shape[1]
        for number, at in sorted(zip(present.tolist(), first.tolist(), strict=True),
                                 key=lambda pair: pair[1]):
            if number < 0 or keys.names[number] in keys.index:
                continue
            record, cell = divmod(at, width)
            word, frame = divmod(cell, frames_each)
            address = int(found[record, word])
            keys.index[keys.names[number]] = number
            chosen_frame = keys.frames[address][frame]
            met.append((keys.names[number], chosen_frame.file if chosen_frame else None))
        low += step
        step = min(step * 4, 1 << 16)
    return met


def _exact_sums(bins: np.ndarray, values: np.ndarray, length: int) -> np.ndarray:
    """Per bin, the exact sum of non-negative int64 `values` (two float64 bincounts of
    24-bit halves: exact below 2^77)."""
    values = values.astype(np.uint64)
    low = np.bincount(bins, weights=(values & np.uint64(0xFFFFFF)).astype(np.float64),
                      minlength=length)
    high = np.bincount(bins, weights=(values >> np.uint64(24)).astype(np.float64),
                       minlength=length)
    return (high.astype(np.int64) << 24) + low.astype(np.int64)

