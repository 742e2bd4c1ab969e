"""The text report's records from records as columns (analyze/record_columns.py): the same
text as render/text.py makes from record objects, made from per-column lists and from each
return address's frame text made once, without a LeakRecord per record."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache, partial
from itertools import chain, repeat
from operator import add

import numpy as np

from leaktrace import report_native as native
from leaktrace.analyze.column_frame_totals import column_frame_totals
from leaktrace.analyze.record_columns import NO_LEAK_KIND, NONE, RecordColumns
from leaktrace.analyze.stack_matrix import address_matrix
from leaktrace.capture.distinct import distinct
from leaktrace.capture.id_rows import take_rows
from leaktrace.capture.stack_table import StackTable
from leaktrace.model import Report
from leaktrace.render import text
from leaktrace.render.options import RenderOptions, shown_mapped_regions
from leaktrace.render.sizes import size_with_bytes

_BATCH = 512  # records made at a time: each batch is one string of about 1 MB (8 MB strings
# cost three times the system time to allocate and write)
_NATIVE_RUN = 1 << 16  # records whose heads' texts the library's path numbers at once
_JOINED_LINES = 1 << 22  # most distinct frame lines _AddressTexts.joined keeps
_POWERS_OF_TEN = np.array([10 ** n for n in range(1, 19)], dtype=np.int64)


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
        records = list(columns.records_at(shown.tolist()))
        yield from text._lines_chunk(text.addresses(
            records + shown_mapped_regions(report, options)))


def _loss_records(report: Report, columns: RecordColumns, shown: np.ndarray,
                  options: RenderOptions, texts: _AddressTexts) -> Iterator[str]:
    total = report.loss_records_total or int(columns.loss_records.max(initial=0))
    if len(columns) == 0:
        yield from text._lines_chunk(["", text.no_leaks_text(report)])
        return
    yield from text._lines_chunk(text.loss_records_heading(len(shown), total, options))
    if texts.native_ready(columns, options):
        yield from texts.native_loss_records(columns, shown, total, options)
        return
    for low in range(0, len(shown), _BATCH):
        yield _loss_record_texts(columns, shown[low:low + _BATCH], total, options, texts)


def _loss_record_texts(columns: RecordColumns, chosen: np.ndarray, total: int,
                       options: RenderOptions, texts: _AddressTexts) -> str:
    """The loss records `chosen`, text._loss_record_text's text each. Each part of the heads
    is a list made by one comprehension or C-level map (the repeated parts from caches):
    a loop per record with its branches cost several microseconds a record."""
    count = len(chosen)
    leaks = columns.leak_kinds[chosen]
    classified = leaks != NO_LEAK_KIND
    names = [*columns.leak_kind_names, None]  # NO_LEAK_KIND (-1): None
    sentences = list(map(
        text._sentence_head, columns.own_bytes[chosen].tolist(),
        np.where(classified, columns.indirect_bytes[chosen], 0).tolist(),
        columns.blocks[chosen].tolist(), [names[k] for k in leaks.tolist()],
        repeat(columns.estimates is not None, count)))
    of_total = f" of {total:,}"
    numbers = [f" in loss record {n:,}{of_total}" if n else ""
               for n in columns.loss_records[chosen].tolist()]
    heads = [f"\n{sentence}{number}\n      {kind}{history}" for sentence, number, kind, history
             in zip(sentences, numbers, _kinds_and_ids(columns, chosen),
                    _history_parts(columns, chosen), strict=True)]
    return _with_backtraces(columns, chosen, heads, options, texts)


def _with_backtraces(columns: RecordColumns, chosen: np.ndarray, heads: list[str],
                     options: RenderOptions, texts: _AddressTexts) -> str:
    """Each record's head, backtrace and final newline, one after the other."""
    if not options.gen_suppressions:
        joined = texts.joined(columns.frames.table, columns.rows[chosen], heads)
        if joined is not None:
            return joined
    return "".join(head + backtrace + "\n" for head, backtrace in zip(
        heads, _backtraces(columns, chosen, options, texts), strict=True))


def _leaks(report: Report, columns: RecordColumns, shown: np.ndarray,
           options: RenderOptions, texts: _AddressTexts) -> Iterator[str]:
    total = len(columns)
    yield from text._lines_chunk(text.leaks_heading(len(shown), total, options))
    if total == 0:
        return
    about = "~" if columns.estimates is not None else ""
    of_total = f"/{total}] {about}"
    for low in range(0, len(shown), _BATCH):
        chosen = shown[low:low + _BATCH]
        sizes = list(map(_size_in_blocks, columns.bytes[chosen].tolist(),
                         columns.blocks[chosen].tolist(), repeat(about, len(chosen))))
        heads = [f"\n[{index}{of_total}{size}{kind}" + (f"\n      {history[2:]}" if history
                                                       else "")
                 for index, size, kind, history in zip(
                     range(low + 1, low + 1 + len(chosen)), sizes,
                     _kinds_and_ids(columns, chosen, " from "),
                     _history_parts(columns, chosen), strict=True)]
        yield _with_backtraces(columns, chosen, heads, options, texts)


@lru_cache(maxsize=4096)  # a big capture's records repeat the same few sizes
def _size_in_blocks(size: int, blocks: int, about: str) -> str:
    return f"{size_with_bytes(size)} in {about}{text._plural(blocks, 'block')}"


def _kinds_and_ids(columns: RecordColumns, chosen: np.ndarray, before: str = "") -> list[str]:
    """"malloc, stack 0123abcd" of each record (after `before`)."""
    names = [f"{before}{name}, stack " for name in columns.kind_names]
    return [f"{names[k]}{n:08x}" for k, n in zip(
        columns.kinds[chosen].tolist(), columns.ids[chosen].tolist(), strict=True)]


def _history_parts(columns: RecordColumns, chosen: np.ndarray) -> list[str]:
    """text._history of each record, each part after "; " (so "" when it has none)."""
    count = len(chosen)
    history = list(map(_allocated_part, columns.alloc_counts[chosen].tolist(),
                       columns.alloc_bytes[chosen].tolist()))
    if columns.estimates is not None:
        estimates = columns.estimates
        history = list(map(add, [
            f"; estimated from {text._plural(e.sampled_blocks, 'sampled block')}; 95% "
            f"interval {e.bytes_low:,}-{e.bytes_high:,} bytes"
            for e in map(estimates.__getitem__, chosen.tolist())], history))
    ages = [f"; oldest live block {age:.3f} s old at capture" if age == age else ""
            for age in columns.oldest_ages[chosen].tolist()]  # age == age: not NaN
    history = list(map(add, history, ages))
    verdicts = columns.growth_verdicts[chosen]
    if (verdicts != NONE).any():
        growth = _growth_parts(columns, chosen)
        if growth is None:
            names, growth_text = columns.growth_verdict_names, text._growth_text
            growth = [f"; {growth_text(round(rate), names[verdict])}" if verdict != NONE
                      else "" for rate, verdict in zip(columns.growth_rates[chosen].tolist(),
                                                       verdicts.tolist(), strict=True)]
        history = list(map(add, history, growth))
    assert len(history) == count
    return history


def _growth_parts(columns: RecordColumns, chosen: np.ndarray) -> list[str] | None:
    """_growth_part of each record ("" without a verdict), by numpy's rint (half to even, as
    round() does); None when a judged rate is not finite (round() then says what it says)."""
    verdicts = columns.growth_verdicts[chosen]
    rates = columns.growth_rates[chosen]
    judged = verdicts != NONE
    if not np.isfinite(rates[judged]).all():
        return None
    names = [*columns.growth_verdict_names, ""]  # NONE (-1): ""
    return list(map(_growth_part, np.where(judged, np.rint(rates), 0).astype(np.int64).tolist(),
                    [names[v] for v in verdicts.tolist()]))


@lru_cache(maxsize=4096)  # a big capture's records repeat the same few rates
def _growth_part(rate: int, verdict: str) -> str:
    """"; growth ..." (text._growth_text) for a verdict, else ""."""
    return f"; {text._growth_text(rate, verdict)}" if verdict else ""


@lru_cache(maxsize=4096)  # a big capture's records repeat the same few totals
def _allocated_part(count: int, size: int) -> str:
    """"; allocated ..." (text._allocated_text) for a positive count, else ""."""
    if count <= 0:
        return ""
    return "; " + text._allocated_text(count, size if size >= 0 else None)


def _backtraces(columns: RecordColumns, chosen: np.ndarray, options: RenderOptions,
                texts: _AddressTexts) -> Iterator[str]:
    """text._backtrace of each record: its frames' lines from each address's text."""
    table = columns.frames.table
    rows = columns.rows[chosen]
    present = rows >= 0
    # The stacks' words gathered by numpy at once, as numbers of the distinct addresses.
    if present.any():
        found = address_matrix(table, texts.addresses, np.where(present, rows, 0)).tolist()
        depths = take_rows(table.depths, rows, 0).tolist()
    else:  # no record has a backtrace (the table may be empty)
        found, depths = [[]] * len(rows), [0] * len(rows)
    for i, numbers, depth in zip(chosen.tolist(), found, depths, strict=True):
        result = texts.lines(numbers[:depth]) or text._NO_BACKTRACE
        if options.gen_suppressions:
            result += "".join("\n" + line for line in text._suppression_entry(
                columns.record(i), options))
        yield result


class _AddressTexts:
    """Each return address's frame texts (text.frame_text), made once."""

    def __init__(self, columns: RecordColumns, show_address: bool) -> None:
        frames_of = columns.frames.frames_by_address()
        make = partial(text.frame_text, show_address=show_address)
        self.addresses = np.array(sorted(frames_of), dtype=np.uint64)
        each = [frames_of[a] for a in self.addresses.tolist()]  # by address number
        self._one_each = all(len(f) == 1 for f in each)
        self._text_of = [make(f[0]) if len(f) == 1 else "" for f in each]
        self._texts_of = [tuple(map(make, f)) for f in each]
        self._pieces: dict[int, list[str]] = {}  # per frame count: line starts and texts
        # For joined(): each frame's text by slot (an address's frames are consecutive
        # slots), and each frame line ever made, by (number width, frame number, slot).
        frame_counts = [len(f) for f in each]
        self._slot_texts = [t for ts in self._texts_of for t in ts]
        self._frame_counts = np.array([*frame_counts, 0], dtype=np.int64)
        self._first_slots = _starts(self._frame_counts)
        numbers = int(columns.frames.table.depths.max(initial=1)) * max(frame_counts,
                                                                         default=1)
        self._numbers = max(numbers, 1)
        self._lines_count = (len(str(self._numbers - 1)) * self._numbers
                             * max(len(self._slot_texts), 1))
        self._strings: list[str] = []  # the lines, "\n", then a batch's heads
        self._made = np.zeros(0, dtype=bool)
        # With the report helper library: the same lines encoded, joined in C.
        self._native = native.usable(len(columns))
        self._encoded: list[bytes] = []  # the lines made, in the order made
        self._encoded_size = 0
        self._slot_table: native.TextTable | None = None  # for native_loss_records
        self._line_bytes = b""  # self._encoded joined, remade when lines are added
        self._line_starts = self._line_lengths = np.zeros(0, dtype=np.int64)

    def lines(self, addresses: list[int]) -> str:
        """The lines of the backtrace through `addresses` (numbers into self.addresses),
        each after a newline (as text.FrameTexts.lines)."""
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

    def joined(self, table: StackTable, rows: np.ndarray, heads: list[str]) -> str | None:
        """Each head, then the lines of the stack in `rows` (the same entry; -1: none), then
        a newline: one join over a list of every frame line met (made once each), without
        Python work per frame. None when that list would be too long."""
        if self._lines_count > _JOINED_LINES:
            return None
        if not self._strings:
            self._strings = [""] * self._lines_count + ["\n"]
            self._made = np.zeros(self._lines_count, dtype=bool)
            self._line_starts = np.zeros(self._lines_count + 1, dtype=np.int64)
            self._line_lengths = np.zeros(self._lines_count + 1, dtype=np.int64)
            self._add_encoded(self._lines_count, "\n")
        present = rows >= 0
        count = len(rows)
        if present.any():
            found = address_matrix(table, self.addresses, np.where(present, rows, 0))
            depths = take_rows(table.depths, rows, 0)
        else:
            found = np.zeros((count, 0), dtype=np.int64)
            depths = np.zeros(count, dtype=np.int64)
        # Each frame of each record, records one after the other, frames innermost first
        # (an address's inlined frames each on their own).
        inside = np.arange(found.shape[1])[None, :] < depths[:, None]
        cells = found[inside]
        frames_each = self._frame_counts[cells]
        slots = np.repeat(self._first_slots[cells] - _starts(frames_each), frames_each) \
            + np.arange(int(frames_each.sum()))
        frame_records = np.repeat(np.repeat(np.arange(count), depths), frames_each)
        counts = np.bincount(frame_records, minlength=count)
        numbers = np.arange(len(slots)) - np.repeat(_starts(counts), counts)
        # Digits of the last frame number (the width of every number of the backtrace),
        # less one.
        widths = np.searchsorted(_POWERS_OF_TEN, np.maximum(counts - 1, 0), side="right")
        keys = ((widths[frame_records] * self._numbers + numbers) * len(self._slot_texts)
                + slots)
        self._make_lines(distinct(keys[~self._made[keys]]))
        # Where each piece goes: a head, its lines, then "\n" (the list's entry there).
        starts = _starts(counts + 2)
        pieces = np.full(int((counts + 2).sum()), self._lines_count, dtype=np.int64)
        pieces[starts] = self._lines_count + 1 + np.arange(count)
        pieces[np.repeat(starts + 1, counts) + numbers] = keys
        heads = [h if n else h + text._NO_BACKTRACE for h, n in zip(
            heads, counts.tolist(), strict=True)]
        if self._native is not None:
            joined = self._native_join(heads, pieces)
            if joined is not None:
                return joined
        strings = self._strings
        del strings[self._lines_count + 1:]
        strings += heads
        return "".join(map(strings.__getitem__, pieces.tolist()))

    def native_ready(self, columns: RecordColumns, options: RenderOptions) -> bool:
        """Whether native_loss_records may write these records (the library is there; no
        suppression entries or sampling estimates, which only Python writes)."""
        return (self._native is not None and not options.gen_suppressions
                and columns.estimates is None)

    def native_loss_records(self, columns: RecordColumns, shown: np.ndarray, total: int,
                            options: RenderOptions) -> Iterator[str]:
        """_loss_record_texts' text of each batch of `shown`, written by the report helper
        library (a batch it leaves to Python is made by _loss_record_texts)."""
        assert self._native is not None
        if self._slot_table is None:
            self._slot_table = native.TextTable.of(self._slot_texts)
        for low in range(0, len(shown), _NATIVE_RUN):
            run = shown[low:low + _NATIVE_RUN]
            writer = self._loss_record_writer(columns, run, total)
            for first in range(0, len(run), _BATCH):
                count = min(_BATCH, len(run) - first)
                out = None if writer is None else writer.write(first, count)
                yield (str(out.data, "utf-8") if out is not None else _loss_record_texts(
                    columns, run[first:first + count], total, options, self))

    def _loss_record_writer(self, columns: RecordColumns, run: np.ndarray,
                            total: int) -> native.LossRecordWriter | None:
        """The library's writer of the records `run`: the texts their heads repeat
        (sentence, kind, allocation and growth parts) made once per distinct value of the
        columns they are made of, numbered after the frame texts. None leaves the run to
        Python (a judged growth rate that is not finite)."""
        assert self._native is not None and self._slot_table is not None
        lib = self._native
        texts: list[str] = [f" of {total:,}", text._NO_BACKTRACE]
        first_text = len(self._slot_texts)

        def numbered(made: list[str], numbers: np.ndarray) -> np.ndarray:
            texts.extend(made)
            return numbers + (first_text + len(texts) - len(made))

        kinds = numbered([f"{name}, stack " for name in columns.kind_names],
                         np.arange(len(columns.kind_names), dtype=np.int64))
        leaks = columns.leak_kinds[run].astype(np.int64)
        indirect = np.where(leaks != NO_LEAK_KIND, columns.indirect_bytes[run], 0)
        numbers, firsts = native.distinct_rows(lib, np.stack(
            (columns.own_bytes[run], indirect, columns.blocks[run], leaks), axis=1))
        names = [*columns.leak_kind_names, None]  # NO_LEAK_KIND (-1): None
        sentences = numbered(list(map(
            text._sentence_head, columns.own_bytes[run[firsts]].tolist(),
            indirect[firsts].tolist(), columns.blocks[run[firsts]].tolist(),
            [names[k] for k in leaks[firsts].tolist()], repeat(False, len(firsts)))), numbers)
        counts, sizes = columns.alloc_counts[run], columns.alloc_bytes[run]
        numbers, firsts = native.distinct_rows(lib, np.stack((counts, sizes), axis=1))
        allocated = numbered(list(map(_allocated_part, counts[firsts].tolist(),
                                      sizes[firsts].tolist())), numbers)
        growth = np.full(len(run), -1, dtype=np.int64)
        verdicts = columns.growth_verdicts[run]
        judged = verdicts != NONE
        if judged.any():
            rates = columns.growth_rates[run]
            if not np.isfinite(rates[judged]).all():
                return None
            rates = np.where(judged, np.rint(rates), 0).astype(np.int64)
            verdicts = verdicts.astype(np.int64)
            numbers, firsts = native.distinct_rows(lib, np.stack((rates, verdicts), axis=1))
            verdict_names = [*columns.growth_verdict_names, ""]  # NONE (-1): ""
            growth = numbered(list(map(_growth_part, rates[firsts].tolist(),
                                       [verdict_names[v] for v in verdicts[firsts].tolist()])),
                              numbers)
        table = columns.frames.table
        rows = columns.rows[run]
        record_columns = {
            "sentences": sentences,
            "numbers": columns.loss_records[run],
            "kinds": kinds[columns.kinds[run]],
            "allocated": allocated,
            "growth": growth,
            "starts": take_rows(table.starts, rows, 0),
            "depths": take_rows(table.depths, rows, 0),
            "ids": columns.ids[run],
            "ages": columns.oldest_ages[run],
        }
        return native.LossRecordWriter(
            lib, self._slot_table, native.TextTable.of(texts), first_text, first_text + 1,
            record_columns, np.asarray(table.addresses), self.addresses,
            self._first_slots[:len(self.addresses)], self._frame_counts[:len(self.addresses)])

    def _native_join(self, heads: list[str], pieces: np.ndarray) -> str | None:
        """joined's join in C (None if the library refuses it)."""
        assert self._native is not None
        if len(self._line_bytes) != self._encoded_size:  # lines were added
            self._line_bytes = b"".join(self._encoded)
        all_heads = "".join(heads)
        head_bytes = all_heads.encode()
        if len(head_bytes) == len(all_heads):  # ASCII: a character is a byte
            lengths = np.fromiter(map(len, heads), dtype=np.int64, count=len(heads))
        else:
            lengths = np.array([len(h.encode()) for h in heads], dtype=np.int64)
        out = native.gather(
            self._native, np.frombuffer(self._line_bytes or b"\0", dtype=np.uint8),
            self._line_starts, self._line_lengths,
            np.frombuffer(head_bytes or b"\0", dtype=np.uint8), _starts(lengths), lengths,
            pieces)
        return None if out is None else str(out.data, "utf-8")

    def _add_encoded(self, key: int, line: str) -> None:
        """Line `key`'s bytes for _native_join, after those of the lines made before."""
        if self._native is None:
            return
        encoded = line.encode()
        self._line_starts[key] = self._encoded_size
        self._line_lengths[key] = len(encoded)
        self._encoded.append(encoded)
        self._encoded_size += len(encoded)

    def _make_lines(self, keys: np.ndarray) -> None:
        per_width = self._numbers * len(self._slot_texts)
        for key in keys.tolist():
            width, rest = divmod(key, per_width)
            number, slot = divmod(rest, len(self._slot_texts))
            line = self._strings[key] = f"\n    #{number:<{width + 1}}  {self._slot_texts[slot]}"
            self._add_encoded(key, line)
        self._made[keys] = True


def _starts(counts: np.ndarray) -> np.ndarray:
    """Where each of consecutive runs of `counts` items starts."""
    return np.cumsum(counts) - counts
