"""Number loss records as valgrind does, and give the order leaktrace shows them in.

valgrind sorts loss records by total bytes (direct + indirect) ascending, then by leak kind
(still reachable, possibly, indirectly, definitely lost), then by block count, and numbers
them "loss record N of M" in that order, M counting every record (shown, hidden by kind, or
suppressed). leaktrace shows the largest first: the same numbering, read from M down to 1."""

from __future__ import annotations

from collections.abc import Iterable

from leaktrace.leak_kinds import reachedness
from leaktrace.model import LeakRecord


def valgrind_order_key(record: LeakRecord) -> tuple[int, int, int, str, str]:
    # After valgrind's own keys, the stack id and API kind keep the order the same every run.
    return (record.bytes, reachedness(record.leak_kind), record.blocks, record.stack_id,
            record.kind)


def number_loss_records(records: Iterable[LeakRecord]) -> list[LeakRecord]:
    """Sets loss_record on every record with a leak kind (1 = smallest); returns all records
    largest first, the records without a leak kind last."""
    records = list(records)
    classified = sorted((r for r in records if r.leak_kind is not None), key=valgrind_order_key)
    for number, record in enumerate(classified, start=1):
        record.loss_record = number
    others = sorted((r for r in records if r.leak_kind is None),
                    key=lambda r: (-r.bytes, -r.blocks, r.stack_id, r.kind))
    return classified[::-1] + others


def display_order(records: Iterable[LeakRecord]) -> list[LeakRecord]:
    """Largest first: by loss record number when the records have them (M down to 1), else by
    bytes, then blocks."""
    return sorted(records, key=lambda r: (
        r.loss_record is None, -(r.loss_record or 0), -r.bytes, -r.blocks, r.stack_id))
