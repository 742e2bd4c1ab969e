"""Stacks of the STACKS table as a matrix of small numbers, for numpy work per return
address: a big capture has a million stacks but only thousands of distinct addresses."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from leaktrace.capture.stack_table import StackTable

CELLS = 1 << 19  # matrix cells (stacks x frames) made at once: temporaries stay small


def address_matrix(table: StackTable, addresses: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One line per stack in `rows`: the index in `addresses` (sorted, uint64, holding every
    address of those stacks) of each return address, innermost first, then
    len(addresses) past the stack's end."""
    depths = table.depths[rows]
    width = int(depths.max()) if len(rows) else 0
    at = np.arange(width)
    inside = at[None, :] < depths[:, None]
    words = np.asarray(table.addresses)[np.where(inside, table.starts[rows][:, None] + at, 0)]
    found = np.searchsorted(addresses, words.astype(np.uint64))
    return np.where(inside, found, len(addresses))


def row_batches(table: StackTable, rows: np.ndarray, cells: int = CELLS
                ) -> Iterator[np.ndarray]:
    """Indexes into `rows`, about `cells` matrix cells at a time."""
    width = max(1, int(table.depths[rows].max()) if len(rows) else 1)
    step = max(1, cells // width)
    for low in range(0, len(rows), step):
        yield np.arange(low, min(low + step, len(rows)))
