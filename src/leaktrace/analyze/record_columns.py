"""A capture's loss records as numpy columns, one entry per record in display order, and the
`Sequence[LeakRecord]` that makes a record object only when something asks for it.

A big capture has a million records: a Python object each (frames list, stable id string,
growth...) cost 750 bytes and seconds to make and to visit. The report builder, the totals,
the suppressions and the text renderer work on the columns; every other consumer reads
`report.records` as before and gets objects, made on access and kept.

While no object has been made, the columns are the truth and the column-aware code may
change them (suppressions, growth). Once one object has been handed out it may be changed by
its holder, so from then on the objects are the truth: `ColumnRecords.columns` is None and
everyone works on objects (each change to them walks every record, which makes them all)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, overload

import numpy as np

from leaktrace.model import Block, Estimate, Growth, LeakRecord

if TYPE_CHECKING:
    from leaktrace.analyze.stack_frames import StackFrames

NO_LEAK_KIND = -1  # leak_kinds entry of a record without a leak kind (no scan classified it)
NONE = -1  # growth_verdicts, suppressed: nothing


@dataclass
class RecordColumns:
    """Entry i of every array (and list) describes record i. Counts that may be unknown use
    -1 (allocation totals), NaN (ages, rates) or 0 (loss record numbers) for None."""

    kind_names: list[str]  # API kinds by number
    kinds: np.ndarray  # number into kind_names
    leak_kind_names: list[str]  # leak kinds by number
    leak_kinds: np.ndarray  # number into leak_kind_names, NO_LEAK_KIND for none
    ids: np.ndarray  # the stable stack id's 32 bits (uint32): printed as 8 hex digits
    native_ids: np.ndarray  # the shim's stack id
    rows: np.ndarray  # the stack's row in frames.table; -1: no backtrace
    bytes: np.ndarray  # as LeakRecord.bytes: own + indirect for a classified record
    own_bytes: np.ndarray
    indirect_bytes: np.ndarray  # 0 unless definitely lost
    blocks: np.ndarray
    alloc_counts: np.ndarray  # -1: unknown
    alloc_bytes: np.ndarray
    oldest_ages: np.ndarray  # seconds, rounded to 6 digits; NaN: unknown
    loss_records: np.ndarray  # 0: none
    growth_rates: np.ndarray  # bytes per second, rounded to 3 digits; NaN: none
    growth_verdicts: np.ndarray  # number into growth_verdict_names, NONE for none
    growth_verdict_names: list[str]
    suppressed: np.ndarray  # number into suppression_names, NONE for none
    suppression_names: list[str]
    addresses: list[list[Block]] | None  # per record; None: not asked for
    estimates: list[Estimate] | None  # sampling mode only
    frames: StackFrames

    def __len__(self) -> int:
        return len(self.kinds)

    def take(self, order: np.ndarray) -> RecordColumns:
        """The records at `order`, in that order."""
        picked = order.tolist()
        changes: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                changes[f.name] = value[order]
        if self.addresses is not None:
            changes["addresses"] = [self.addresses[i] for i in picked]
        if self.estimates is not None:
            changes["estimates"] = [self.estimates[i] for i in picked]
        return replace(self, **changes)  # type: ignore[arg-type]

    def reorder(self, order: np.ndarray) -> RecordColumns:
        """take(order) in place, one column at a time (a copy of every column at once
        would be 150 MB more at a million records); returns self."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                setattr(self, f.name, value[order])
        picked = order.tolist()
        if self.addresses is not None:
            self.addresses = [self.addresses[i] for i in picked]
        if self.estimates is not None:
            self.estimates = [self.estimates[i] for i in picked]
        return self

    def classified(self) -> np.ndarray:
        return self.leak_kinds != NO_LEAK_KIND

    def record(self, i: int) -> LeakRecord:
        return next(self.records_at([i]))

    def records_at(self, indexes: list[int]) -> Iterator[LeakRecord]:
        """Each record object as the report builder used to make them."""
        chosen = np.asarray(indexes, dtype=np.int64)
        leak_names = self.leak_kind_names
        verdicts = self.growth_verdict_names
        supp_names = self.suppression_names
        row_frames = self.frames.frames_of_row
        for (i, kind, leak, stack_id, native, row, size, own, indirect, blocks, allocs,
             allocated, age, number, rate, verdict, supp) in zip(
                indexes, self.kinds[chosen].tolist(), self.leak_kinds[chosen].tolist(),
                self.ids[chosen].tolist(), self.native_ids[chosen].tolist(),
                self.rows[chosen].tolist(), self.bytes[chosen].tolist(),
                self.own_bytes[chosen].tolist(), self.indirect_bytes[chosen].tolist(),
                self.blocks[chosen].tolist(), self.alloc_counts[chosen].tolist(),
                self.alloc_bytes[chosen].tolist(), self.oldest_ages[chosen].tolist(),
                self.loss_records[chosen].tolist(), self.growth_rates[chosen].tolist(),
                self.growth_verdicts[chosen].tolist(), self.suppressed[chosen].tolist(),
                strict=True):
            classified = leak != NO_LEAK_KIND
            yield LeakRecord(
                f"{stack_id:08x}", self.kind_names[kind], size, blocks,
                row_frames(row) if row >= 0 else [],
                self.addresses[i] if self.addresses is not None else [],
                None if allocs < 0 else allocs, None if allocated < 0 else allocated,
                None if age != age else age,  # NaN: unknown
                leak_names[leak] if classified else None,
                own if classified else None, indirect if classified else None,
                number or None, native, None,
                None if verdict == NONE else Growth(rate, verdicts[verdict]),
                None if supp == NONE else supp_names[supp],
                self.estimates[i] if self.estimates is not None else None)


class ColumnRecords(Sequence[LeakRecord]):
    """report.records of a capture: objects made from the columns on access, each made once
    (so that a change made to one is kept)."""

    def __init__(self, columns: RecordColumns) -> None:
        self._columns = columns
        self._made: dict[int, LeakRecord] = {}
        self._all: list[LeakRecord] | None = None  # every object, once all are made

    @property
    def columns(self) -> RecordColumns | None:
        """The columns, while they are the truth (no object handed out yet)."""
        return self._columns if not self._made and self._all is None else None

    def __len__(self) -> int:
        return len(self._columns)

    @overload
    def __getitem__(self, index: int) -> LeakRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[LeakRecord]: ...

    def __getitem__(self, index: int | slice) -> LeakRecord | list[LeakRecord]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if self._all is not None:
            return self._all[index]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("record index out of range")
        made = self._made.get(index)
        if made is None:
            made = self._made[index] = self._columns.record(index)
        return made

    def __iter__(self) -> Iterator[LeakRecord]:
        return iter(self.materialized())

    def materialized(self) -> list[LeakRecord]:
        """Every record as an object (made in bulk: one numpy call a column)."""
        if self._all is None:
            made = self._made
            missing = [i for i in range(len(self)) if i not in made]
            new = dict(zip(missing, self._columns.records_at(missing), strict=True))
            self._all = [made.get(i) or new[i] for i in range(len(self))]
            self._made = {}
        return self._all

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ColumnRecords({len(self)} records)"


def columns_of(records: Sequence[LeakRecord]) -> RecordColumns | None:
    """The columns behind `records` while they are the truth, else None."""
    return records.columns if isinstance(records, ColumnRecords) else None
