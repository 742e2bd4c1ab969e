"""The human-readable report: summary, leaks largest first with symbolized backtraces,
leaked bytes per frame, and (on request) every live block's address. Modelled on what
valgrind and heaptrack print, so it reads the way C++ engineers expect."""

from __future__ import annotations

import os
import shlex

from leaktrace.analyze.frame_totals import compute_frame_totals
from leaktrace.model import Frame, LeakRecord, Report
from leaktrace.render.options import RenderOptions, shown_records
from leaktrace.render.sizes import human_size, size_with_bytes

FRAME_TOTALS_SHOWN = 20  # rows of "leaked bytes per frame" when --top is not given


def render_text(report: Report, options: RenderOptions) -> str:
    lines: list[str] = []
    lines += _header(report)
    lines += _summary(report)
    records = shown_records(report, options)
    lines += _leaks(report, records, options)
    lines += _frame_totals(report, options)
    if options.show_addresses:
        lines += _addresses(records)
    return "\n".join(lines) + "\n"


def _header(report: Report) -> list[str]:
    source = "" if report.source == "leaktrace" else f" (from {report.source})"
    lines = [f"== leaktrace report{source} =="]
    if report.program:
        pid = f" (pid {report.pid})" if report.pid is not None else ""
        lines.append(f"program:  {report.program}{pid}")
    if report.command:
        lines.append(f"command:  {shlex.join(report.command)}")
    if report.capture_path:
        lines.append(f"capture:  {report.capture_path}")
    return lines


def _summary(report: Report) -> list[str]:
    s = report.summary
    lines = ["", "== Summary ==",
             f"still live at exit: {s.live_blocks:,} blocks, {size_with_bytes(s.live_bytes)}"]
    if s.by_kind:
        width = max(len(kind) for kind in s.by_kind)
        block_width = max(len(f"{t.blocks:,}") for t in s.by_kind.values())
        for kind, total in s.by_kind.items():
            word = "block" if total.blocks == 1 else "blocks"
            lines.append(f"  {kind:<{width}}  {total.blocks:>{block_width},} {word:<6}  "
                         f"{size_with_bytes(total.bytes)}")
    if s.total_allocations is not None:
        allocated = size_with_bytes(s.total_allocated_bytes or 0)
        lines.append(f"allocated during the run: {s.total_allocations:,} allocations, "
                     f"{allocated}")
    counters = ", ".join(f"{k}={v:,}" for k, v in report.counters.items() if v)
    if counters:
        lines.append(f"shim counters: {counters}")
    if report.build_seconds is not None:
        lines.append(f"report built in {report.build_seconds:.2f} s")
    lines += [f"note: {note}" for note in report.notes]
    return lines


def _leaks(report: Report, records: list[LeakRecord], options: RenderOptions) -> list[str]:
    total = len(report.records)
    if total == 0:
        return ["", "No leaks: every block allocated while leaktrace watched was freed."]
    limits = []
    if options.min_bytes:
        limits.append(f"--min-bytes {options.min_bytes:,}")
    if options.top is not None:
        limits.append(f"--top {options.top}")
    shown = f"{len(records)} of {total} records" + (f"; {', '.join(limits)}" if limits else "")
    lines = ["", f"== Leaks, largest first ({shown}) =="]
    for index, record in enumerate(records, start=1):
        lines.append("")
        lines.append(f"[{index}/{total}] {size_with_bytes(record.bytes)} in "
                     f"{_plural(record.blocks, 'block')} from {record.kind}, "
                     f"stack {record.stack_id}")
        history = _history(record)
        if history:
            lines.append(f"      {history}")
        if not record.frames:
            lines.append("    (no backtrace: the allocation could not be unwound, or the "
                         "stack table was full)")
        width = len(str(len(record.frames) - 1))
        for number, frame in enumerate(record.frames):
            lines.append(f"    {_frame_line(number, width, frame, options.show_addresses)}")
    return lines


def _history(record: LeakRecord) -> str:
    parts = []
    if record.total_allocations:
        made = human_size(record.total_allocated_bytes or 0)
        parts.append(f"allocated {_plural(record.total_allocations, 'time')} ({made}) from "
                     "this backtrace during the run")
    if record.oldest_age_seconds is not None:
        parts.append(f"oldest live block {record.oldest_age_seconds:.3f} s old at capture")
    return "; ".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _frame_line(number: int, width: int, frame: Frame, show_address: bool) -> str:
    module = os.path.basename(frame.module) if frame.module else None
    parts = [f"#{number:<{width}}"]
    if show_address:
        parts.append(f"{frame.address:#014x}")
    parts.append((frame.function or "??") + (" (inlined)" if frame.inlined else ""))
    if frame.file:
        parts.append(f"{frame.file}:{frame.line}" if frame.line else frame.file)
    if module is not None and frame.offset is not None:
        # Unresolved frames keep module+offset: enough to look them up by hand later.
        parts.append(f"[{module}]" if frame.function else f"[{module}+{frame.offset:#x}]")
    elif not frame.function and not show_address:
        parts.append(f"[{frame.address:#x}]")
    return "  ".join(parts)


def _frame_totals(report: Report, options: RenderOptions) -> list[str]:
    totals = report.frame_totals or compute_frame_totals(report.records)
    totals = [t for t in totals if t.bytes >= options.min_bytes]
    if not totals:
        return []
    limit = options.top if options.top is not None else FRAME_TOTALS_SHOWN
    live = report.summary.live_bytes or 1
    lines = ["", f"== Leaked bytes per frame (inclusive; {min(limit, len(totals))} of "
             f"{len(totals)} functions) =="]
    rows = [([size_with_bytes(t.bytes), f"{100 * t.bytes / live:.1f}%",
              _plural(t.blocks, "block"), _plural(t.records, "record")], t)
            for t in totals[:limit]]
    widths = [max(len(cells[i]) for cells, _ in rows) for i in range(4)]
    for (size, share, blocks, records), t in rows:
        where = f"  [{os.path.basename(t.module)}]" if t.module else ""
        lines.append(f"  {size:>{widths[0]}}  {share:>{widths[1]}}  {blocks:<{widths[2]}}  "
                     f"{records:<{widths[3]}}  {t.function}{where}")
    return lines


def _addresses(records: list[LeakRecord]) -> list[str]:
    lines = ["", "== Live blocks of the records shown (address, size, stack, age) =="]
    for record in records:
        for block in record.addresses:
            age = f"  {block.age_seconds:.3f} s old" if block.age_seconds is not None else ""
            lines.append(f"  {block.address:#014x}  {block.size:>12,} bytes  "
                         f"stack {record.stack_id}  {record.kind}{age}")
    return lines
