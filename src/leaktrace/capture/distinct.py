"""Sorted distinct values of an array, as `numpy.unique` gives them.

`numpy.unique` without its index options asks `numpy.ma` whether the array is masked, which
imports `numpy.ma` on first use: 30 ms of a small report's start-up for nothing."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def distinct(values: npt.ArrayLike) -> np.ndarray:
    ordered = np.sort(np.asarray(values).ravel())
    if ordered.size < 2:
        return ordered
    keep = np.empty(ordered.size, dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]
