"""The report helper library (report_native/, report_native.py): its BLAKE2b against Python's
hashlib, and a real program's report (10,000 backtraces, one leak each: past the size where
the library is used) made with the library and without it, which must be the same: the same
stable ids, the same text in every option set, and the same text as records as objects give.
The Python paths are the reference: they are what every report was made of before."""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest
from leakharness import LEAKTRACE, PROGRAMS, compile_program

from leaktrace import report_native as native
from leaktrace.analyze.build_report import round_micro
from leaktrace.analyze.record_columns import columns_of
from leaktrace.analyze.stack_ids import stable_stack_id
from leaktrace.capture.cursor import Cursor
from leaktrace.capture.errors import CaptureError
from leaktrace.capture.stack import Stack
from leaktrace.capture.stack_table import StackTable, parse_stacks
from leaktrace.capture.writer import encode_stacks
from leaktrace.commands._capture_report import load_capture_report
from leaktrace.model import Report
from leaktrace.render.options import RenderOptions
from leaktrace.render.text import render_text
from leaktrace.suppressions import load_suppressions, parse_suppressions
from leaktrace.suppressions.apply import apply_suppressions


def _library() -> ctypes.CDLL:
    lib = native.library()
    assert lib is not None, "pip install . builds libleaktrace_report.so next to the package"
    return lib


def test_blake2b_is_hashlibs() -> None:
    lib = _library()
    rng = random.Random(10)
    # Every length around the 128-byte blocks, then longer random ones.
    lengths = list(range(0, 600)) + [rng.randrange(600, 20000) for _ in range(300)]
    for length in lengths:
        data = rng.randbytes(length)
        expected = int.from_bytes(hashlib.blake2b(data, digest_size=4).digest(), "big")
        assert lib.lt_blake2b_4(data, length) == expected, length
    assert lib.lt_blake2b_4(b"malloc|", 7) == int(hashlib.blake2b(
        b"malloc|", digest_size=4).hexdigest(), 16)


def test_stable_ids_of_made_up_stacks() -> None:
    lib = _library()
    rng = random.Random(4)
    addresses = sorted(rng.sample(range(1 << 40, 1 << 41), 300))
    parts = {a: f"lib{a % 7}.so+{a & 0xFFFFF:x}".encode() for a in addresses}
    depths = [rng.randrange(0, 40) for _ in range(500)]
    words = [rng.choice(addresses) for _ in range(sum(depths) + 10)]
    starts = np.cumsum([0, *depths[:-1]]) + 5
    kinds = [rng.randrange(3) for _ in depths]
    names = ["malloc", "calloc", "new[]"]
    ids = native.stable_ids(lib, [f"{n}|".encode() for n in names], parts,
                            np.array(words, dtype=np.uint64), np.array(kinds),
                            starts, np.array(depths))
    assert ids is not None
    for i, (kind, start, depth) in enumerate(zip(kinds, starts.tolist(), depths, strict=True)):
        stack = words[start:start + depth]
        frames = [(parts[a].decode().split("+")[0], int(parts[a].decode().split("+")[1], 16))
                  for a in stack]
        assert f"{ids[i]:08x}" == stable_stack_id(names[kind], frames)
    # An address without a part: no ids (the caller's Python path says what is wrong).
    assert native.stable_ids(lib, [b"malloc|"], {}, np.array(words[:5], dtype=np.uint64),
                             np.array([0]), np.array([0]), np.array([3])) is None


def test_gather_refuses_pieces_out_of_range() -> None:
    lib = _library()
    lines = np.frombuffer(b"abcdef", dtype=np.uint8)
    heads = np.frombuffer(b"XY", dtype=np.uint8)
    line_starts, line_lengths = np.array([0, 2]), np.array([2, 4])
    head_starts, head_lengths = np.array([0, 1]), np.array([1, 1])
    out = native.gather(lib, lines, line_starts, line_lengths, heads, head_starts,
                        head_lengths, np.array([2, 0, 1, 3, 0]))
    assert out is not None and out.tobytes() == b"XabcdefYab"
    assert native.gather(lib, lines, line_starts, line_lengths, heads, head_starts,
                         head_lengths, np.array([0, 4])) is None
    assert native.gather(lib, lines, line_starts, line_lengths, heads, head_starts,
                         head_lengths, np.array([-1])) is None


def test_small_reports_do_not_load_it() -> None:
    assert native.usable(native.MIN_RECORDS - 1) is None
    assert native.usable(native.MIN_RECORDS) is not None


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("native")
    exe = compile_program("many_stacks.c", work, opt="-O0")
    path = work / "many.lt"
    done = subprocess.run([*LEAKTRACE, "run", "-o", str(path), "--report-file", os.devnull,
                           "--", str(exe)], capture_output=True, text=True, timeout=300)
    assert path.exists(), done.stderr
    return path


def _report(capture: Path, monkeypatch: pytest.MonkeyPatch, with_library: bool) -> Report:
    with monkeypatch.context() as patch:
        if not with_library:
            patch.setattr(native, "usable", lambda records: None)
        return load_capture_report(str(capture), with_addresses=True).report


OPTIONS = [
    RenderOptions(),
    RenderOptions(leak_kinds=frozenset({"definitely lost", "possibly lost"})),
    RenderOptions(top=50, min_bytes=10),
    RenderOptions(leak_kinds=None),
]


def _text(report: Report, options: RenderOptions, monkeypatch: pytest.MonkeyPatch,
          with_library: bool) -> str:
    with monkeypatch.context() as patch:
        if not with_library:
            patch.setattr(native, "usable", lambda records: None)
        return render_text(report, options)


def test_report_is_the_same_with_and_without_it(capture: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    made = _report(capture, monkeypatch, with_library=True)
    python = _report(capture, monkeypatch, with_library=False)
    made_columns, python_columns = columns_of(made.records), columns_of(python.records)
    assert made_columns is not None and python_columns is not None
    assert len(made_columns) == 10000
    assert np.array_equal(made_columns.ids, python_columns.ids)
    # Frame totals: lt_frame_totals' one pass against the matrix of function numbers.
    assert made.frame_totals and made.frame_totals == python.frame_totals
    python.build_seconds = made.build_seconds
    for options in OPTIONS:
        text = _text(made, options, monkeypatch, with_library=True)
        assert text == _text(python, options, monkeypatch, with_library=False)
    # A real report of the program: 10,000 one-block leaks, 17 frames or more each.
    assert text.count(" bytes in 1 blocks are definitely lost in loss record ") == 10000
    assert "many_stacks.c:" in text and "\n    #16 " in text
    # Records as objects (the reference renderer) give the same text.
    objects = _report(capture, monkeypatch, with_library=True)
    objects.records = list(objects.records)
    objects.build_seconds = made.build_seconds
    assert render_text(objects, RenderOptions()) == _text(made, RenderOptions(), monkeypatch,
                                                          with_library=True)


def test_ids_match_the_reference_function(capture: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    report = _report(capture, monkeypatch, with_library=True)
    records = list(report.records)[:300]
    modules = {m.path: m for m in report.modules}
    for record in records:
        frames = [(os.path.basename(f.module), f.address - modules[f.module].load_bias)
                  for f in record.frames if f.module]
        assert len(frames) == len(record.frames)
        assert record.stack_id == stable_stack_id(record.kind, frames)


def test_suppressed_reports_are_the_same(capture: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = parse_suppressions("{\n   one-side\n   Memcheck:Leak\n   fun:malloc\n"
                                 "   fun:step_a\n}\n", "t.supp") + load_suppressions(())
    texts = []
    for with_library in (True, False):
        report = _report(capture, monkeypatch, with_library)
        apply_suppressions(report, entries)
        report.build_seconds = 0.0
        texts.append(_text(report, RenderOptions(), monkeypatch, with_library))
    assert texts[0] == texts[1]
    assert "one-side" in texts[0]
    assert (PROGRAMS / "many_stacks.c").exists()


def test_suppression_candidates_are_the_same(capture: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Which records a suppression entry could match: lt_stack_masks' ORs of each stack's
    address masks against numpy's matrix of them."""
    from leaktrace.suppressions.apply_columns import _candidates
    from leaktrace.suppressions.matcher import SuppressionMatcher

    report = _report(capture, monkeypatch, with_library=True)
    columns = columns_of(report.records)
    assert columns is not None
    frames_of = columns.frames.frames_by_address()
    # Every stack of the program goes through step_a and step_b, none through nowhere.
    for text, expected in (("   fun:malloc\n   fun:step_a\n", True),
                           ("   fun:malloc\n   fun:step_b\n   fun:*\n", True),
                           ("   fun:malloc\n   fun:nowhere\n", False),
                           ("   fun:malloc\n   fun:step_*\n   fun:nowhere\n", False)):
        entries = parse_suppressions(f"{{\n   one\n   Memcheck:Leak\n{text}}}\n", "t.supp")
        matcher = SuppressionMatcher(entries)
        made = _candidates(columns, matcher, frames_of)
        with monkeypatch.context() as patch:
            patch.setattr(native, "usable", lambda records: None)
            python = _candidates(columns, matcher, frames_of)
        assert np.array_equal(made, python)
        assert made.all() if expected else not made.any()


def _stacks_payload(depths: list[int]) -> bytes:
    stacks = [Stack(i + 1, 1, 16, 0, 0, 1, 16, tuple(range(0x1000 + i, 0x1000 + i + d)))
              for i, d in enumerate(depths)]
    return encode_stacks(stacks)[16:]  # the section's content, after its header


def _parse(payload: bytes, monkeypatch: pytest.MonkeyPatch, with_library: bool) -> StackTable:
    with monkeypatch.context() as patch:
        if not with_library:
            patch.setattr(native, "usable", lambda records: None)
        return parse_stacks(Cursor(memoryview(payload), "t.lt: STACKS section"))


def test_stack_entries_walk_as_python_does(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    depths = [rng.randrange(0, 70) for _ in range(native.MIN_RECORDS + 500)]
    payload = _stacks_payload(depths)
    made = _parse(payload, monkeypatch, with_library=True)
    python = _parse(payload, monkeypatch, with_library=False)
    assert made.depths.tolist() == python.depths.tolist() == depths
    assert made.starts.tolist() == python.starts.tolist()
    assert made[2000].return_addresses == tuple(range(0x1000 + 1999, 0x1000 + 1999
                                                      + depths[1999]))
    # The last entry claims more addresses than the section holds: the same one-line error.
    cut = payload[:-8]
    errors = []
    for with_library in (True, False):
        with pytest.raises(CaptureError) as raised:
            _parse(cut, monkeypatch, with_library)
        errors.append(str(raised.value))
    assert errors[0] == errors[1]
    assert f"stack {len(depths)} has depth {depths[-1]}, more than the section holds" in \
        errors[0]


@pytest.fixture(scope="module", params=["plain", "series"])
def series_capture(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                   ) -> Path:
    """many_stacks.c's capture, and one with snapshots (growth verdicts in the heads)."""
    work = tmp_path_factory.mktemp("native-series")
    series = request.param == "series"
    exe = compile_program("many_stacks.c", work, opt="-O2",
                          extra=["-DPAUSE_US=5000"] if series else None)
    path = work / f"many-{request.param}.lt"
    extra = ["--interval", "0.01"] if series else []
    done = subprocess.run([*LEAKTRACE, "run", "-o", str(path), *extra, "--report-file",
                           os.devnull, "--", str(exe)], capture_output=True, text=True,
                          timeout=300)
    assert path.exists(), done.stderr
    return path


def test_loss_records_in_c_are_the_objects_text(series_capture: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The loss records written in C against records as objects (render/text.py, the
    reference), in every option set that reaches it, and against the Python heads."""
    made = _report(series_capture, monkeypatch, with_library=True)
    objects = _report(series_capture, monkeypatch, with_library=True)
    objects.records = list(objects.records)
    objects.build_seconds = made.build_seconds
    options = [RenderOptions(), RenderOptions(leak_kinds=None, top=700, min_bytes=1),
               RenderOptions(leak_kinds=frozenset({"still reachable"}))]
    for option in options:
        text = _text(made, option, monkeypatch, with_library=True)
        assert text == render_text(objects, option)
        assert text == _text(made, option, monkeypatch, with_library=False)
    default = _text(made, RenderOptions(), monkeypatch, with_library=True)
    assert "in loss record 10,000 of 10,000\n      malloc, stack " in default
    if series_capture.name == "many-series.lt":
        assert "/s over the run (" in default


def test_loss_records_of_a_small_program_in_c(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """test_record_columns.py's program (three APIs, every leak kind, one- and two-digit
    frame numbers), its few records written by the library as a big report's would be."""
    from test_record_columns import OPTIONS as COLUMN_OPTIONS
    from test_record_columns import _capture as columns_capture

    monkeypatch.setattr(native, "MIN_RECORDS", 1)
    for scan in (True, False):
        capture = columns_capture(tmp_path, f"small-{scan}.lt", scan)
        made = load_capture_report(str(capture)).report
        objects = load_capture_report(str(capture)).report
        objects.records = list(objects.records)
        objects.build_seconds = made.build_seconds
        for option in COLUMN_OPTIONS:
            assert render_text(made, option) == render_text(objects, option)


def test_ages_rounded_as_python_rounds() -> None:
    """build_report.round_micro (numpy) against round(value, 6), near and on ties too."""
    rng = random.Random(5)
    values = [0.0, -0.0, math.nan, math.inf, 1e300, 5e-7, 1.5e-6, 2.5e-6, 2.0 ** 60]
    for _ in range(60000):
        values.append(rng.choice([
            rng.uniform(0, 100),
            rng.randrange(10 ** 9) / 1e6 + rng.choice([0, 5e-7, -5e-7, 4.9999e-7]),
            rng.randrange(2 ** 40) / 2 ** rng.randrange(1, 30),  # binary fractions: exact ties
            rng.uniform(-1, 1) * 10 ** rng.randrange(-8, 16)]))
    made = round_micro(np.array(values)).tolist()
    for value, rounded in zip(values, made, strict=True):
        if math.isnan(value):
            assert math.isnan(rounded)
        else:
            assert (rounded, math.copysign(1, rounded)) == (round(value, 6), math.copysign(
                1, round(value, 6))), value


def test_distinct_rows_numbers_rows_in_the_order_first_met() -> None:
    lib = _library()
    rng = np.random.default_rng(3)
    rows = rng.integers(-3, 3, size=(5000, 3)) * np.array([1, 1 << 40, -(1 << 62)])
    numbers, firsts = native.distinct_rows(lib, rows)
    seen: dict[tuple[int, ...], int] = {}
    for i, row in enumerate(map(tuple, rows.tolist())):
        assert numbers[i] == seen.setdefault(row, len(seen))
    assert len(firsts) == len(seen) == len(np.unique(rows, axis=0))
    assert [tuple(rows[f].tolist()) for f in firsts] == list(seen)
    numbers, firsts = native.distinct_rows(lib, np.zeros((1, 1), dtype=np.int64))
    assert numbers.tolist() == [0] and firsts.tolist() == [0]


def test_ages_formatted_in_c_as_python_formats() -> None:
    """The library writes "%.3f" of each age by integer arithmetic: against format(age,
    ".3f") on ties (binary fractions), negatives, zeros and values up to 1e15."""
    lib = _library()
    rng = random.Random(12)
    ages = [0.0, -0.0, 0.0005, 0.0625, 0.1875, -0.0625, 2.5e-4, 999.9995, 1e15 - 1, 5e-324,
            -1e-9, 123456789.0125]
    for _ in range(20000):
        ages.append(rng.choice([
            rng.uniform(0, 1000),
            rng.randrange(1 << 40) / (1 << rng.randrange(1, 30)),  # exact ties among them
            rng.randrange(10 ** 9) / 1e6,  # ages as round_micro leaves them
            -rng.uniform(0, 1e14),
            rng.uniform(0, 1) * 10 ** rng.randrange(-12, 15)]))
    count = len(ages)
    empty = native.TextTable.of([""])
    columns = {"sentences": np.zeros(count), "numbers": np.zeros(count),
               "kinds": np.zeros(count), "allocated": np.full(count, -1),
               "growth": np.full(count, -1), "starts": np.zeros(count),
               "depths": np.zeros(count), "ids": np.zeros(count), "ages": np.array(ages)}
    writer = native.LossRecordWriter(lib, empty, empty, 0, 0, columns,
                                     np.zeros(1, dtype=np.uint64), np.zeros(0, dtype=np.uint64),
                                     np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    out = writer.write(0, count)
    assert out is not None
    written = [line.split("block ")[1].split(" ")[0] for line in str(out.data, "utf-8").split("\n")
               if "oldest live block" in line]
    assert written == [format(age, ".3f") for age in ages]
    # Past 1e15 the library leaves the batch to Python.
    columns["ages"] = np.array([1e15] * count)
    assert native.LossRecordWriter(lib, empty, empty, 0, 0, columns,
                                   np.zeros(1, dtype=np.uint64), np.zeros(0, dtype=np.uint64),
                                   np.zeros(0, dtype=np.int64),
                                   np.zeros(0, dtype=np.int64)).write(0, count) is None


def test_distinct_words_of_stacks_as_numpy_finds_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stacks' distinct return addresses (StackTable.distinct_addresses) by the library's
    hash set against numpy's sort: words between stacks left out, a zero word, and more
    distinct words than the first table holds."""
    rng = np.random.default_rng(8)
    for distinct_count in (50, 70000):
        depths = rng.integers(0, 30, size=native.MIN_RECORDS + 3000)
        gaps = rng.integers(0, 3, size=len(depths))
        starts = np.cumsum(gaps + np.concatenate(([0], depths[:-1])))
        words = rng.integers(1, 1 << 47, size=distinct_count, dtype=np.uint64)[
            rng.integers(0, distinct_count, size=int(starts[-1] + depths[-1]))]
        words[starts[depths > 0][:3]] = 0
        table = StackTable(np.arange(len(depths)), np.zeros((len(depths), 6), dtype=np.int64),
                           depths, words, starts)
        made = table.distinct_addresses()
        with monkeypatch.context() as patch:
            patch.setattr(native, "usable", lambda records: None)
            python = table.distinct_addresses()
        inside = np.concatenate([words[s:s + d] for s, d in zip(starts, depths, strict=True)])
        assert made.dtype == np.uint64 and made[0] == 0
        assert made.tolist() == python.tolist() == np.unique(inside).tolist()


def test_stable_ids_of_stacks_sharing_their_first_blocks() -> None:
    """lt_stable_ids starts a text from the hash state of the blocks it shares with the text
    before: neighbours sharing 0 to 40 innermost frames, texts around whole blocks, and stacks
    too long to keep (hashed as made), against stable_stack_id."""
    lib = _library()
    rng = random.Random(21)
    addresses = sorted(rng.sample(range(1 << 40, 1 << 41), 400))
    parts = {a: f"lib{a % 5}.so+{a & 0xFFFFFFF:x}".encode() for a in addresses}
    stacks: list[list[int]] = []
    for n in range(1500):
        if n % 300 == 299:  # past the 64 KB a text is kept in
            stacks.append([rng.choice(addresses) for _ in range(rng.randrange(4500, 6000))])
        elif stacks and rng.random() < 0.8:
            shared = stacks[-1][:rng.randrange(0, 41)]
            stacks.append(shared + [rng.choice(addresses) for _ in range(rng.randrange(0, 30))])
        else:
            stacks.append([rng.choice(addresses) for _ in range(rng.randrange(0, 60))])
    depths = np.array([len(s) for s in stacks])
    words = np.array([a for s in stacks for a in s], dtype=np.uint64)
    starts = np.cumsum(depths) - depths
    kinds = np.array([rng.randrange(2) for _ in stacks])
    names = ["malloc", "calloc"]
    ids = native.stable_ids(lib, [f"{n}|".encode() for n in names], parts, words, kinds,
                            starts, depths)
    assert ids is not None
    for i, stack in enumerate(stacks):
        frames = [(parts[a].decode().split("+")[0], int(parts[a].decode().split("+")[1], 16))
                  for a in stack]
        assert f"{ids[i]:08x}" == stable_stack_id(names[kinds[i]], frames), i
    # An address without a part deep in a stack too long to keep: no ids.
    long_stack = np.array([addresses[0]] * 6000 + [7], dtype=np.uint64)
    assert native.stable_ids(lib, [b"malloc|"], parts, long_stack, np.array([0]),
                             np.array([0]), np.array([6001])) is None
