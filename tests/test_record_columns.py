"""A capture's records as numpy columns (analyze/record_columns.py) against the same records
as objects: a real program's capture, made under the shim, rendered both ways must give the
same bytes (text, JSON), the same frame totals and the same suppressions. The object path is
the reference: it is what every report was made of before the columns."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from leakharness import LEAKTRACE
from native_programs import compile_source, marker_line

from leaktrace.analyze.column_frame_totals import column_frame_totals
from leaktrace.analyze.frame_totals import compute_frame_totals
from leaktrace.analyze.record_columns import ColumnRecords, columns_of
from leaktrace.commands._capture_report import load_capture_report
from leaktrace.model import LeakRecord, Report
from leaktrace.render.json_report import render_json
from leaktrace.render.options import RenderOptions
from leaktrace.render.text import render_text
from leaktrace.suppressions import load_suppressions, parse_suppressions
from leaktrace.suppressions.apply import apply_suppressions

# Leaks through 1 to 15 frames of recursion (frame numbers of one and two digits), from
# three APIs, definitely, indirectly and possibly lost and still reachable; two records of
# one backtrace (malloc and calloc from the same line cannot be: kinds differ by call).
SOURCE = r"""
#include <stdlib.h>
#include <unistd.h>
static void *volatile sink;
static void *keep[64];
struct node { struct node *next; char pad[24]; };
__attribute__((noinline)) static void *leak_at(int depth, size_t size, int api)
{
    if (depth > 0) {
        void *p = leak_at(depth - 1, size, api);
        sink = (void *)0; /* keeps the frame */
        return p;
    }
    if (api == 0) return malloc(size); /* leak-malloc */
    if (api == 1) return calloc(1, size); /* leak-calloc */
    return realloc(NULL, size); /* leak-realloc */
}
__attribute__((noinline)) static void chains(void)
{
    for (int i = 0; i < 3; i++) {
        struct node *a = malloc(sizeof *a); /* chain-head */
        a->next = malloc(sizeof *a); /* chain-tail */
        a->next->next = NULL;
        sink = a;
    }
    sink = NULL;
}
int main(void)
{
    for (int d = 0; d < 15; d++) {
#ifdef PAUSE_US /* spreads the leaks over several snapshot intervals */
        usleep(PAUSE_US);
#endif
        for (int api = 0; api < 3; api++)
            for (int k = 0; k <= d % 4; k++) sink = leak_at(d, 16 + 8 * d + api, api);
    }
    for (int i = 0; i < 8; i++) keep[i] = leak_at(i, 100 + i, 0);
    for (int i = 8; i < 12; i++) keep[i] = (char *)leak_at(i, 200, 1) + 8;
    chains();
    sink = NULL;
    return 0;
}
"""

SUPPRESSIONS = """\
{
   calloc-leaks
   Memcheck:Leak
   match-leak-kinds: definite
   fun:calloc
   fun:leak_at
}
{
   chain-tails
   Memcheck:Leak
   fun:malloc
   fun:chains
}
"""


def _capture(tmp: Path, name: str, scan: bool) -> Path:
    exe = compile_source(tmp, "columns.c", SOURCE, "-O0", "-fno-omit-frame-pointer")
    capture = tmp / name
    env = dict(os.environ, LEAKTRACE_SCAN="1" if scan else "0")
    done = subprocess.run([*LEAKTRACE, "run", "-o", str(capture), "--report-file",
                           os.devnull, "--", str(exe)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    assert capture.exists(), done.stderr
    return capture


@pytest.fixture(scope="module", params=[True, False], ids=["scanned", "unscanned"])
def capture(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _capture(tmp_path_factory.mktemp("columns"), "columns.lt", request.param)


def _reports(capture: Path) -> tuple[Report, Report]:
    """(the report as built: records as columns; the same report with records as objects)."""
    columns = load_capture_report(str(capture), with_addresses=True).report
    objects = load_capture_report(str(capture), with_addresses=True).report
    objects.records = list(objects.records)
    objects.build_seconds = columns.build_seconds
    assert columns_of(columns.records) is not None and columns_of(objects.records) is None
    return columns, objects


def _same_text(columns: Report, objects: Report, options: RenderOptions) -> str:
    made = render_text(columns, options)
    assert made == render_text(objects, options)
    assert columns_of(columns.records) is not None  # the text made no record object
    # JSON reads objects (made now, from the columns).
    assert render_json(columns, options) == render_json(objects, options)
    return made


OPTIONS = [
    RenderOptions(),
    RenderOptions(leak_kinds=frozenset({"definitely lost", "possibly lost"})),
    RenderOptions(leak_kinds=frozenset({"indirectly lost"}), show_addresses=True),
    RenderOptions(top=5, min_bytes=100),
    RenderOptions(gen_suppressions=True),
]


@pytest.mark.parametrize("options", OPTIONS, ids=["all", "default-kinds", "indirect-addresses",
                                                  "top-min", "gen-suppressions"])
def test_columns_render_as_the_objects_do(capture: Path, options: RenderOptions) -> None:
    columns, objects = _reports(capture)
    made = _same_text(columns, objects, options)
    # The text is a real report of the program: its records and their backtraces.
    marker = "leak-malloc" if options.leak_kinds is None or "definitely lost" in \
        options.leak_kinds else "chain-tail"
    assert f"columns.c:{marker_line(SOURCE, marker)}" in made


def test_record_numbers_and_frame_lines(capture: Path) -> None:
    columns, objects = _reports(capture)
    made = _same_text(columns, objects, RenderOptions())
    # 15 depths x 3 APIs leak from as many backtraces, 12 kept, the chains' heads and tails.
    assert len(columns.records) == len(objects.records) == 45 + 12 + 2
    assert "    #10  leak_at" in made and "    #0   leak_at" in made  # two-digit numbers
    for record, twin in zip(columns.records, objects.records, strict=True):
        assert record == twin


def test_frame_totals_are_the_objects_totals(capture: Path) -> None:
    columns, objects = _reports(capture)
    records = columns_of(columns.records)
    assert records is not None
    expected = compute_frame_totals(objects.records)
    assert column_frame_totals(records) == expected
    assert columns.frame_totals == expected
    leak_at = next(t for t in expected if t.function == "leak_at")
    assert leak_at.records == 45 + 12 and leak_at.blocks == sum(
        r.blocks for r in objects.records if any(f.function == "leak_at" for f in r.frames))


def test_suppressions_match_as_on_objects(capture: Path, tmp_path: Path) -> None:
    columns, objects = _reports(capture)
    suppressions = parse_suppressions(SUPPRESSIONS, "test.supp") + load_suppressions(())
    apply_suppressions(columns, suppressions)
    apply_suppressions(objects, suppressions)
    assert columns_of(columns.records) is not None
    assert columns.suppressions_used == objects.suppressions_used
    assert columns.summary == objects.summary
    assert columns.frame_totals == objects.frame_totals
    names = [r.suppressed_by for r in objects.records]
    if columns.scanned:
        assert names.count("calloc-leaks") == 15  # the kept ones are possibly lost
    assert names.count("chain-tails") == 2  # heads and tails, whatever their kind
    definite = RenderOptions(leak_kinds=frozenset({"definitely lost"}))
    assert render_text(columns, definite) == render_text(objects, definite)
    _same_text(columns, objects, RenderOptions())
    assert [r.suppressed_by for r in columns.records] == names


def test_growth_rates_in_columns_and_objects(tmp_path: Path) -> None:
    exe = compile_source(tmp_path, "columns.c", SOURCE, "-O0", "-fno-omit-frame-pointer",
                         "-DPAUSE_US=5000")
    capture = tmp_path / "series.lt"
    done = subprocess.run([*LEAKTRACE, "run", "-o", str(capture), "--interval", "0.01",
                           "--report-file", os.devnull, "--", str(exe)],
                          capture_output=True, text=True, timeout=120)
    assert capture.exists(), done.stderr
    columns, objects = _reports(capture)
    assert any(r.growth is not None for r in objects.records)
    _same_text(columns, objects, RenderOptions())


def test_records_are_made_once_and_changes_kept(capture: Path) -> None:
    report = load_capture_report(str(capture)).report
    records = report.records
    assert isinstance(records, ColumnRecords)
    first = records[0]
    assert records[0] is first and records[-1] is records[len(records) - 1]
    assert columns_of(records) is None  # an object is out: the objects are the truth now
    first.oldest_age_seconds = 123.0
    assert next(iter(records)) is first and first.oldest_age_seconds == 123.0
    assert records[1:3] == list(records)[1:3]
    with pytest.raises(IndexError):
        records[len(records)]
    assert records == list(records) and isinstance(records[0], LeakRecord)


def test_largest_first_and_loss_records_numbered(capture: Path) -> None:
    report = load_capture_report(str(capture)).report
    columns = columns_of(report.records)
    assert columns is not None
    objects = list(report.records)
    numbers = [r.loss_record for r in objects if r.loss_record is not None]
    if report.scanned:
        assert numbers == list(range(len(numbers), 0, -1))
        assert np.array_equal(columns.loss_records[:len(numbers)], numbers)
    else:
        assert numbers == []
        sizes = [r.bytes for r in objects]
        assert sizes == sorted(sizes, reverse=True)


def test_id_texts_of_far_apart_stacks_are_each_stacks_own() -> None:
    """Stacks far apart in the file are read one by one, near ones in one gather: the same
    texts either way, as frames_and_id_text gives them."""
    from leaktrace.analyze.stack_frames import StackFrames
    from leaktrace.capture.reader import BlockRow, parse_capture
    from leaktrace.capture.writer import encode_capture, make_header, stack_from_blocks
    from leaktrace.symbolize import Symbolizer

    count = 2000
    blocks = [BlockRow(0x1000 + 0x20 * i, 8, 1 + i, 1, 0) for i in range(count)]
    stacks = [stack_from_blocks(1 + i, [0x401000 + 16 * (i % 7), 0x402000 + i, 0x403000],
                                blocks) for i in range(count)]
    capture = parse_capture(encode_capture(make_header(), stacks=stacks, blocks=blocks))
    described = StackFrames(capture, range(1, count + 1), Symbolizer())
    ids = list(range(1, count + 1))
    rows = described.table.rows_of(np.array(ids)).tolist()
    expected = [described.frames_and_id_text(i)[1] for i in ids]  # type: ignore[index]
    assert list(described.id_texts_of_rows(rows)) == expected  # near: gathered
    far = [rows[0], rows[-1], -1, rows[count // 2]]
    assert list(described.id_texts_of_rows(far)) == [
        expected[0], expected[-1], b"", expected[count // 2]]
    assert expected[5] == b"?+401050|?+402005|?+403000"  # no module: ?+address
