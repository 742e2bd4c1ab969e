"""`leaktrace diff BEFORE AFTER`: per backtrace (matched by its frames' names, see
symbolic_stacks.py), the live bytes and blocks in each report and the change."""

from __future__ import annotations

from dataclasses import dataclass, field

from leaktrace.analyze.symbolic_stacks import StackKey, same_builds, stack_key
from leaktrace.model import Frame, KindTotal, LeakRecord, Report

NEW, GONE, GREW, SHRANK, SAME = "new", "gone", "grew", "shrank", "same"


@dataclass
class StackChange:
    kind: str
    leak_kind: str | None
    frames: list[Frame]  # from AFTER when the stack is there, else from BEFORE
    before: KindTotal = field(default_factory=KindTotal)
    after: KindTotal = field(default_factory=KindTotal)
    stack_ids_before: list[str] = field(default_factory=list)
    stack_ids_after: list[str] = field(default_factory=list)

    @property
    def bytes_change(self) -> int:
        return self.after.bytes - self.before.bytes

    @property
    def blocks_change(self) -> int:
        return self.after.blocks - self.before.blocks

    @property
    def status(self) -> str:
        if not self.stack_ids_before:
            return NEW
        if not self.stack_ids_after:
            return GONE
        if self.bytes_change or self.blocks_change:
            return GREW if (self.bytes_change, self.blocks_change) > (0, 0) else SHRANK
        return SAME


@dataclass
class ReportDiff:
    before: Report
    after: Report
    changes: list[StackChange]  # largest change first (by absolute bytes)

    def count(self, status: str) -> int:
        return sum(1 for c in self.changes if c.status == status)

    def total(self, which: str) -> KindTotal:
        total = KindTotal()
        for change in self.changes:
            side = change.before if which == "before" else change.after
            total.bytes += side.bytes
            total.blocks += side.blocks
        return total


def diff_reports(before: Report, after: Report, before_records: list[LeakRecord],
                 after_records: list[LeakRecord]) -> ReportDiff:
    """The records given are the ones compared (kinds shown, not suppressed); own bytes, so
    a definitely lost block's children are counted once, in their own records."""
    changes: dict[StackKey, StackChange] = {}
    same_build = same_builds([before, after])
    for side, records in (("before", before_records), ("after", after_records)):
        for record in records:
            key = stack_key(record, same_build)
            change = changes.get(key)
            if change is None:
                change = changes[key] = StackChange(record.kind, record.leak_kind,
                                                    record.frames)
            elif side == "after" and not change.stack_ids_after:
                change.frames = record.frames
            total = change.before if side == "before" else change.after
            total.bytes += record.own_bytes
            total.blocks += record.blocks
            ids = change.stack_ids_before if side == "before" else change.stack_ids_after
            if record.stack_id not in ids:
                ids.append(record.stack_id)
    ordered = sorted(changes.values(), key=lambda c: (-abs(c.bytes_change),
                                                      -abs(c.blocks_change), -c.after.bytes))
    return ReportDiff(before, after, ordered)
