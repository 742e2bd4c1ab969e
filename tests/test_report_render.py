"""Capture -> Report -> text/JSON, with captures whose stacks point into a real compiled
program (so symbolization is real), loaded at different addresses to imitate ASLR."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from native_programs import compile_source, marker_line, module_at, return_addresses_of_calls

from leaktrace.analyze.build_report import build_report
from leaktrace.analyze.module_map import ModuleMap
from leaktrace.capture.reader import BlockRow, Module, ProcessInfo, parse_capture
from leaktrace.capture.writer import encode_capture, make_header, stack_from_blocks
from leaktrace.model import Report
from leaktrace.render.json_report import render_json
from leaktrace.render.options import RenderOptions
from leaktrace.render.sizes import human_size, size_with_bytes
from leaktrace.render.text import render_text
from leaktrace.symbolize import Symbolizer

SOURCE = """\
#include <stdlib.h>
__attribute__((noinline)) void *small(int n) { return malloc(n); /* small-malloc */ }
__attribute__((noinline)) void *big(int n) { return calloc(n, 1000); /* big-calloc */ }
__attribute__((noinline)) void run(int n) {
    small(n); /* run-small */
    big(n); /* run-big */
}
int main(int argc, char **argv) { (void)argv; run(argc); /* main-run */ return 0; }
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_source(tmp_path_factory.mktemp("prog"), "leaky.c", SOURCE, "-O0")


def ra(program: Path, callee: str) -> int:
    [address] = return_addresses_of_calls(program, callee)
    return address


def capture_for(program: Path, bias: int) -> bytes:
    """Two call paths (run->small->malloc, run->big->calloc) at load bias `bias`."""
    path_small = [bias + ra(program, "malloc"), bias + ra(program, "small"),
                  bias + ra(program, "run")]
    path_big = [bias + ra(program, "calloc"), bias + ra(program, "big"),
                bias + ra(program, "run")]
    blocks = [BlockRow(0x10000 + 64 * i, 10, 1, 1, 1000 * i) for i in range(3)]
    blocks += [BlockRow(0x20000, 5000, 2, 2, 0), BlockRow(0x30000, 7, 0, 1, 0)]
    stacks = [stack_from_blocks(1, path_small, blocks, freed=(4, 40)),
              stack_from_blocks(2, path_big, blocks)]
    return encode_capture(
        make_header(321), process=ProcessInfo(1, str(program), [str(program), "x"], "/"),
        modules=[module_at(program, bias)], stacks=stacks, blocks=blocks,
        counters={"dropped_blocks": 0, "truncated_stacks": 0, "max_depth": 64})


@pytest.fixture(scope="module")
def report(program: Path) -> Report:
    return build_report(parse_capture(capture_for(program, 0x555555554000), "t.lt"),
                        Symbolizer())


def test_records_grouped_by_kind_and_stack_largest_first(report: Report) -> None:
    assert [(r.kind, r.blocks, r.bytes) for r in report.records] == [
        ("calloc", 1, 5000), ("malloc", 3, 30), ("malloc", 1, 7)]
    assert report.records[1].total_allocations == 7
    assert [len(r.addresses) for r in report.records] == [1, 3, 1]
    assert report.records[1].addresses[0].size == 10


def test_frames_are_symbolized_with_runtime_addresses(report: Report, program: Path) -> None:
    frames = report.records[1].frames
    assert [f.function for f in frames] == ["small", "run", "main"][: len(frames)]
    assert [f.line for f in frames] == [marker_line(SOURCE, "small-malloc"),
                                        marker_line(SOURCE, "run-small"),
                                        marker_line(SOURCE, "main-run")]
    assert frames[0].address == 0x555555554000 + ra(program, "malloc")
    assert frames[0].offset == ra(program, "malloc") - 1
    assert frames[0].module == str(program)


def test_stack_ids_are_short_and_survive_aslr(program: Path, report: Report) -> None:
    elsewhere = build_report(parse_capture(capture_for(program, 0x7F0000000000), "u.lt"))
    ids = [r.stack_id for r in report.records]
    assert ids == [r.stack_id for r in elsewhere.records]
    assert all(len(i) == 8 and int(i, 16) >= 0 for i in ids)
    assert len(set(ids)) == 3


def test_summary_and_per_frame_totals(report: Report) -> None:
    s = report.summary
    assert (s.live_blocks, s.live_bytes) == (5, 5037)
    assert {k: (t.blocks, t.bytes) for k, t in s.by_kind.items()} == {
        "calloc": (1, 5000), "malloc": (4, 37)}
    assert s.total_allocations == 8 and s.total_allocated_bytes == 5070
    totals = {t.function: t for t in report.frame_totals}
    # run() is responsible for both call paths even though it allocates nothing itself.
    assert (totals["run"].bytes, totals["run"].records) == (5030, 2)
    assert totals["small"].bytes == 30
    assert report.build_seconds is not None and report.build_seconds >= 0
    assert report.pid == 321 and report.counters["max_depth"] == 64


def test_module_map_prefers_loaded_modules() -> None:
    old = Module(0, 0x1000, 0x3000, True, b"", "/old.so")
    new = Module(0, 0x2000, 0x4000, False, b"", "/new.so")
    other = Module(0, 0x5000, 0x6000, True, b"", "/gone.so")
    modules = ModuleMap([new, other, old])
    assert modules.find(0x1500) is old
    assert modules.find(0x2500) is new
    assert modules.find(0x5500) is other  # unloaded still counts
    assert modules.find(0x4500) is None and modules.find(0x10) is None


def test_text_report_reads_like_valgrind(report: Report) -> None:
    text = render_text(report, RenderOptions())
    assert "still live at exit: 5 blocks, 4.9 KiB (5,037 bytes)" in text
    assert "report built in" in text
    assert "[1/3] 4.9 KiB (5,000 bytes) in 1 block from calloc, stack " in text
    assert f"#0  big  {report.records[0].frames[0].file}:" in text
    assert "[leaky]" in text
    assert "== Leaked bytes per frame" in text and "  run  [leaky]" in text
    assert "no backtrace" in text
    assert "Live blocks" not in text


def test_top_min_bytes_and_addresses(report: Report) -> None:
    text = render_text(report, RenderOptions(top=1))
    assert "(1 of 3 records; --top 1)" in text and "[2/3]" not in text
    text = render_text(report, RenderOptions(min_bytes=20))
    assert "[2/3]" in text and "[3/3]" not in text
    text = render_text(report, RenderOptions(show_addresses=True, top=1))
    assert "0x000000020000" in text and "0x000000010000" not in text


def test_json_keys_are_pinned(report: Report) -> None:
    data = json.loads(render_json(report, RenderOptions(show_addresses=True)))
    assert data["format_version"] == 2
    assert set(data) == {"format_version", "source", "program", "command", "pid",
                         "start_time", "end_time", "capture_path", "build_seconds", "summary",
                         "scan", "counters", "notes", "previous_capture", "leak_kinds_shown",
                         "records_total", "records", "mapped_regions", "suppressions_used",
                         "frame_totals", "sample_mean_bytes", "children", "fatal_signal",
                         "invalid_frees", "invalid_frees_unrecorded", "invalid_frees_suppressed",
                         "mismatched_frees"}
    assert data["sample_mean_bytes"] is None  # exact mode: nothing is an estimate
    assert data["fatal_signal"] is None  # the program was not ended by a signal
    assert data["children"] is None  # only `run --follow-children` has them
    assert set(data["summary"]) == {"live", "by_kind", "total_allocations",
                                    "total_allocated_bytes", "definitely_lost",
                                    "indirectly_lost", "possibly_lost", "still_reachable",
                                    "reachable_via_heuristic", "suppressed",
                                    "source_suppressed_errors", "since_baseline", "mapped"}
    assert data["summary"]["live"] == {"blocks": 5, "bytes": 5037}
    # No reachability scan in this capture: no leak kinds, nothing suppressed.
    assert data["summary"]["definitely_lost"] is None and data["scan"] is None
    assert data["summary"]["suppressed"] == {"bytes": 0, "blocks": 0}
    record = data["records"][0]
    assert set(record) == {"stack_id", "kind", "leak_kind", "loss_record", "bytes",
                           "direct_bytes", "indirect_bytes", "blocks", "total_allocations",
                           "total_allocated_bytes", "oldest_age_seconds", "since_previous",
                           "growth", "frames", "addresses"}
    assert (record["leak_kind"], record["direct_bytes"], record["loss_record"]) == (
        None, None, None)
    assert set(record["frames"][0]) == {"function", "file", "line", "module", "offset",
                                        "address", "inlined"}
    assert set(record["addresses"][0]) == {"address", "size", "age_seconds"}
    assert set(data["frame_totals"][0]) == {"function", "module", "file", "bytes", "blocks",
                                            "records"}
    assert (record["kind"], record["bytes"], record["frames"][0]["function"]) == (
        "calloc", 5000, "big")


def test_json_without_addresses_and_limits(report: Report) -> None:
    data = json.loads(render_json(report, RenderOptions(top=2)))
    assert "addresses" not in data["records"][0]
    assert len(data["records"]) == 2 and data["records_total"] == 3


def test_empty_report() -> None:
    report = build_report(parse_capture(encode_capture(make_header()), "e.lt"))
    assert "No leaks" in render_text(report, RenderOptions())
    assert json.loads(render_json(report, RenderOptions()))["records"] == []


@pytest.mark.parametrize(("n", "short", "full"), [
    (0, "0 B", "0 bytes"), (1, "1 B", "1 byte"), (1023, "1023 B", "1,023 bytes"),
    (1536, "1.5 KiB", "1.5 KiB (1,536 bytes)"), (5 * 2**30, "5.0 GiB", None)])
def test_sizes(n: int, short: str, full: str | None) -> None:
    assert human_size(n) == short
    if full:
        assert size_with_bytes(n) == full


def test_unknown_frees_stay_out_of_the_text_report(report: Report) -> None:
    """Frees of blocks allocated before recording started are normal: the JSON keeps the
    count (docs/json-report.md), the text report does not mention it."""
    counted = dataclasses.replace(report, counters={"unknown_frees": 7, "max_depth": 64})
    text = render_text(counted, RenderOptions())
    assert "shim counters: max_depth=64\n" in text and "unknown_frees" not in text
    assert json.loads(render_json(counted, RenderOptions()))["counters"]["unknown_frees"] == 7


def test_big_text_output_is_synced_and_dropped_as_written(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """write_output hands a regular file's text to the disk and out of the page cache every
    _SYNC_EVERY characters (the kernel's cost of new page cache pages): the same text, the
    ranges dropped one after the other from the start; a pipe or StringIO is written as is."""
    import io
    import itertools
    import os

    from leaktrace.render import formats

    monkeypatch.setattr(formats, "_SYNC_EVERY", 1000)
    dropped: list[tuple[int, int]] = []
    real_fadvise = os.posix_fadvise

    def fadvise(fd: int, offset: int, length: int, advice: int) -> None:
        dropped.append((offset, length))
        real_fadvise(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", fadvise)
    pieces = [f"line {i} é\n" * 30 for i in range(200)]
    path = tmp_path / "out.txt"
    formats.write_output(iter(pieces), str(path))
    assert path.read_text(encoding="utf-8") == "".join(pieces)
    assert len(dropped) >= 40 and dropped[0][0] == 0
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(dropped))
    assert dropped[-1][0] + dropped[-1][1] <= path.stat().st_size
    dropped.clear()
    buffer = io.StringIO()
    formats._write_pieces(buffer, pieces)
    assert buffer.getvalue() == "".join(pieces) and not dropped
