"""`leaktrace merge`: one report whose records add up the same backtraces (matched by their
frames' names, see symbolic_stacks.py) over several processes' reports, each record keeping
how much of it came from which process."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from leaktrace.analyze.frame_totals import compute_frame_totals
from leaktrace.analyze.leak_totals import leak_totals, suppressed_total
from leaktrace.analyze.loss_records import number_loss_records
from leaktrace.analyze.symbolic_stacks import StackKey, same_builds, stack_key
from leaktrace.model import InvalidFree, KindTotal, LeakRecord, LeakTotals, Report, Summary


@dataclass
class Share:
    """What one process had of a merged record."""

    source: int  # index into MergedReport.sources
    bytes: int  # own bytes
    blocks: int
    allocations: int | None
    allocated_bytes: int | None


@dataclass
class MergedReport:
    report: Report
    sources: list[Report]
    shares: dict[int, list[Share]] = field(default_factory=dict)  # by id() of merged records


def merge_reports(reports: list[Report]) -> MergedReport:
    # Suppressed and shown records of one backtrace stay apart.
    merged: dict[tuple[StackKey, str], LeakRecord] = {}
    shares: dict[int, list[Share]] = {}
    same_build = same_builds(reports)
    for index, report in enumerate(reports):
        for record in report.records:
            key = (stack_key(record, same_build), record.suppressed_by or "")
            target = merged.get(key)
            if target is None:
                target = merged[key] = _copy(record)
                shares[id(target)] = []
            else:
                _add(target, record)
            _add_share(shares[id(target)], Share(index, record.own_bytes, record.blocks,
                                                 record.total_allocations,
                                                 record.total_allocated_bytes))
    records = list(merged.values())
    scanned = all(r.scanned for r in reports)
    if scanned:
        records = number_loss_records(records)
    else:
        records.sort(key=lambda r: (-r.bytes, -r.blocks, r.stack_id, r.kind))
    first = reports[0]
    programs = {r.program for r in reports}
    report = Report(
        source=first.source if len({r.source for r in reports}) == 1 else "merged",
        program=first.program if len(programs) == 1 else None,
        records=records,
        summary=_summary(reports, records, scanned),
        counters=_sum_counters(reports),
        notes=[_merged_note(reports)] + [n for r in reports for n in r.notes],
        frame_totals=compute_frame_totals(r for r in records if r.suppressed_by is None),
        start_time=min((r.start_time for r in reports if r.start_time), default=None),
        end_time=max((r.end_time for r in reports if r.end_time), default=None),
        captured_when=first.captured_when,
        modules=[m for r in reports for m in r.modules],
        invalid_frees=_merged_invalid_frees(reports),
        invalid_frees_unrecorded=sum(r.invalid_frees_unrecorded for r in reports),
        invalid_frees_suppressed=sum(r.invalid_frees_suppressed for r in reports),
    )
    return MergedReport(report, reports, shares)


def _merged_invalid_frees(reports: list[Report]) -> list[InvalidFree] | None:
    """The invalid and mismatched frees of every process that was checked, the calls of one
    backtrace (its stable id) and API added up; None when none was checked."""
    checked = [r.invalid_frees for r in reports if r.invalid_frees is not None]
    if not checked:
        return None
    merged: dict[tuple[bool, str, str], InvalidFree] = {}
    for frees in checked:
        for f in frees:
            key = (f.mismatched, f.api, f.stack_id)
            if key in merged:
                merged[key].calls += f.calls
            else:
                merged[key] = replace(f)
    return sorted(merged.values(), key=lambda f: (-f.calls, f.stack_id))


def _add_share(shares: list[Share], share: Share) -> None:
    """One share per process: a process's records of one backtrace (an unrolled loop's
    call addresses) add up."""
    if shares and shares[-1].source == share.source:
        last = shares[-1]
        last.bytes += share.bytes
        last.blocks += share.blocks
        if share.allocations is not None:
            last.allocations = (last.allocations or 0) + share.allocations
        if share.allocated_bytes is not None:
            last.allocated_bytes = (last.allocated_bytes or 0) + share.allocated_bytes
        return
    shares.append(share)


def _copy(record: LeakRecord) -> LeakRecord:
    return LeakRecord(
        stack_id=record.stack_id, kind=record.kind, bytes=record.bytes, blocks=record.blocks,
        frames=record.frames, addresses=list(record.addresses),
        total_allocations=record.total_allocations,
        total_allocated_bytes=record.total_allocated_bytes,
        oldest_age_seconds=record.oldest_age_seconds, leak_kind=record.leak_kind,
        direct_bytes=record.direct_bytes, indirect_bytes=record.indirect_bytes,
        suppressed_by=record.suppressed_by)


def _add(target: LeakRecord, record: LeakRecord) -> None:
    target.bytes += record.bytes
    target.blocks += record.blocks
    target.addresses.extend(record.addresses)
    for name in ("total_allocations", "total_allocated_bytes", "direct_bytes",
                 "indirect_bytes"):
        mine, theirs = getattr(target, name), getattr(record, name)
        if mine is not None or theirs is not None:
            setattr(target, name, (mine or 0) + (theirs or 0))
    ages = [a for a in (target.oldest_age_seconds, record.oldest_age_seconds) if a is not None]
    target.oldest_age_seconds = max(ages) if ages else None


def _add_total(into: KindTotal, total: KindTotal) -> None:
    into.bytes += total.bytes
    into.blocks += total.blocks


def _summary(reports: list[Report], records: list[LeakRecord], scanned: bool) -> Summary:
    summary = Summary()
    for report in reports:
        s = report.summary
        summary.live_blocks += s.live_blocks
        summary.live_bytes += s.live_bytes
        for kind, total in s.by_kind.items():
            _add_total(summary.by_kind.setdefault(kind, KindTotal()), total)
        _add_total(summary.mapped, s.mapped)
        if s.total_allocations is not None:
            summary.total_allocations = (summary.total_allocations or 0) + s.total_allocations
        if s.total_allocated_bytes is not None:
            summary.total_allocated_bytes = ((summary.total_allocated_bytes or 0)
                                             + s.total_allocated_bytes)
    summary.by_kind = dict(sorted(summary.by_kind.items(), key=lambda kv: -kv[1].bytes))
    if scanned:
        heuristics: dict[str, KindTotal] = {}
        for report in reports:
            assert report.summary.leaks is not None
            for name, total in report.summary.leaks.reachable_via_heuristic.items():
                _add_total(heuristics.setdefault(name, KindTotal()), total)
        leaks: LeakTotals
        leaks, summary.suppressed = leak_totals(records, heuristics)
        summary.leaks = leaks
    else:
        summary.suppressed = suppressed_total(records)
    return summary


def _sum_counters(reports: list[Report]) -> dict[str, int]:
    counters: dict[str, int] = {}
    for report in reports:
        for name, value in report.counters.items():
            # max_depth is a setting, not a count: the largest one stands for all.
            counters[name] = (max(counters.get(name, 0), value) if name == "max_depth"
                              else counters.get(name, 0) + value)
    return counters


def _merged_note(reports: list[Report]) -> str:
    parts = [f"pid {r.pid}" if r.pid is not None else os.path.basename(r.capture_path or "?")
             for r in reports]
    return f"merged from {len(reports)} reports: " + ", ".join(parts)
