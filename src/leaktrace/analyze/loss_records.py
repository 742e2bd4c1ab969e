"""Number loss records as valgrind does, and give the order leaktrace shows them in.

valgrind sorts loss records by total bytes (direct + indirect) ascending, then by leak kind
(still reachable, possibly, indirectly, definitely lost), then by block count, and numbers
them "loss record N of M" in that order, M counting every record (shown, hidden by kind, or
suppressed). leaktrace shows the largest first: the same numbering, read from M down to 1."""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter, gt
from typing import TYPE_CHECKING

from leaktrace.leak_kinds import reachedness
from leaktrace.model import LeakRecord

if TYPE_CHECKING:
    import numpy as np

_LOSS_RECORD = attrgetter("loss_record")


def valgrind_order_key(record: LeakRecord) -> tuple[int, int, int, str, str]:
    # After valgrind's own keys, the stack id and API kind keep the order the same every run.
    return (record.bytes, reachedness(record.leak_kind), record.blocks, record.stack_id,
            record.kind)


def number_loss_records(records: Iterable[LeakRecord]) -> list[LeakRecord]:
    """Sets loss_record on every record with a leak kind (1 = smallest); returns all records
    largest first, the records without a leak kind last."""
    records = list(records)
    classified = _in_valgrind_order([r for r in records if r.leak_kind is not None])
    for number, record in enumerate(classified, start=1):
        record.loss_record = number
    others = sorted((r for r in records if r.leak_kind is None),
                    key=lambda r: (-r.bytes, -r.blocks, r.stack_id, r.kind))
    return classified[::-1] + others


def display_order(records: Iterable[LeakRecord]) -> list[LeakRecord]:
    """Largest first: by loss record number when the records have them (M down to 1), else by
    bytes, then blocks."""
    records = list(records)
    numbers = list(map(_LOSS_RECORD, records))
    if None not in numbers and all(map(gt, numbers, numbers[1:])):
        return records  # numbered, and in that order already (a report's own list)
    return sorted(records, key=lambda r: (
        r.loss_record is None, -(r.loss_record or 0), -r.bytes, -r.blocks, r.stack_id))


_MANY = 10_000  # from this many records on, numpy sorts them


def _in_valgrind_order(records: list[LeakRecord]) -> list[LeakRecord]:
    """sorted(records, key=valgrind_order_key), by numpy for a big capture's million records:
    the same keys (8-hex-digit stack ids sort as numbers, API kinds by name), a stable sort."""
    if len(records) < _MANY:
        return sorted(records, key=valgrind_order_key)
    import numpy as np

    ids = _stack_id_numbers(list(map(_ID, records)))
    if ids is None:
        return sorted(records, key=valgrind_order_key)
    sizes = list(map(_BYTES, records))
    if max(sizes) >= 1 << 63:
        return sorted(records, key=valgrind_order_key)
    kinds = sorted(set(map(_KIND, records)))
    rank = {kind: i for i, kind in enumerate(kinds)}
    ranks = {kind: reachedness(kind) for kind in {r.leak_kind for r in records}}
    order = np.lexsort((
        np.fromiter(map(rank.__getitem__, map(_KIND, records)), np.int64, len(records)),
        ids,
        np.fromiter(map(_BLOCKS, records), np.int64, len(records)),
        np.fromiter(map(ranks.__getitem__, map(_LEAK_KIND, records)), np.int64,
                    len(records)),
        np.array(sizes, dtype=np.int64),
    ))
    return list(map(records.__getitem__, order.tolist()))


def _stack_id_numbers(ids: list[str]) -> np.ndarray | None:
    """The 8-hex-digit ids as numbers (sorting as the strings do), decoded at once; None if
    any is not 8 lowercase hex digits."""
    import numpy as np

    text = "".join(ids)
    if len(text) != 8 * len(ids) or any(len(i) != 8 for i in ids) or text != text.lower():
        return None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return None
    if len(raw) != 4 * len(ids):  # fromhex skips spaces
        return None
    return np.frombuffer(raw, dtype=">u4").astype(np.int64)


_ID, _BYTES, _BLOCKS, _KIND, _LEAK_KIND = (attrgetter(name) for name in (
    "stack_id", "bytes", "blocks", "kind", "leak_kind"))
