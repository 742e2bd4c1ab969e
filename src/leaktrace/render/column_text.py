"""The text report's records from records as columns (analyze/record_columns.py): the same
text as render/text.py makes from record objects, made from per-column lists and from each
return address's frame text made once, without a LeakRecord per record."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from itertools import chain

import numpy as np

from leaktrace.analyze.column_frame_totals import column_frame_totals
from leaktrace.analyze.record_columns import NO_LEAK_KIND, NONE, RecordColumns
from leaktrace.leak_kinds import kind_list_text
from leaktrace.model import Report
from leaktrace.render import text
from leaktrace.render.options import RenderOptions, shown_mapped_regions
from leaktrace.render.sizes import size_with_bytes

_BATCH = 4096  # records whose columns are turned into lists at a time


def selected_indexes(columns: RecordColumns, options: RenderOptions) -> np.ndarray:
    """selected_records of records as columns: indexes, display order being theirs."""
    chosen = columns.suppressed == NONE
    if options.leak_kinds is not None:
        shown = np.array([name in options.leak_kinds for name in columns.leak_kind_names]
                         + [True], dtype=bool)  # no leak kind: always shown
        chosen &= shown[columns.leak_kinds]
    return np.flatnonzero(chosen)


def shown_indexes(columns: RecordColumns, options: RenderOptions,
                  selected: np.ndarray) -> np.ndarray:
    """shown_records of records as columns."""
    records = selected[columns.bytes[selected] >= options.min_bytes]
    return records if options.top is None else records[:options.top]


def record_sections(report: Report, columns: RecordColumns,
                    options: RenderOptions) -> Iterator[str]:
    """text._record_sections of records as columns."""
    selected = selected_indexes(columns, options)
    shown = shown_indexes(columns, options, selected)
    frames = text.FrameTexts(options.show_addresses)
    texts = _AddressTexts(columns, options.show_addresses)
    if report.scanned:
        yield from _loss_records(report, columns, shown, options, texts)
        yield from text._lines_chunk(text.mapped_regions(report, options, frames))
    else:
        yield from _leaks(report, columns, shown, options, texts)
    if report.scanned or options.leak_kinds is not None:
        unsuppressed = int(np.count_nonzero(columns.suppressed == NONE))
        totals = (report.frame_totals if report.frame_totals and len(selected) == unsuppressed
                  else column_frame_totals(columns.take(selected)))
        live = int(columns.own_bytes[selected].sum()) or 1
    else:
        totals = report.frame_totals or column_frame_totals(columns)
        live = (report.summary.live_bytes - report.summary.suppressed.bytes) or 1
    yield from text._lines_chunk(text.frame_totals(totals, live, options))
    if options.show_addresses:
        records = list(columns._records(shown.tolist()))
        yield from text._lines_chunk(text.addresses(
            records + shown_mapped_regions(report, options)))


def _loss_records(report: Report, columns: RecordColumns, shown: np.ndarray,
                  options: RenderOptions, texts: _AddressTexts) -> Iterator[str]:
    total = report.loss_records_total or int(columns.loss_records.max(initial=0))
    if len(columns) == 0:
        yield from text._lines_chunk(["", "No leaks: every heap block allocated while "
                                          "leaktrace watched was freed."])
        return
    limits = ["all kinds" if options.leak_kinds is None
              else f"--show {kind_list_text(options.leak_kinds)}"]
    if options.min_bytes:
        limits.append(f"--min-bytes {options.min_bytes:,}")
    if options.top is not None:
        limits.append(f"--top {options.top}")
    lines = ["", f"== Loss records, largest first ({len(shown)} of {total} shown; "
                 f"{', '.join(limits)}); numbered as valgrind numbers them, 1 the smallest =="]
    if not len(shown):
        lines += ["", "No loss record of the kinds shown."]
    yield from text._lines_chunk(lines)
    for low in range(0, len(shown), _BATCH):
        yield from text._in_chunks(_loss_record_texts(columns, shown[low:low + _BATCH], total,
                                                      options, texts))


def _loss_record_texts(columns: RecordColumns, chosen: np.ndarray, total: int,
                       options: RenderOptions, texts: _AddressTexts) -> Iterator[str]:
    head = text._sentence_head
    leak_names = columns.leak_kind_names
    estimated = columns.estimates is not None
    of_total = f" of {total:,}"
    for own, indirect, blocks, leak, number, kind, history, backtrace in zip(
            columns.own_bytes[chosen].tolist(),
            columns.indirect_bytes[chosen].tolist(), columns.blocks[chosen].tolist(),
            columns.leak_kinds[chosen].tolist(), columns.loss_records[chosen].tolist(),
            _kinds_and_ids(columns, chosen), _histories(columns, chosen),
            _backtraces(columns, chosen, options, texts), strict=True):
        if leak == NO_LEAK_KIND:
            sentence = head(own, 0, blocks, None, estimated)
        else:
            sentence = head(own, indirect, blocks, leak_names[leak], estimated)
        if number:
            sentence = f"{sentence} in loss record {number:,}{of_total}"
        yield (f"\n{sentence}\n      {kind}" + (f"; {history}" if history else "")
               + backtrace + "\n")


def _leaks(report: Report, columns: RecordColumns, shown: np.ndarray,
           options: RenderOptions, texts: _AddressTexts) -> Iterator[str]:
    total = len(columns)
    if total == 0:
        yield from text._lines_chunk(["", "No leaks: every block allocated while leaktrace "
                                          "watched was freed."])
        return
    limits = []
    if options.min_bytes:
        limits.append(f"--min-bytes {options.min_bytes:,}")
    if options.top is not None:
        limits.append(f"--top {options.top}")
    what = f"{len(shown)} of {total} records" + (f"; {', '.join(limits)}" if limits else "")
    yield from text._lines_chunk(["", f"== Leaks, largest first ({what}) =="])
    about = "~" if columns.estimates is not None else ""
    of_total = f"/{total}] {about}"
    index = 1
    for low in range(0, len(shown), _BATCH):
        chosen = shown[low:low + _BATCH]
        made = []
        for size, blocks, kind, history, backtrace in zip(
                columns.bytes[chosen].tolist(), columns.blocks[chosen].tolist(),
                _kinds_and_ids(columns, chosen, " from "), _histories(columns, chosen),
                _backtraces(columns, chosen, options, texts), strict=True):
            made.append(f"\n[{index}{of_total}{size_with_bytes(size)} in "
                         f"{about}{text._plural(blocks, 'block')}{kind}"
                         + (f"\n      {history}" if history else "") + backtrace + "\n")
            index += 1
        yield from text._in_chunks(made)


def _kinds_and_ids(columns: RecordColumns, chosen: np.ndarray, before: str = "") -> list[str]:
    """"malloc, stack 0123abcd" of each record (after `before`)."""
    names = [f"{before}{name}, stack " for name in columns.kind_names]
    return [f"{names[k]}{n:08x}" for k, n in zip(
        columns.kinds[chosen].tolist(), columns.ids[chosen].tolist(), strict=True)]


def _histories(columns: RecordColumns, chosen: np.ndarray) -> Iterator[str]:
    """text._history of each record."""
    allocated_text, growth_text = text._allocated_text, text._growth_text
    verdicts = columns.growth_verdict_names
    estimates = columns.estimates
    for i, allocs, allocated, age, rate, verdict in zip(
            chosen.tolist(), columns.alloc_counts[chosen].tolist(),
            columns.alloc_bytes[chosen].tolist(), columns.oldest_ages[chosen].tolist(),
            columns.growth_rates[chosen].tolist(), columns.growth_verdicts[chosen].tolist(),
            strict=True):
        parts = []
        if estimates is not None:
            e = estimates[i]
            parts.append(f"estimated from {text._plural(e.sampled_blocks, 'sampled block')}; "
                         f"95% interval {e.bytes_low:,}-{e.bytes_high:,} bytes")
        if allocs > 0:
            parts.append(allocated_text(allocs, allocated if allocated >= 0 else None))
        if age == age:  # not NaN: known
            parts.append(f"oldest live block {age:.3f} s old at capture")
        if verdict != NONE:
            parts.append(growth_text(round(rate), verdicts[verdict]))
        yield "; ".join(parts)


def _backtraces(columns: RecordColumns, chosen: np.ndarray, options: RenderOptions,
                texts: _AddressTexts) -> Iterator[str]:
    """text._backtrace of each record: its frames' lines from each address's text."""
    described = columns.frames
    table = described.table
    words = np.asarray(table.addresses)
    rows = columns.rows[chosen]
    starts = np.where(rows >= 0, table.starts[rows], 0).tolist()
    depths = np.where(rows >= 0, table.depths[rows], 0).tolist()
    for i, row, start, depth in zip(chosen.tolist(), rows.tolist(), starts, depths,
                                    strict=True):
        lines = texts.lines(words[start:start + depth].tolist()) if row >= 0 and depth \
            else ""
        result = lines or text._NO_BACKTRACE
        if options.gen_suppressions:
            result += "".join("\n" + line for line in text._suppression_entry(
                columns.record(i), options))
        yield result


class _AddressTexts:
    """Each return address's frame texts (text.frame_text), made once."""

    def __init__(self, columns: RecordColumns, show_address: bool) -> None:
        frames_of = columns.frames.frames_by_address()
        make = partial(text.frame_text, show_address=show_address)
        self._one_each = all(len(f) == 1 for f in frames_of.values())
        self._text_of = {a: make(f[0]) for a, f in frames_of.items() if len(f) == 1}
        self._texts_of = {a: tuple(map(make, f)) for a, f in frames_of.items()}
        self._pieces: dict[int, list[str]] = {}  # per frame count: line starts and texts

    def lines(self, addresses: list[int]) -> str:
        """The backtrace's lines, each after a newline (as text.FrameTexts.lines)."""
        if self._one_each:
            texts = list(map(self._text_of.__getitem__, addresses))
        else:
            texts = list(chain.from_iterable(map(self._texts_of.__getitem__, addresses)))
        if not texts:
            return ""
        pieces = self._pieces.get(len(texts))
        if pieces is None:  # "\n    #0  ", text, "\n    #1  ", text...
            width = len(str(len(texts) - 1))
            pieces = self._pieces[len(texts)] = [
                piece for n in range(len(texts)) for piece in (f"\n    #{n:<{width}}  ", "")]
        pieces[1::2] = texts  # a join is faster than a %-format of as many strings
        return "".join(pieces)
