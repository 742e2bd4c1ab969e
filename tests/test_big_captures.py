"""Big captures: the shim's stack table cap (past it allocations are still recorded, as "no
backtrace", and counted), and the fast paths a million-record report takes giving exactly
what the plain ones give (the JSON writer, the growth rates, the STACKS arrays)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from leakharness import compile_program

from leaktrace.analyze.build_report import build_report
from leaktrace.analyze.growth import analyze_growth, growth_rates
from leaktrace.capture import format as fmt
from leaktrace.capture.reader import BlockRow, ScanStats, parse_capture, read_capture
from leaktrace.capture.stack_table import StackTable
from leaktrace.capture.writer import encode_capture, make_header, stack_from_blocks
from leaktrace.leak_kinds import DEFAULT_SHOWN
from leaktrace.model import Report
from leaktrace.render.json_report import render_json, report_to_json
from leaktrace.render.options import RenderOptions
from leaktrace.render.text import render_text
from leaktrace.shim_library import find_shim_library

DATA = Path(__file__).parent / "data"
STACK_TABLE_CAP = (1 << 20) - 1  # shim/stacks.c: MAX_STACKS ids, id 0 is "no backtrace"


def test_past_the_stack_cap_allocations_are_recorded_and_counted(build_dir: Path,
                                                                   tmp_path: Path) -> None:
    exe = compile_program("stack_cap.c", build_dir)
    capture = tmp_path / "cap.lt"
    leaves = STACK_TABLE_CAP + 50_000
    env = dict(os.environ, LD_PRELOAD=str(find_shim_library()), LEAKTRACE_OUTPUT=str(capture))
    done = subprocess.run([str(exe), str(leaves)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert (done.returncode, done.stdout) == (0, f"leaked {leaves}\n"), done.stderr
    loaded = read_capture(capture)
    # Every id in use, and the entry of id 0 (depth 0) for the blocks without a backtrace.
    assert len(loaded.stacks) == STACK_TABLE_CAP + 1
    no_backtrace = loaded.stacks[fmt.NO_STACK_ID]
    leaked = loaded.blocks[loaded.blocks["size"] == 13]
    assert len(leaked) == leaves  # every block recorded, with or without its backtrace
    without = int((leaked["stack_id"] == fmt.NO_STACK_ID).sum())
    # The program's leaves got every id the start-up's allocations left: the rest have none.
    assert leaves - STACK_TABLE_CAP <= without < leaves - STACK_TABLE_CAP + 1000
    assert loaded.counters["dropped_stacks"] >= no_backtrace.live_blocks >= without
    assert no_backtrace.return_addresses == ()
    # Each leaf with an id has its own backtrace through the 21 levels.
    assert np.all(loaded.stacks.depths[-1000:] >= 23)


def test_report_states_allocations_without_backtrace() -> None:
    """What a capture past the cap reports: the count in a note and the shim counters, the
    blocks in a record without a backtrace."""
    blocks = [BlockRow(0x1000 + 0x20 * i, 13, fmt.NO_STACK_ID, 1, 0, fmt.LEAK_DEFINITELY_LOST)
              for i in range(3)]
    blocks.append(BlockRow(0x9000, 13, 1, 1, 0, fmt.LEAK_DEFINITELY_LOST))
    capture = parse_capture(encode_capture(
        make_header(), stacks=[stack_from_blocks(1, [0x401000], blocks)], blocks=blocks,
        scan=ScanStats(0, 0, 0, 0, 0, 0), counters={"dropped_stacks": 5}))
    report = build_report(capture)
    text = render_text(report, RenderOptions(leak_kinds=DEFAULT_SHOWN))
    assert "note: 5 allocations have no backtrace (the stack table was full, or the shim had " \
           "no memory left for it)" in text
    assert "shim counters: dropped_stacks=5" in text
    assert ("39 bytes in 3 blocks are definitely lost in loss record 2 of 2\n"
            "      malloc, stack ") in text
    assert "    (no backtrace: the allocation could not be unwound, or the stack table was " \
           "full or out of memory)" in text
    document = json.loads(render_json(report, RenderOptions()))
    assert document["counters"]["dropped_stacks"] == 5
    assert [(r["blocks"], len(r["frames"])) for r in document["records"]] == [(3, 0), (1, 1)]


@pytest.mark.parametrize("options", [
    RenderOptions(),
    RenderOptions(leak_kinds=DEFAULT_SHOWN, top=2),
    RenderOptions(show_addresses=True, min_bytes=30),
    RenderOptions(gen_suppressions=True),
])
@pytest.mark.parametrize("sample", ["capture-v1.lt", "capture-v2.lt"])
def test_json_writer_gives_json_dumps_text(sample: str, options: RenderOptions) -> None:
    """The JSON report is written record by record with each frame encoded once; it must be
    the very text json.dumps(indent=2) makes of the same document."""
    report = build_report(read_capture(DATA / sample))
    assert report.records and any(r.frames for r in report.records)
    expected = json.dumps(report_to_json(report, options), indent=2) + "\n"
    assert render_json(report, options) == expected


@pytest.mark.parametrize("count", [999, 1000, 2001])
def test_json_writer_with_records_in_batches(count: int) -> None:
    blocks = [BlockRow(0x1000 + 0x20 * i, 1 + i, 1 + i, 1, 0) for i in range(count)]
    stacks = [stack_from_blocks(1 + i, [0x401000 + i, 0x402000], blocks) for i in range(count)]
    report = build_report(parse_capture(encode_capture(make_header(), stacks=stacks,
                                                       blocks=blocks)))
    assert len(report.records) == count
    options = RenderOptions()
    assert render_json(report, options) == json.dumps(report_to_json(report, options),
                                                      indent=2) + "\n"


def test_json_writer_escapes_and_non_finite_numbers_as_json_does() -> None:
    blocks = [BlockRow(0x1000, 8, 1, 1, 0)]
    report: Report = build_report(parse_capture(encode_capture(
        make_header(), stacks=[stack_from_blocks(1, [0x401000, 0x402000], blocks)],
        blocks=blocks)))
    frame = report.records[0].frames[0]
    frame.function, frame.file = "f\u00e9\"<\\n>\u2603", "d\tir/a\nb.c"
    report.records[0].oldest_age_seconds = float("nan")
    options = RenderOptions()
    expected = json.dumps(report_to_json(report, options), indent=2) + "\n"
    assert render_json(report, options) == expected


def test_growth_rates_are_the_analysis_numbers(tmp_path: Path) -> None:
    from test_growth import synthetic_capture

    capture = read_capture(synthetic_capture(tmp_path))
    analysis = analyze_growth(capture)
    assert {s.verdict for s in analysis.stacks} == {"growing", "plateaued", "stable"}
    assert growth_rates(capture) == {s.native_id: (s.bytes_per_second, s.verdict)
                                     for s in analysis.stacks}


def test_stack_table_reads_as_the_mapping_it_replaces() -> None:
    capture = read_capture(DATA / "capture-v2.lt")
    table = capture.stacks
    assert isinstance(table, StackTable)
    as_dict = {s: table[s] for s in table}
    assert list(as_dict) == table.ids.tolist() and len(as_dict) == len(table) > 2
    assert table == as_dict and StackTable.from_stacks(as_dict) is not table
    rebuilt = StackTable.from_stacks(as_dict)
    assert {s: rebuilt[s] for s in rebuilt} == as_dict
    assert 0 not in table and 1 << 40 not in table and "1" not in table
    with pytest.raises(KeyError):
        table[1 << 33]
    every = sorted({a for s in as_dict.values() for a in s.return_addresses})
    assert table.distinct_addresses().tolist() == every == rebuilt.distinct_addresses().tolist()


def test_many_loss_records_number_as_valgrind_does() -> None:
    """From 10,000 records on numpy sorts them: the same numbers as the key sort, ties
    (equal bytes, kinds, blocks) included."""
    from leaktrace.analyze.loss_records import number_loss_records, valgrind_order_key
    from leaktrace.leak_kinds import LEAK_KINDS
    from leaktrace.model import LeakRecord

    rng = np.random.default_rng(7)
    records = [LeakRecord(stack_id=f"{int(rng.integers(0, 40)):08x}",
                          kind=["malloc", "calloc", "realloc"][int(rng.integers(0, 3))],
                          bytes=int(rng.integers(0, 50)), blocks=int(rng.integers(1, 4)),
                          leak_kind=LEAK_KINDS[int(rng.integers(0, 4))])
               for _ in range(12_000)]
    expected = [id(r) for r in sorted(records, key=valgrind_order_key)][::-1]
    numbered = number_loss_records(records)
    assert [id(r) for r in numbered] == expected
    assert [r.loss_record for r in numbered] == list(range(12_000, 0, -1))


@pytest.mark.parametrize("odd_id", ["0000000A", "1234567", "12 45678", "g0000000", "123456789"])
def test_many_loss_records_with_an_odd_stack_id_sort_as_strings(odd_id: str) -> None:
    """An id that is not 8 lowercase hex digits (other sources name stacks their own way)
    makes numpy's number order wrong: the key sort is used, and the numbers are its."""
    from leaktrace.analyze.loss_records import number_loss_records, valgrind_order_key
    from leaktrace.model import LeakRecord

    ids = [f"{i % 37:08x}" for i in range(11_999)] + [odd_id]
    records = [LeakRecord(stack_id=s, kind="malloc", bytes=16, blocks=1,
                          leak_kind="definitely lost") for s in ids]
    expected = [id(r) for r in sorted(records, key=valgrind_order_key)][::-1]
    assert [id(r) for r in number_loss_records(records)] == expected
