"""--format html in a real browser (headless Chromium): the numbers on the page are the JSON
report's, search highlights frames, clicking a frame zooms, the views switch, the table
filters, sorts and expands, the growth timeline appears for a capture with snapshots, and
10,000 stacks stay under 2 MB. A screenshot is kept under the test's tmp directory."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from browser import Element, dom, find, screenshot
from export_helpers import BIG_BYTES, build, capture, definitely_lost, name_bytes, small_bytes
from leakharness import compile_program, leaktrace

COUNT = 5


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("html")


@pytest.fixture(scope="module")
def leaks(work: Path) -> Path:
    return capture(build(work), COUNT, work)


@pytest.fixture(scope="module")
def page(leaks: Path, work: Path) -> Path:
    out = work / "leaks.html"
    done = leaktrace("report", str(leaks), "--format", "html", "-o", str(out))
    assert done.returncode == 0, done.stderr
    return out


def frames(elements: list[Element]) -> list[Element]:
    return find(elements, "div", "fr")


def width(frame: Element) -> float:
    match = re.search(r"width:([\d.]+)%", frame.attrs["style"])
    assert match, frame.attrs
    return float(match.group(1))


def test_page_is_self_contained(page: Path) -> None:
    text = page.read_text()
    assert not re.search(r"<(script|link|img|iframe)[^>]*\s(src|href)=", text)
    assert "@import" not in text and "url(" not in text and "fetch(" not in text
    assert "@font-face" not in text and "XMLHttpRequest" not in text
    # The one URL in the page is SVG's namespace name, an identifier nothing loads.
    assert set(re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"')]*", text)) == {
        "http://www.w3.org/2000/svg"}


def test_summary_numbers_are_the_json_reports(page: Path, leaks: Path, work: Path) -> None:
    report: dict[str, Any] = json.loads(leaktrace("report", str(leaks), "--format",
                                                  "json").stdout)
    elements = dom(page)
    rows = {r.attrs["data-kind"]: r for r in find(elements, "tr") if "data-kind" in r.attrs}
    for kind in ("definitely lost", "indirectly lost", "possibly lost", "still reachable",
                 "suppressed"):
        [bytes_cell] = find(elements, "td", "bytes")[list(rows).index(kind):][:1]
        [blocks_cell] = find(elements, "td", "blocks")[list(rows).index(kind):][:1]
        expected = report["summary"][kind.replace(" ", "_")]
        assert (int(bytes_cell.attrs["data-bytes"]), int(blocks_cell.attrs["data-blocks"])) \
            == (expected["bytes"], expected["blocks"]), kind
    assert "2,200 bytes" in rows["definitely lost"].text
    assert report["summary"]["definitely_lost"]["bytes"] == definitely_lost(COUNT)
    [all_frame] = find(elements, "div", "fr", data_name="all")
    assert int(all_frame.attrs["data-value"]) == definitely_lost(COUNT)  # leaked bytes view
    shot = screenshot(page, work / "leaks.png")
    print(f"screenshot: {shot}")


def test_search_highlights_the_matching_frames(page: Path) -> None:
    elements = dom(page, "#drive=search:leak_small")
    assert [f.attrs["data-name"] for f in frames(elements) if "match" in f.classes] == \
        ["leak_small"]
    [info] = find(elements, id="match-info")
    assert int(info.attrs["data-matched"]) == small_bytes(COUNT)
    elements = dom(page, "#drive=search:LEAK_")  # case-insensitive substring
    assert sorted(f.attrs["data-name"] for f in frames(elements) if "match" in f.classes) == \
        ["leak_big", "leak_small"]


def test_clicking_a_frame_zooms_to_it(page: Path) -> None:
    before = {f.attrs["data-name"]: f for f in frames(dom(page))}
    assert width(before["keep_names"]) < 10 and "leak_big" in before
    after = frames(dom(page, "#drive=click:keep_names"))
    by_name = {f.attrs["data-name"]: f for f in after}
    assert "zoomed" in by_name["keep_names"].classes
    assert width(by_name["keep_names"]) == 100
    assert width(by_name["copy_name"]) == 100 and "inl" in by_name["copy_name"].classes
    assert "leak_big" not in by_name and "leak_small" not in by_name  # outside the zoom
    assert "ancestor" in by_name["make_leaks"].classes  # the way back out
    assert int(by_name["keep_names"].attrs["data-value"]) == name_bytes(COUNT)
    # Clicking the greyed caller above zooms back out to it: its other callees return.
    out = {f.attrs["data-name"]: f for f in frames(dom(page,
                                                          "#drive=click:keep_names;click:below"))}
    assert "zoomed" in out["below"].classes and width(out["below"]) == 100
    assert {"leak_big", "leak_small", "keep_names"} <= set(out)
    assert width(out["keep_names"]) < 10


def test_views_switch_to_live_bytes_and_allocations(page: Path) -> None:
    def total(fragment: str) -> int:
        [root] = find(dom(page, fragment), "div", "fr", data_name="all")
        return int(root.attrs["data-value"])

    assert total("#drive=weight:live") == definitely_lost(COUNT) + 64  # + still reachable
    assert total("#drive=weight:allocCount") == COUNT + 2 + COUNT + 1
    assert total("#drive=weight:allocBytes") == definitely_lost(COUNT) + 64


def test_table_filters_sorts_and_expands(page: Path, leaks: Path) -> None:
    elements = dom(page, "#drive=filter:keep_names")
    [count] = find(elements, id="record-count")
    assert count.attrs["data-matching"] == "1"
    [row] = find(elements, "tr", "rec")
    assert "copy_name (inlined)" in row.text and f"{name_bytes(COUNT)}" in row.text
    rows = find(dom(page, "#drive=sort:bytes"), "tr", "rec")  # second click: ascending
    assert [int(r.attrs["data-bytes"]) for r in rows] == sorted(
        [BIG_BYTES // 2, BIG_BYTES // 2, small_bytes(COUNT), name_bytes(COUNT), 64])
    stack_id = row.attrs["data-stack"]
    [stack] = find(dom(page, f"#drive=expand:{stack_id}"), "tr", "stack")
    assert re.search(r"copy_name \(inlined\)\s+\S*export_leaks\.c:\d+.*keep_names", stack.text,
                     re.S)


def test_growth_timeline(work: Path) -> None:
    exe = compile_program("slow_growth.c", work)
    lt = work / "slow.lt"
    done = leaktrace("run", "-o", str(lt), "--interval", "0.05", "--", str(exe), cwd=work)
    assert lt.exists(), done.stderr
    out = work / "slow.html"
    assert leaktrace("report", str(lt), "--format", "html", "-o", str(out)).returncode == 0
    elements = dom(out)
    lines = find(elements, "polyline")
    assert "total" in lines[0].classes and len(lines) >= 3
    # Each line is a backtrace of `leaktrace growth` with its verdict (which verdict depends
    # on the snapshots' timing, so it is taken from growth's own answer, not assumed).
    growth = json.loads(leaktrace("growth", str(lt), "--format", "json").stdout)["stacks"]
    verdicts = {s["stack_id"]: s["verdict"] for s in growth}
    legend = [e.text for e in find(elements, "li") if "data-verdict" in e.attrs]
    assert len(legend) == min(8, len(growth)) == len(lines) - 1
    for text, line in zip(legend, lines[1:], strict=True):
        stack_id, verdict = text.split()[0], text.rsplit(" ", 1)[1]
        assert verdicts[stack_id] == verdict and verdict in line.classes
        assert line.attrs["stroke"] == {"growing": "#d62728", "plateaued": "#ff7f0e",
                                        "stable": "#2ca02c"}[verdict]
    assert any("leak_step" in t for t in legend) and any("fill_cache" in t for t in legend)
    total_points = lines[0].attrs["points"].split()
    assert len(total_points) >= 5  # the start, the snapshots, the capture
    screenshot(out, work / "slow.png", "1280,1600")


def test_ten_thousand_stacks_stay_under_two_megabytes(work: Path) -> None:
    exe = compile_program("many_stacks.c", work)
    lt = work / "many.lt"
    leaktrace("run", "-o", str(lt), "--", str(exe), cwd=work)
    out = work / "many.html"
    done = leaktrace("report", str(lt), "--format", "html", "--show", "all", "-o", str(out))
    assert done.returncode == 0, done.stderr
    records = json.loads(leaktrace("report", str(lt), "--format", "json", "--show",
                                   "all").stdout)["records"]
    assert len(records) >= 10_000
    assert out.stat().st_size < 2_000_000
    elements = dom(out)
    [count] = find(elements, id="record-count")
    assert int(count.attrs["data-matching"]) == len(records)
    assert len(find(elements, "tr", "rec")) == 200  # the rest behind "show all"


def test_no_timeline_without_snapshots(page: Path) -> None:
    assert not find(dom(page), id="timeline-section")


def test_run_writes_an_html_page_too(work: Path) -> None:
    exe = build(work)
    out = work / "run.html"
    done = leaktrace("run", "-o", str(work / "run.lt"), "--html", str(out), "--", str(exe), "1",
                     cwd=work)
    assert done.returncode == 0, done.stderr
    assert f"HTML report written to {out}" in done.stderr
    assert "definitely lost: " in done.stderr  # the text report still goes to stderr
    [root] = find(dom(out), "div", "fr", data_name="all")
    assert int(root.attrs["data-value"]) == definitely_lost(1)


def test_names_cannot_break_out_of_the_page(work: Path) -> None:
    """A frame name holding markup (C++ operators can: operator</, templates with <>) stays
    text: the page's script still runs and shows the name as written."""
    from leaktrace.model import Frame, LeakRecord, Report
    from leaktrace.render.html_report import render_html
    from leaktrace.render.options import RenderOptions

    name = "operator</script><img src=x onerror=alert(1)>"
    report = Report(source="leaktrace", program="/bin/x", records=[LeakRecord(
        stack_id="00000001", kind="malloc", bytes=8, blocks=1,
        frames=[Frame(address=0x1000, function=name, file="<a>.cc", line=1)])])
    page = work / "markup.html"
    page.write_text(render_html(report, RenderOptions()))
    elements = dom(page)
    assert [f.attrs["data-name"] for f in find(elements, "div", "fr")] == ["all", name]
    assert not find(elements, "img")


def test_inverted_and_without_start_up_frames(page: Path) -> None:
    top = [f for f in frames(dom(page, "#drive=hidestartup:1"))
           if "top:18px" in f.attrs["style"]]
    assert [f.attrs["data-name"] for f in top] == ["main"]  # _start & co. left out
    inverted = {f.attrs["data-name"]: f for f in frames(dom(page, "#drive=invert:1"))
                if "top:18px" in f.attrs["style"]}
    # Allocation sites first: the functions that called the allocator, by bytes.
    assert set(inverted) == {"leak_big", "leak_small", "copy_name"}
    assert int(inverted["leak_big"].attrs["data-value"]) == BIG_BYTES
    assert "inl" in inverted["copy_name"].classes


FILTERS_LIBRARY = r"""
#include <stdlib.h>
#include <string.h>
__attribute__((noinline)) char *lib_copy(void)
{
    return memset(malloc(40), 'l', 40);
}
"""

FILTERS_PROGRAM = r"""
#include <stdlib.h>
#include <string.h>
#include "scrub_stack.h"
char *lib_copy(void);
void *volatile sink;
void *volatile kept;
__attribute__((noinline)) static void big_block(void) { sink = memset(malloc(3000), 0, 3000); }
__attribute__((noinline)) static void make(void)
{
    sink = lib_copy();   /* 40 bytes definitely lost, allocated in libfilters.so */
    big_block();         /* 3000 bytes definitely lost */
    kept = memset(malloc(100), 'k', 100); /* still reachable */
    sink = NULL;
}
int main(void)
{
    below(make);
    scrub_stack();
    return 0;
}
"""


@pytest.fixture(scope="module")
def filters_page(work: Path) -> Path:
    """A program whose leaks differ by kind, module (one is allocated in a library), source
    file and size."""
    import subprocess

    from companion_helpers import compile_c

    source = work / "filters_lib.c"
    source.write_text(FILTERS_LIBRARY)
    library = work / "libfilters.so"
    subprocess.run(["gcc", "-g", "-O2", "-shared", "-fPIC", "-o", str(library), str(source)],
                   check=True, capture_output=True)
    exe = compile_c(work, FILTERS_PROGRAM, "filters", f"-I{Path(__file__).parent / 'programs'}",
                    "-Wl,--no-as-needed", str(library), f"-Wl,-rpath,{work}")
    lt = work / "filters.lt"
    done = leaktrace("run", "-o", str(lt), "--", str(exe), cwd=work)
    assert lt.exists(), done.stderr
    out = work / "filters.html"
    assert leaktrace("report", str(lt), "--format", "html", "-o", str(out)).returncode == 0
    return out


def test_table_filters_by_kind_module_file_and_minimum_bytes(filters_page: Path) -> None:
    def rows(fragment: str) -> list[int]:
        elements = dom(filters_page, fragment)
        [count] = find(elements, id="record-count")
        found = [int(r.attrs["data-bytes"]) for r in find(elements, "tr", "rec")]
        assert int(count.attrs["data-matching"]) == len(found)
        return found

    assert sorted(rows("")) == [40, 100, 3000]
    assert rows("#drive=kind:still%20reachable") == [100]
    assert sorted(rows("#drive=kind:definitely%20lost")) == [40, 3000]
    assert rows("#drive=filter:LIBFILTERS") == [40]  # the module's name (any case)
    assert rows("#drive=filter:filters_lib.c") == [40]  # the source file's name
    assert rows("#drive=filter:big_block") == [3000]  # a function
    assert rows("#drive=filter:no_such_thing") == []
    assert sorted(rows("#drive=min:100")) == [100, 3000]
    assert rows("#drive=min:101") == [3000]
    assert rows("#drive=kind:definitely%20lost;min:41") == [3000]  # filters combine
    assert rows("#drive=sort:function") == [3000, 40, 100]  # big_block, lib_copy, make


def test_capture_facts_are_the_json_reports(work: Path) -> None:
    """Program, command, pid, start and capture times, counters and notes; --max-depth
    cuts the backtraces, which gives the capture a note."""
    from datetime import datetime, timezone

    exe = build(work)
    lt = work / "facts.lt"
    done = leaktrace("run", "-o", str(lt), "--max-depth", "3", "--", str(exe), "2", cwd=work)
    assert lt.exists(), done.stderr
    report: dict[str, Any] = json.loads(leaktrace("report", str(lt), "--format",
                                                  "json").stdout)
    out = work / "facts.html"
    assert leaktrace("report", str(lt), "--format", "html", "-o", str(out)).returncode == 0
    elements = dom(out)
    assert find(elements, "dl", id="facts")
    terms = [e.text for e in find(elements, "dt")]
    values = [e.text for e in find(elements, "dd")]
    shown = dict(zip(terms, values, strict=True))

    def iso(seconds: float) -> str:
        return datetime.fromtimestamp(seconds, timezone.utc).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")

    assert shown["program"] == report["program"] == str(exe)
    assert shown["command"] == " ".join(report["command"]) == f"{exe} 2"
    assert shown["pid"] == str(report["pid"])
    assert shown["capture"] == str(lt)
    assert shown["started"] == iso(report["start_time"])
    assert shown["captured"].startswith(iso(report["end_time"]) + " (")
    assert shown["run time"] == f"{report['end_time'] - report['start_time']:.3f} s"
    for counter, value in report["counters"].items():
        assert shown[counter] == f"{value:,}", counter
    assert report["counters"]["truncated_stacks"] > 0 and report["notes"]
    notes = [e.text for e in find(elements, "li") if e.text in report["notes"]]
    assert notes == report["notes"]
    assert any("had their backtrace cut" in n for n in notes)


def test_a_killed_programs_page_says_how_it_ended(work: Path) -> None:
    """The page shows the signal that ended the program and the struck thread's backtrace,
    the lines of the text report's section."""
    exe = compile_program("crash.c", work, "-O2")
    lt = work / "killed.lt"
    done = leaktrace("run", "-o", str(lt), "--", str(exe), "segv", cwd=work)
    assert lt.exists(), done.stderr
    out = work / "killed.html"
    assert leaktrace("report", str(lt), "--format", "html", "-o", str(out)).returncode == 0
    (box,) = find(dom(out), "pre", id="fatal")
    text = leaktrace("report", str(lt)).stdout
    section = text[text.index("== The program was ended by"):].split("\n\n")[0]
    assert box.text.splitlines() == [section.splitlines()[0].strip("= "),
                                     *section.splitlines()[1:]]
    assert box.text.startswith("The program was ended by SIGSEGV (signal 11)\ncause:  address "
                               "not mapped, at address 0x10\n")
    assert re.search(r"#0 +main +\S*crash\.c:\d+", box.text), box.text


def test_valgrind_xml_and_mtrace_logs_make_pages_too(work: Path) -> None:
    """The page reads the one report model: valgrind's XML (its inlined frames marked) and a
    glibc mtrace log (no scan: live blocks) give the JSON report's numbers."""
    import os
    import subprocess

    from companion_helpers import compile_c
    from export_helpers import run_tool, tool
    from test_exports import MTRACE_PROGRAM

    exe = build(work)
    xml = work / "memcheck.xml"
    subprocess.run([tool("valgrind", "valgrind"), "--leak-check=full", "--xml=yes",
                    f"--xml-file={xml}", str(exe), "3"], capture_output=True, timeout=300,
                   check=True)
    page = work / "memcheck.html"
    assert leaktrace("report", str(xml), "--format", "html", "-o", str(page)).returncode == 0
    report = json.loads(leaktrace("report", str(xml), "--format", "json").stdout)
    elements = dom(page, "#drive=search:copy_name")
    [definite] = [r for r in find(elements, "tr") if r.attrs.get("data-kind") ==
                  "definitely lost"]
    assert definite.text.split(":")[1].split("in")[0].strip() == \
        f"{report['summary']['definitely_lost']['bytes']:,} bytes" == \
        f"{definitely_lost(3):,} bytes"
    [root] = find(elements, "div", "fr", data_name="all")
    assert int(root.attrs["data-value"]) == definitely_lost(3)
    [copy_name] = [f for f in frames(elements) if f.attrs["data-name"] == "copy_name"]
    assert {"inl", "match"} <= copy_name.classes
    assert int(copy_name.attrs["data-value"]) == name_bytes(3)

    mtrace_exe = compile_c(work, MTRACE_PROGRAM, "mtrace_page")
    log = work / "page-mtrace.log"
    ran = run_tool(str(mtrace_exe), env={**os.environ, "MALLOC_TRACE": str(log),
                                         "LD_PRELOAD": "libc_malloc_debug.so.0"})
    assert ran.returncode == 0 and log.exists(), ran.stderr
    mtrace_page = work / "mtrace.html"
    done = leaktrace("mtrace", str(mtrace_exe), str(log), "--format", "html", "-o",
                     str(mtrace_page))
    assert done.returncode == 0, done.stderr
    elements = dom(mtrace_page)
    [live] = [r for r in find(elements, "tr") if r.attrs.get("data-kind") == "live"]
    [live_bytes] = [c for c in find(elements, "td", "bytes") if c.text in live.text]
    assert int(live_bytes.attrs["data-bytes"]) == 220
    assert sorted(int(r.attrs["data-bytes"]) for r in find(elements, "tr", "rec")) == [100, 120]
    [root] = find(elements, "div", "fr", data_name="all")
    assert int(root.attrs["data-value"]) == 220


def test_run_html_has_the_growth_timeline(work: Path) -> None:
    """`run --html` draws the same page as `report --format html`: with --interval, the
    growth timeline too."""
    exe = compile_program("slow_growth.c", work)
    page = work / "run-slow.html"
    done = leaktrace("run", "-o", str(work / "run-slow.lt"), "--interval", "0.05", "--html",
                     str(page), "--", str(exe), cwd=work)
    assert done.returncode == 0, done.stderr
    elements = dom(page)
    lines = find(elements, "polyline")
    assert "total" in lines[0].classes and len(lines) >= 3
    legend = [e.text for e in find(elements, "li") if "data-verdict" in e.attrs]
    assert any("leak_step" in t for t in legend)


def test_growth_timeline_colours_each_verdict(work: Path) -> None:
    """A backtrace that always has one block live is stable (green) beside the growing and
    plateaued ones; every line's colour is its verdict's."""
    exe = compile_program("growth_verdicts.c", work)
    lt = work / "verdicts.lt"
    done = leaktrace("run", "-o", str(lt), "--interval", "0.05", "--", str(exe), cwd=work)
    assert lt.exists(), done.stderr
    out = work / "verdicts.html"
    assert leaktrace("report", str(lt), "--format", "html", "-o", str(out)).returncode == 0
    growth = json.loads(leaktrace("growth", str(lt), "--format", "json").stdout)["stacks"]
    verdicts = {s["stack_id"]: s["verdict"] for s in growth}
    elements = dom(out)
    lines = find(elements, "polyline")[1:]  # after the process total
    legend = [e.text for e in find(elements, "li") if "data-verdict" in e.attrs]
    colours = {"growing": "#d62728", "plateaued": "#ff7f0e", "stable": "#2ca02c"}
    by_function = {}
    for text, line in zip(legend, lines, strict=True):
        stack_id, verdict = text.split()[0], text.rsplit(" ", 1)[1]
        assert verdicts[stack_id] == verdict and line.attrs["stroke"] == colours[verdict]
        by_function[text.split()[1]] = verdict
    assert by_function["swap_buffer"] == "stable"
    assert by_function["leak_step"] == "growing"
    screenshot(out, work / "verdicts.png", "1280,1600")
