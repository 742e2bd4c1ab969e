"""The order of a capture's records as columns (analyze/record_columns.py): valgrind's loss
record numbers and leaktrace's display order, the same keys and the same stable sorts as
analyze/loss_records.py's for record objects (stable ids are 8 hex digits: as numbers they
sort as the strings do)."""

from __future__ import annotations

import numpy as np

from leaktrace.analyze.record_columns import RecordColumns
from leaktrace.leak_kinds import reachedness


def kind_ranks(columns: RecordColumns) -> np.ndarray:
    """Per record, the rank of its API kind's name among the names (kinds sort by name)."""
    names = columns.kind_names
    rank_of = {name: rank for rank, name in enumerate(sorted(names))}
    ranks = np.array([rank_of[name] for name in names] + [0], dtype=np.int64)
    return ranks[columns.kinds]


def number_loss_records(columns: RecordColumns, heap: np.ndarray) -> np.ndarray:
    """Numbers the records of `heap` (indexes) that have a leak kind, 1 the smallest in
    valgrind's order (bytes, reachedness, blocks, then stack id and API kind), in
    columns.loss_records; returns `heap` in display order: the numbered ones largest first,
    then those without a leak kind by (-bytes, -blocks, stack id, API kind)."""
    classified = heap[columns.classified()[heap]]
    ranks = kind_ranks(columns)
    reached = np.array([reachedness(name) for name in columns.leak_kind_names]
                       + [reachedness(None)], dtype=np.int64)
    valgrind_order = classified[np.lexsort((
        ranks[classified], columns.ids[classified], columns.blocks[classified],
        reached[columns.leak_kinds[classified]], columns.bytes[classified]))]
    columns.loss_records[valgrind_order] = np.arange(1, len(valgrind_order) + 1)
    others = heap[~columns.classified()[heap]]
    others = others[np.lexsort((ranks[others], columns.ids[others], -columns.blocks[others],
                                -columns.bytes[others]))]
    return np.concatenate((valgrind_order[::-1], others)).astype(np.int64)
