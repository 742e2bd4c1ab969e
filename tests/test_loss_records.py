"""Capture -> loss records, on captures written with the test writer (exact contents): grouping
by (leak kind, API, backtrace), indirect bytes from LEAK_GROUPS, valgrind's numbering, the
LEAK SUMMARY (own bytes only), heuristics, memory mappings apart, and the text and JSON
renderings of all that. A version 1 capture keeps the report it always had."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from memcheck_text import parse_leak_summary

from leaktrace.analyze.build_report import build_report
from leaktrace.capture import format as fmt
from leaktrace.capture.reader import BlockRow, LeakGroupRow, ScanStats, parse_capture, read_capture
from leaktrace.capture.writer import encode_capture, make_header, stack_from_blocks
from leaktrace.leak_kinds import DEFAULT_SHOWN
from leaktrace.model import Report
from leaktrace.render.json_report import render_json
from leaktrace.render.options import RenderOptions
from leaktrace.render.text import render_text

DATA = Path(__file__).parent / "data"
DEFINITE, INDIRECT = "definitely lost", "indirectly lost"
POSSIBLE, REACHABLE = "possibly lost", "still reachable"


@pytest.fixture(scope="module")
def sample() -> Report:
    return build_report(read_capture(DATA / "capture-v2.lt"))


def test_records_by_leak_kind_api_and_backtrace(sample: Report) -> None:
    shapes = [(r.loss_record, r.leak_kind, r.kind, r.blocks, r.direct_bytes, r.indirect_bytes,
               r.bytes) for r in sample.records]
    # Largest first, numbered by total bytes (own + indirect) from the smallest.
    assert shapes == [
        (5, POSSIBLE, "calloc", 1, 100, 0, 100),
        (4, REACHABLE, "calloc", 2, 81, 0, 81),
        (3, DEFINITE, "malloc", 2, 32, 32, 64),  # one of the two owns 32 bytes in 2 blocks
        (2, INDIRECT, "malloc", 2, 32, 0, 32),
        (1, DEFINITE, "malloc", 1, 8, 0, 8),  # no backtrace
    ]
    # The possibly lost and still reachable records share their backtrace and stack id.
    assert sample.records[0].stack_id == sample.records[1].stack_id


def test_leak_summary_counts_own_bytes_once(sample: Report) -> None:
    leaks = sample.summary.leaks
    assert leaks is not None
    assert {k: (leaks.of(k).bytes, leaks.of(k).blocks)
            for k in (DEFINITE, INDIRECT, POSSIBLE, REACHABLE)} == {
        DEFINITE: (40, 3), INDIRECT: (32, 2), POSSIBLE: (100, 1), REACHABLE: (81, 2)}
    assert {h: (t.bytes, t.blocks) for h, t in leaks.reachable_via_heuristic.items()} == {
        "stdstring": (57, 1)}
    assert (sample.summary.suppressed.blocks, sample.summary.suppressed.bytes) == (0, 0)
    # Every live byte, heap and mappings, is still in the totals by API.
    assert (sample.summary.live_blocks, sample.summary.live_bytes) == (10, 69885)


def test_mappings_are_not_loss_records(sample: Report) -> None:
    assert [(r.kind, r.bytes, r.leak_kind, r.loss_record) for r in sample.mapped_regions] == [
        ("mmap", 65536, None, None), ("brk", 4096, None, None)]
    assert (sample.summary.mapped.blocks, sample.summary.mapped.bytes) == (2, 69632)
    assert sample.scan is not None and sample.scan.threads_stopped == 1


def test_equal_totals_number_as_valgrind_does() -> None:
    """Same total bytes: valgrind's Reachedness order, still reachable first (lowest number),
    then possibly, indirectly, definitely lost; then fewer blocks first."""
    blocks = [BlockRow(0x1000 + 0x100 * i, 48, 1 + i % 4, 1, 0, kind)
              for i, kind in enumerate([fmt.LEAK_DEFINITELY_LOST, fmt.LEAK_POSSIBLY_LOST,
                                        fmt.LEAK_STILL_REACHABLE, fmt.LEAK_INDIRECTLY_LOST])]
    blocks += [BlockRow(0x2000, 24, 5, 1, 0, fmt.LEAK_STILL_REACHABLE),
               BlockRow(0x2100, 24, 5, 1, 0, fmt.LEAK_STILL_REACHABLE)]
    stacks = [stack_from_blocks(i, [0x400000 + i], blocks) for i in range(1, 6)]
    report = build_report(parse_capture(encode_capture(
        make_header(), stacks=stacks, blocks=blocks, scan=ScanStats(0, 0, 0, 0, 0, 0))))
    assert [(r.loss_record, r.leak_kind, r.blocks) for r in report.records] == [
        (5, DEFINITE, 1), (4, INDIRECT, 1), (3, POSSIBLE, 1), (2, REACHABLE, 2),
        (1, REACHABLE, 1)]


def test_indirect_bytes_come_only_from_definitely_lost_owners() -> None:
    blocks = [BlockRow(0x1000, 16, 1, 1, 0, fmt.LEAK_DEFINITELY_LOST),
              BlockRow(0x2000, 16, 1, 1, 0, fmt.LEAK_DEFINITELY_LOST),
              BlockRow(0x3000, 100, 2, 1, 0, fmt.LEAK_INDIRECTLY_LOST),
              BlockRow(0x4000, 16, 3, 1, 0, fmt.LEAK_STILL_REACHABLE)]
    groups = [LeakGroupRow(0x2000, 100, 1),
              LeakGroupRow(0x4000, 999, 9)]  # not definitely lost: ignored
    stacks = [stack_from_blocks(i, [0x400000 + i], blocks) for i in (1, 2, 3)]
    report = build_report(parse_capture(encode_capture(
        make_header(), stacks=stacks, blocks=blocks, scan=ScanStats(0, 0, 0, 0, 0, 0),
        leak_groups=groups)))
    assert {(r.leak_kind, r.direct_bytes, r.indirect_bytes) for r in report.records} == {
        (DEFINITE, 32, 100), (INDIRECT, 100, 0), (REACHABLE, 16, 0)}


def test_version_1_capture_reports_as_before() -> None:
    report = build_report(read_capture(DATA / "capture-v1.lt"))
    assert report.summary.leaks is None and report.scan is None and not report.scanned
    assert report.mapped_regions == []
    assert [(r.kind, r.bytes, r.leak_kind, r.loss_record) for r in report.records][:2] == [
        ("mmap", 65536, None, None), ("malloc", 8192, None, None)]
    text = render_text(report, RenderOptions(leak_kinds=DEFAULT_SHOWN))
    assert "LEAK SUMMARY" not in text and "loss record" not in text
    assert "[1/5] 64.0 KiB (65,536 bytes) in 1 block from mmap" in text
    data = json.loads(render_json(report, RenderOptions()))
    assert data["summary"]["definitely_lost"] is None and data["mapped_regions"] == []


def test_text_of_a_scanned_capture(sample: Report) -> None:
    text = render_text(sample, RenderOptions(leak_kinds=DEFAULT_SHOWN))
    assert "100 bytes in 1 blocks are possibly lost in loss record 5 of 5" in text
    assert ("64 (32 direct, 32 indirect) bytes in 2 blocks are definitely lost in loss record "
            "3 of 5") in text
    assert "8 bytes in 1 blocks are definitely lost in loss record 1 of 5" in text
    assert "still reachable in loss record" not in text
    assert "(3 of 5 shown; --show definite,possible)" in text
    assert "== Memory mappings never unmapped (2 of 2 shown;" in text
    summary = parse_leak_summary(text)
    assert summary.kinds == {DEFINITE: (40, 3), INDIRECT: (32, 2), POSSIBLE: (100, 1),
                             REACHABLE: (81, 2)}
    assert summary.heuristics == {"stdstring": (57, 1)}
    assert "                        stdstring          : 57 bytes in 1 blocks" in text
    assert "To see them, rerun with: --show all" in text
    # Leaked bytes per frame count the kinds shown, own bytes only.
    every = render_text(sample, RenderOptions())
    assert every.count(" in loss record ") == 5 and "rerun with" not in every


def test_json_of_a_scanned_capture(sample: Report) -> None:
    data = json.loads(render_json(sample, RenderOptions(leak_kinds=DEFAULT_SHOWN)))
    s = data["summary"]
    assert (s["definitely_lost"], s["indirectly_lost"], s["possibly_lost"],
            s["still_reachable"]) == ({"bytes": 40, "blocks": 3}, {"bytes": 32, "blocks": 2},
                                      {"bytes": 100, "blocks": 1}, {"bytes": 81, "blocks": 2})
    assert s["reachable_via_heuristic"] == {"stdstring": {"bytes": 57, "blocks": 1}}
    assert s["mapped"] == {"bytes": 69632, "blocks": 2}
    assert set(data["scan"]) == {"seconds", "bytes_scanned", "root_bytes", "threads_stopped",
                                 "threads_not_stopped", "heuristics"}
    assert data["leak_kinds_shown"] == [DEFINITE, POSSIBLE]
    assert data["records_total"] == 5
    assert [(r["loss_record"], r["leak_kind"], r["bytes"], r["direct_bytes"],
             r["indirect_bytes"]) for r in data["records"]] == [
        (5, POSSIBLE, 100, 100, 0), (3, DEFINITE, 64, 32, 32), (1, DEFINITE, 8, 8, 0)]
    assert [r["kind"] for r in data["mapped_regions"]] == ["mmap", "brk"]
    assert data["mapped_regions"][0]["leak_kind"] is None
    # Leaked bytes per frame: the kinds shown, own bytes (the 32 indirect bytes count once,
    # in the indirectly lost record, which is not shown).
    assert sum(t["bytes"] for t in data["frame_totals"]
               if t["function"].startswith("leaky+0x140f")) == 100
