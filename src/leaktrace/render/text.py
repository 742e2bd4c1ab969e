"""The human-readable report: summary, leaks largest first with symbolized backtraces,
leaked bytes per frame, and (on request) every live block's address. Modelled on what
valgrind and heaptrack print, so it reads the way C++ engineers expect: after a reachability
scan, loss records and the LEAK SUMMARY use valgrind memcheck's own sentences."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Iterator
from functools import lru_cache, partial

from leaktrace.analyze.frame_totals import PerFrame, compute_frame_totals, totals_of_selection
from leaktrace.leak_kinds import LEAK_KINDS, STILL_REACHABLE, kind_list_text
from leaktrace.model import (
    Frame,
    FrameTotal,
    InvalidFree,
    KindTotal,
    LeakRecord,
    PreviousCapture,
    Report,
)
from leaktrace.render.options import (
    RenderOptions,
    free_suppression_text,
    selected_records,
    shown_mapped_regions,
    shown_records,
    suppression_text,
)
from leaktrace.render.sizes import human_size, size_with_bytes

FRAME_TOTALS_SHOWN = 20  # rows of "leaked bytes per frame" when --top is not given
# Counters kept in the capture (and the JSON) but not worth a line of the text report:
# frees of blocks allocated before recording started, or of blocks a snapshot's reset
# forgot, are normal and say nothing about leaks.
HIDDEN_COUNTERS = frozenset({"unknown_frees"})


def render_text(report: Report, options: RenderOptions) -> str:
    return "".join(text_chunks(report, options))


def text_chunks(report: Report, options: RenderOptions) -> Iterator[str]:
    """The text report in pieces, each ending with a newline: a report of a million loss
    records is written as it is made, never held whole."""
    yield from _lines_chunk(_header(report) + _summary(report) + fatal_signal_lines(report)
                            + invalid_free_lines(report, options))
    # A capture's records as columns (ColumnRecords.columns), while they are the truth.
    columns = getattr(report.records, "columns", None)
    if columns is not None:
        from leaktrace.render.column_text import record_sections

        yield from record_sections(report, columns, options)
    else:
        yield from _record_sections(report, options)
    yield from _lines_chunk(_leak_summary(report, options) + _suppressions_used(report))


def _record_sections(report: Report, options: RenderOptions) -> Iterator[str]:
    """The records, mapped regions, leaked bytes per frame and live blocks."""
    selected = selected_records(report, options)
    records = shown_records(report, options, selected)
    frames = FrameTexts(options.show_addresses)
    if report.scanned:
        yield from _loss_records(report, records, options, frames)
        yield from _lines_chunk(mapped_regions(report, options, frames))
    else:
        yield from _leaks(report, records, options, frames)
    if report.scanned or options.leak_kinds is not None:
        # Only the kinds shown: still reachable memory is not "leaked" by default.
        totals = totals_of_selection(report, selected)
        live = sum(r.own_bytes for r in selected) or 1
    else:
        totals = report.frame_totals or compute_frame_totals(report.records)
        live = (report.summary.live_bytes - report.summary.suppressed.bytes) or 1
    yield from _lines_chunk(frame_totals(totals, live, options))
    if options.show_addresses:
        yield from _lines_chunk(addresses(records + shown_mapped_regions(report, options)))


def _lines_chunk(lines: list[str]) -> Iterator[str]:
    if lines:
        yield "\n".join(lines) + "\n"


class FrameTexts:
    """Each frame's line after its number, made once per Frame object: the records of a big
    capture share the frames of their return addresses, and print them millions of times."""

    def __init__(self, show_address: bool) -> None:
        self._texts = PerFrame(partial(frame_text, show_address=show_address))
        # backtrace length -> "\n    #0  %s\n    #1  %s...": its lines, each after a newline
        self._templates: dict[int, str] = {}

    def lines(self, frames: list[Frame]) -> str:
        """The backtrace's lines, each after a newline."""
        return self.template(len(frames)) % tuple(self._texts.of(frames))

    def template(self, count: int) -> str:
        """"\n    #0  %s..." for a backtrace of `count` frames."""
        template = self._templates.get(count)
        if template is None:
            width = len(str(count - 1))
            template = self._templates[count] = "".join(
                f"\n    #{n:<{width}}  %s" for n in range(count))
        return template


def _command_line(arguments: list[str]) -> str:
    """The command as ps shows it: a process title written over the arguments (nginx's,
    PostgreSQL's) leaves the rest of their space NULs, which read as empty arguments at the
    end (the JSON report keeps them all)."""
    end = len(arguments)
    while end > 1 and not arguments[end - 1]:
        end -= 1
    return shlex.join(arguments[:end])


def _header(report: Report) -> list[str]:
    source = "" if report.source == "leaktrace" else f" (from {report.source})"
    lines = [f"== leaktrace report{source} =="]
    if report.program:
        pid = f" (pid {report.pid})" if report.pid is not None else ""
        lines.append(f"program:  {report.program}{pid}")
    if report.command:
        lines.append(f"command:  {_command_line(report.command)}")
    if report.capture_path:
        lines.append(f"capture:  {report.capture_path}")
    return lines


def _summary(report: Report) -> list[str]:
    s = report.summary
    unknown = [k for k in LEAK_KINDS if s.leaks is not None and k in s.leaks.unknown_kinds]
    lines = ["", "== Summary ==",
             f"still live {report.captured_when}: {s.live_blocks:,} blocks, "
             f"{size_with_bytes(s.live_bytes)}"
             + (f" (not counting {', '.join(unknown)}: unknown)" if unknown else "")]
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
    if report.previous is not None:
        lines.append(_previous_line(report.previous))
    if s.since_baseline is not None and s.baseline_seconds is not None:
        lines.append(f"allocated since the baseline ({s.baseline_seconds:.2f} s after the "
                     f"start: the last reset or mtrace()) and still live: "
                     f"{_plural(s.since_baseline.blocks, 'block')}, "
                     f"{size_with_bytes(s.since_baseline.bytes)}")
    if s.leaks is not None and report.mapped_regions:
        lines.append(f"memory mappings never unmapped: {_plural(s.mapped.blocks, 'region')}, "
                     f"{size_with_bytes(s.mapped.bytes)} (not heap blocks: not in the leak "
                     "summary)")
    if s.leaks is None and s.suppressed.blocks:
        lines.append(f"suppressed: {_plural(s.suppressed.blocks, 'block')}, "
                     f"{size_with_bytes(s.suppressed.bytes)} (not shown)")
    if report.scan is not None:
        lines.append(_scan_line(report))
    counters = ", ".join(f"{k}={v:,}" for k, v in report.counters.items()
                         if v and k not in HIDDEN_COUNTERS)
    if counters:
        owner = "shim" if report.source == "leaktrace" else report.source
        lines.append(f"{owner} counters: {counters}")
    if report.build_seconds is not None:
        lines.append(f"report built in {report.build_seconds:.2f} s")
    lines += [f"note: {note}" for note in report.notes]
    return lines


def fatal_signal_lines(report: Report) -> list[str]:
    """How the program ended, when a signal ended it: the cause and the struck thread's
    backtrace (valgrind's "Process terminating with default action of signal ...")."""
    fatal = report.fatal
    if fatal is None:
        return []
    name = f" \"{fatal.thread_name}\"" if fatal.thread_name else ""
    thread = "the main thread" if fatal.main_thread else "a thread"
    lines = ["", f"== The program was ended by {fatal.name} (signal {fatal.signal}) ==",
             f"cause:  {fatal.cause}",
             *([f"        in its handler of the fault: {fatal.handled}"] if fatal.handled else []),
             f"thread: {thread} (tid {fatal.thread_id}{name}), in:"]
    if fatal.frames:
        lines += FrameTexts(False).lines(fatal.frames).split("\n")[1:]
    else:
        lines.append("    (no backtrace: the interrupted code could not be unwound)")
    if fatal.truncated:
        lines.append("    (cut at the depth limit, --max-depth)")
    if fatal.in_shim:
        lines.append("    (it struck while the thread ran leaktrace's own code, whose frames "
                     "are left out)")
    return lines


def invalid_free_lines(report: Report, options: RenderOptions | None = None) -> list[str]:
    """valgrind's "Invalid free() / delete / delete[] / realloc()": each backtrace that freed an
    address never allocated or freed already; then its "Mismatched free() / delete / delete
    []": each that released a block with a function not of its allocation (with
    --gen-suppressions, an entry after each)."""
    found = report.invalid_frees or []
    invalid = [f for f in found if not f.mismatched]
    mismatched = [f for f in found if f.mismatched]
    lines: list[str] = []
    calls = sum(f.calls for f in invalid) + report.invalid_frees_unrecorded
    if calls:
        lines += ["", f"== Invalid frees: {_plural(calls, 'call')} freed an address never "
                      "allocated, or freed already =="]
        lines += _free_entries(invalid, options)
        if report.invalid_frees_unrecorded:
            lines.append(f"{_plural(report.invalid_frees_unrecorded, 'more call')} from "
                         "backtraces the shim had no room for")
    if mismatched:
        lines += ["", f"== Mismatched frees: {_plural(sum(f.calls for f in mismatched), 'call')} "
                      "released a block with a function that does not match its allocation =="]
        lines += _free_entries(mismatched, options)
    suppressed = report.invalid_frees_suppressed
    if suppressed and not lines:
        return ["", f"== Invalid frees: {_plural(suppressed, 'call')}, each matched by a "
                    "Memcheck:Free suppression (not listed) =="]
    if suppressed:
        lines.append(f"{_plural(suppressed, 'more call')} matched a Memcheck:Free suppression "
                     "(not listed)")
    return lines


def _free_entries(frees: list[InvalidFree], options: RenderOptions | None) -> list[str]:
    lines = []
    texts = FrameTexts(False)
    for f in frees:
        call = f.api if f.api.startswith("operator") else f"{f.api}()"
        block = ""
        if f.mismatched:
            block = (", of a block from operator new[]" if f.block_from_new_array
                     else ", of a block not from operator new[]")
        lines.append(f"{'Mismatched' if f.mismatched else 'Invalid'} {call}: "
                     f"{_plural(f.calls, 'call')} (the first of address {f.first_address:#x})"
                     f"{block}, stack {f.stack_id}")
        lines += (texts.lines(f.frames).split("\n")[1:] if f.frames else
                  ["    (no backtrace: the stack table was full)"])
        entry = (free_suppression_text(f, options) if options and options.gen_suppressions
                 else None)
        if entry is not None:
            lines += entry.splitlines()
    return lines


def _previous_line(previous: PreviousCapture) -> str:
    change = previous.change
    if previous.path is None:  # an mtrace() checkpoint: the capture is the difference
        return (f"allocated since {previous.against} and still live: "
                f"{_plural(change.blocks, 'block')}, {size_with_bytes(change.bytes)}")
    earlier = (f", {previous.seconds_earlier:.2f} s earlier"
               if previous.seconds_earlier is not None else "")
    return (f"since {previous.against} ({previous.path}{earlier}): {change.bytes:+,} bytes, "
            f"{change.blocks:+,} blocks; {_plural(previous.new_records, 'new record')}, "
            f"{previous.gone_records:,} gone")


def _scan_line(report: Report) -> str:
    scan = report.scan
    assert scan is not None
    threads = _plural(scan.threads_stopped, "other thread")
    heuristics = ", ".join(scan.heuristics) or "none"
    return (f"reachability scan {report.captured_when}: {scan.seconds * 1000:.1f} ms, "
            f"{human_size(scan.bytes_scanned)} read ({human_size(scan.root_bytes)} of roots), "
            f"{threads} stopped; heuristics: {heuristics}")


def loss_records_heading(shown: int, total: int, options: RenderOptions) -> list[str]:
    """The lines before the loss records: which of them are shown, numbered how."""
    limits = ["all kinds" if options.leak_kinds is None
              else f"--show {kind_list_text(options.leak_kinds)}"]
    if options.min_bytes:
        limits.append(f"--min-bytes {options.min_bytes:,}")
    if options.top is not None:
        limits.append(f"--top {options.top}")
    lines = ["", f"== Loss records, largest first ({shown} of {total} shown; "
                 f"{', '.join(limits)}); numbered as valgrind numbers them, 1 the smallest =="]
    if not shown:
        lines += ["", "No loss record of the kinds shown."]
    return lines


def leaks_heading(shown: int, total: int, options: RenderOptions) -> list[str]:
    """The lines before the list of leaks (a capture without scan): what it shows, or that
    there is nothing to show."""
    if total == 0:
        return ["", "No leaks: every block allocated while leaktrace watched was freed."]
    limits = []
    if options.min_bytes:
        limits.append(f"--min-bytes {options.min_bytes:,}")
    if options.top is not None:
        limits.append(f"--top {options.top}")
    what = f"{shown} of {total} records" + (f"; {', '.join(limits)}" if limits else "")
    return ["", f"== Leaks, largest first ({what}) =="]


def _leaks(report: Report, records: list[LeakRecord], options: RenderOptions,
           frames: FrameTexts) -> Iterator[str]:
    total = len(report.records)
    yield from _lines_chunk(leaks_heading(len(records), total, options))
    if total == 0:
        return
    yield from _in_chunks(_leak_text(index, total, record, options, frames)
                          for index, record in enumerate(records, start=1))


def _leak_text(index: int, total: int, record: LeakRecord, options: RenderOptions,
               frames: FrameTexts) -> str:
    about = "~" if record.estimate is not None else ""  # sampling mode: estimates
    history = _history(record)
    return (f"\n[{index}/{total}] {about}{size_with_bytes(record.bytes)} in "
            f"{about}{_plural(record.blocks, 'block')} from {record.kind}, "
            f"stack {record.stack_id}" + (f"\n      {history}" if history else "")
            + _backtrace(record, options, frames) + "\n")


# Records written together: a million write calls would cost more than the joins.
_RECORDS_A_CHUNK = 256


def _in_chunks(texts: Iterable[str]) -> Iterator[str]:
    """The records' texts joined _RECORDS_A_CHUNK at a time."""
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) == _RECORDS_A_CHUNK:
            yield "".join(chunk)
            chunk.clear()
    if chunk:
        yield "".join(chunk)
_NO_BACKTRACE = ("\n    (no backtrace: the allocation could not be unwound, or the stack "
                 "table was full or out of memory)")


def _backtrace(record: LeakRecord, options: RenderOptions, frames: FrameTexts) -> str:
    """The backtrace's lines, each after a newline."""
    text = frames.lines(record.frames) if record.frames else _NO_BACKTRACE
    if options.gen_suppressions:
        text += "".join("\n" + line for line in _suppression_entry(record, options))
    return text


def _suppression_entry(record: LeakRecord, options: RenderOptions) -> list[str]:
    entry = suppression_text(record, options)
    if entry is None:
        return ["    (no suppression: without a backtrace it would match every leak of "
                f"{record.kind})"]
    return entry.splitlines()


def loss_record_sentence(record: LeakRecord, records_total: int) -> str:
    """valgrind's words: '48 (16 direct, 32 indirect) bytes in 1 blocks are definitely lost
    in loss record 3 of 9' (valgrind always says 'blocks')."""
    head = _sentence_head(record.own_bytes, record.indirect_bytes or 0, record.blocks,
                          record.leak_kind, record.estimate is not None)
    if record.loss_record is None:
        return head
    return f"{head} in loss record {record.loss_record:,} of {records_total:,}"


@lru_cache(maxsize=4096)  # a big capture's records repeat the same few sizes
def _sentence_head(direct: int, indirect: int, blocks: int, leak_kind: str | None,
                   estimated: bool) -> str:
    if indirect:
        size = f"{direct + indirect:,} ({direct:,} direct, {indirect:,} indirect) bytes"
    else:
        size = f"{direct:,} bytes"
    about = "~" if estimated else ""  # sampling mode: estimates
    return f"{about}{size} in {about}{blocks:,} blocks are {leak_kind}"


def no_leaks_text(report: Report) -> str:
    """The line where the loss records would be. A program with a malloc of its own (the
    shim's note says so: malloc comes first in its list) allocates unseen: no record is no
    clean bill of health then."""
    if any(" defines its own malloc" in note for note in report.notes):
        return ("No heap blocks seen: the program allocates with a malloc of its own, which "
                "leaktrace does not see (the note above); its leaks are not in this report.")
    return "No leaks: every heap block allocated while leaktrace watched was freed."


def _loss_records(report: Report, records: list[LeakRecord], options: RenderOptions,
                  frames: FrameTexts) -> Iterator[str]:
    total = report.loss_records_total or max(
        (r.loss_record for r in report.records if r.loss_record is not None), default=0)
    if not report.records:
        if report.source != "leaktrace":
            yield from _lines_chunk(["", f"No loss records: {report.source} reported no leak "
                                         "of the kinds it was asked to show."])
            return
        yield from _lines_chunk(["", no_leaks_text(report)])
        return
    yield from _lines_chunk(loss_records_heading(len(records), total, options))
    yield from _in_chunks(_loss_record_text(record, total, options, frames)
                          for record in records)


def _loss_record_text(record: LeakRecord, total: int, options: RenderOptions,
                      frames: FrameTexts) -> str:
    history = _history(record)
    return (f"\n{loss_record_sentence(record, total)}\n      {record.kind}, stack "
            f"{record.stack_id}" + (f"; {history}" if history else "")
            + _backtrace(record, options, frames) + "\n")


def mapped_regions(report: Report, options: RenderOptions, frames: FrameTexts) -> list[str]:
    regions = shown_mapped_regions(report, options)
    if not report.mapped_regions:
        return []
    lines = ["", f"== Memory mappings never unmapped ({len(regions)} of "
                 f"{len(report.mapped_regions)} shown; not heap blocks, so not loss records) =="]
    for region in regions:
        lines.append("")
        lines.append(f"{size_with_bytes(region.bytes)} in {_plural(region.blocks, 'region')} "
                     f"from {region.kind}, stack {region.stack_id}")
        history = _history(region)
        if history:
            lines.append(f"      {history}")
        # A mapping is no loss record: nothing to suppress.
        lines.append(_backtrace(region, RenderOptions(show_addresses=options.show_addresses),
                                frames)[1:])
    return lines


def _leak_summary(report: Report, options: RenderOptions) -> list[str]:
    """valgrind's LEAK SUMMARY, line for line (direct bytes per kind)."""
    leaks = report.summary.leaks
    if leaks is None:
        return []
    lines = ["", "LEAK SUMMARY:"]
    labels = {kind: f"{kind:>18}" for kind in LEAK_KINDS}
    for kind in LEAK_KINDS:
        if kind in leaks.unknown_kinds:
            lines.append(f"{labels[kind]}: unknown (not in the {report.source} output; "
                         "rerun valgrind with --show-leak-kinds=all)")
            continue
        lines.append(f"{labels[kind]}: {_blocks_text(leaks.of(kind))}")
        if kind == STILL_REACHABLE and leaks.reachable_via_heuristic:
            lines.append(" " * 19 + "   of which reachable via heuristic:")
            for name, total in leaks.reachable_via_heuristic.items():
                lines.append(" " * 24 + f"{name:<19}: {_blocks_text(total)}")
    suppressed = _blocks_text(report.summary.suppressed)
    by_source = report.summary.source_suppressed_errors
    if by_source:
        # valgrind's XML counts what its own suppressions matched, without sizes: the total
        # is unknown, never the 0 bytes leaktrace's suppressions may have matched.
        ours = report.summary.suppressed
        suppressed = (f"unknown ({report.source} suppressed {_plural(by_source, 'error')} "
                      "itself, its output gives no sizes"
                      + (f"; leaktrace's suppressions: {suppressed}" if ours.blocks else "")
                      + ")")
    lines.append(f"{'suppressed':>18}: {suppressed}")
    shown = options.leak_kinds
    if shown is not None and STILL_REACHABLE not in shown and leaks.still_reachable.blocks:
        lines.append("Reachable blocks (those to which a pointer was found) are not shown.")
        lines.append("To see them, rerun with: --show all")
    return lines


def _blocks_text(total: KindTotal) -> str:
    text = f"{total.bytes:,} bytes in {total.blocks:,} blocks"
    if total.bytes_variance is not None:  # sampling mode: an estimate
        low, high = total.bytes_interval() or (total.bytes, total.bytes)
        text = f"~{text} (95% interval {low:,}-{high:,} bytes)"
    return text


def _suppressions_used(report: Report) -> list[str]:
    """As valgrind -v lists them: count of records, name, where it is defined."""
    if not report.suppressions_used:
        return []
    lines = [""]
    for use in report.suppressions_used:
        what = (_plural(use.invalid_free_calls, "invalid free call") if use.invalid_free_calls
                else f"{use.bytes:,} bytes in {use.blocks:,} blocks")
        lines.append(f"used_suppression: {use.records:>6} {use.name} {use.origin} suppressed: "
                     f"{what}")
    return lines


def _history(record: LeakRecord) -> str:
    parts = []
    if record.estimate is not None:
        e = record.estimate
        parts.append(f"estimated from {_plural(e.sampled_blocks, 'sampled block')}; 95% "
                     f"interval {e.bytes_low:,}-{e.bytes_high:,} bytes")
    if record.total_allocations:
        parts.append(_allocated_text(record.total_allocations, record.total_allocated_bytes))
    if record.oldest_age_seconds is not None:
        parts.append(f"oldest live block {record.oldest_age_seconds:.3f} s old at capture")
    if record.growth is not None:
        parts.append(_growth_text(round(record.growth.bytes_per_second),
                                  record.growth.verdict))
    if record.since_previous is not None:
        change = record.since_previous
        parts.append("new since the previous capture" if change.new else
                     f"{change.bytes:+,} bytes, {change.blocks:+,} blocks since the previous "
                     "capture")
    return "; ".join(parts)


# A big capture's records repeat the same few counts and rates: each text is made once.
@lru_cache(maxsize=4096)
def _allocated_text(count: int, size: int | None) -> str:
    return (f"allocated {_plural(count, 'time')} ({human_size(size or 0)}) from this "
            "backtrace during the run")


@lru_cache(maxsize=4096)
def _growth_text(rate: int, verdict: str) -> str:
    return f"growth {'+' if rate >= 0 else '-'}{human_size(abs(rate))}/s over the run ({verdict})"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def frame_line(number: int, width: int, frame: Frame, show_address: bool) -> str:
    return f"#{number:<{width}}  {frame_text(frame, show_address)}"


def frame_text(frame: Frame, show_address: bool) -> str:
    """A backtrace line after the frame's number."""
    module = os.path.basename(frame.module) if frame.module else None
    parts = []
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


def frame_totals(totals: list[FrameTotal], live: int, options: RenderOptions) -> list[str]:
    """"Leaked bytes per frame": `totals` of the records it adds up, whose own bytes are
    `live`."""
    totals = [t for t in totals if t.bytes >= options.min_bytes]
    limit = options.top if options.top is not None else FRAME_TOTALS_SHOWN
    if not totals or limit == 0:  # --top 0: the summary only
        return []
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


def addresses(records: list[LeakRecord]) -> list[str]:
    lines = ["", "== Live blocks of the records shown (address, size, stack, age) =="]
    for record in records:
        for block in record.addresses:
            age = f"  {block.age_seconds:.3f} s old" if block.age_seconds is not None else ""
            kind = f"  {record.leak_kind}" if record.leak_kind else ""
            lines.append(f"  {block.address:#014x}  {block.size:>12,} bytes  "
                         f"stack {record.stack_id}  {record.kind}{kind}{age}")
    return lines
