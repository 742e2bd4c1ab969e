"""Where ids are in a sorted array of distinct ids (stack ids: the STACKS table's, the growth
table's). The shim numbers stacks densely from 1, so a table indexed by id answers with one
gather; a binary search per id over a million ids cost a million-stack report 0.1-0.4 s
each time."""

from __future__ import annotations

import numpy as np

_SPARSE_FROM = 1 << 21  # ids past this and past 4x the count: a binary search each (as for
# a few ids: the table would cost more than the searches)


def rows_in(sorted_ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Index in `sorted_ids` (ascending, distinct, integers) of each of `wanted`, -1 for an
    id that is not there (int64)."""
    wanted = np.asarray(wanted, dtype=np.int64)
    if len(sorted_ids) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    top = int(sorted_ids[-1])
    if (8 * len(wanted) >= len(sorted_ids) and int(sorted_ids[0]) >= 0
            and top < 4 * len(sorted_ids) + _SPARSE_FROM):  # many ids, dense: a table
        row_of = np.full(top + 1, -1, dtype=np.int64)
        row_of[sorted_ids] = np.arange(len(sorted_ids))
        inside = (wanted >= 0) & (wanted <= top)
        if inside.all():
            return row_of[wanted]
        rows = np.full(len(wanted), -1, dtype=np.int64)
        rows[inside] = row_of[wanted[inside]]
        return rows
    at = np.clip(np.searchsorted(sorted_ids, wanted), 0, len(sorted_ids) - 1)
    return np.where(sorted_ids[at] == wanted, at, -1)


def take_rows(values: np.ndarray, rows: np.ndarray, missing: int = -1) -> np.ndarray:
    """values[rows], with `missing` where a row is -1 (also when `values` is empty: a capture
    whose blocks all have no backtrace has no stacks at all)."""
    if len(values) == 0:
        return np.full(len(rows), missing, dtype=values.dtype)
    return np.where(rows >= 0, values[rows], missing)
