"""`leaktrace diff` and `leaktrace merge` on real runs of export_leaks.c with different leak
counts, from two builds of it (different code addresses, different load addresses)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from export_helpers import BIG_BYTES, build, capture, definitely_lost, name_bytes, small_bytes
from leakharness import assert_one_line_error, compile_program, leaktrace, marker_line

ROOT = "_start;__libc_start_main;__libc_start_call_main;main;below;make_leaks"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("diff")


@pytest.fixture(scope="module")
def runs(work: Path) -> dict[int, Path]:
    """Leak counts 0 and 2 from one build, 5 from a rebuild whose code sits elsewhere."""
    exe = build(work)
    rebuilt = compile_program("export_leaks.c", work, output="export_leaks_rebuilt",
                              extra=[f"-I{Path(__file__).parent / 'programs'}",
                                     "-DSHIFT_CODE"])
    return {0: capture(exe, 0, work), 2: capture(exe, 2, work), 5: capture(rebuilt, 5, work)}


def run_json(*args: str) -> dict[str, Any]:
    done = leaktrace(*args, "--format", "json")
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def by_function(stacks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each stack by its innermost frame's function."""
    return {s["frames"][0]["function"]: s for s in stacks}


def test_the_rebuild_moved_the_code(runs: dict[int, Path]) -> None:
    def offset(path: Path) -> int:
        report = run_json("report", str(path))
        [small] = [r for r in report["records"] if r["frames"][0]["function"] == "leak_small"]
        return int(small["frames"][0]["offset"])

    assert offset(runs[2]) != offset(runs[5])  # so the match below is by name, not address


def test_diff_json_matches_stacks_across_builds(runs: dict[int, Path]) -> None:
    diff = run_json("diff", str(runs[2]), str(runs[5]))
    stacks = by_function(diff["stacks"])
    assert set(stacks) == {"leak_small", "leak_big", "copy_name"}
    small = stacks["leak_small"]
    assert (small["status"], small["before"], small["after"], small["change"]) == (
        "grew", {"bytes": small_bytes(2), "blocks": 2}, {"bytes": small_bytes(5), "blocks": 5},
        {"bytes": small_bytes(3), "blocks": 3})
    assert stacks["copy_name"]["change"] == {"bytes": name_bytes(3), "blocks": 3}
    assert stacks["copy_name"]["frames"][0]["inlined"] is True
    big = stacks["leak_big"]
    assert (big["status"], big["after"]["bytes"]) == ("same", BIG_BYTES)
    assert diff["total"] == {
        "before": {"bytes": definitely_lost(2), "blocks": 2 + 2 + 2},
        "after": {"bytes": definitely_lost(5), "blocks": 5 + 2 + 5},
        "change": {"bytes": definitely_lost(5) - definitely_lost(2), "blocks": 6}}
    assert diff["before"]["capture_path"] == str(runs[2])
    assert diff["stacks"][0]["frames"][0]["function"] == "leak_small"  # largest change first


def test_diff_new_and_gone_stacks(runs: dict[int, Path]) -> None:
    grown = by_function(run_json("diff", str(runs[0]), str(runs[5]))["stacks"])
    assert grown["leak_small"]["status"] == "new"
    assert grown["leak_small"]["before"] == {"bytes": 0, "blocks": 0}
    assert grown["leak_small"]["stack_ids_before"] == []
    shrunk = by_function(run_json("diff", str(runs[5]), str(runs[0]))["stacks"])
    assert shrunk["copy_name"]["status"] == "gone"
    assert shrunk["copy_name"]["change"] == {"bytes": -name_bytes(5), "blocks": -5}


def test_diff_text(runs: dict[int, Path], work: Path) -> None:
    out = work / "diff.txt"
    done = leaktrace("diff", str(runs[2]), str(runs[5]), "-o", str(out))
    assert done.returncode == 0 and done.stdout == "", done.stderr
    text = out.read_text()
    assert "stacks: 2 grew, 0 shrank, 0 new, 0 gone, 1 unchanged" in text
    assert "GREW +72 bytes (+3 blocks): 48 bytes in 2 blocks -> 120 bytes in 5 blocks" in text
    assert "#0  copy_name (inlined)" in text
    assert "leak_big" not in text  # unchanged stacks only with --show-unchanged
    everything = leaktrace("diff", str(runs[2]), str(runs[5]), "--show-unchanged").stdout
    assert "SAME +0 bytes (+0 blocks)" in everything and "leak_big" in everything


def test_diff_show_reachable(runs: dict[int, Path]) -> None:
    stacks = run_json("diff", str(runs[2]), str(runs[5]), "--show", "reachable")["stacks"]
    assert [(s["leak_kind"], s["status"], s["after"]["bytes"]) for s in stacks] == [
        ("still reachable", "same", 64)]


def test_merge_json_adds_up_and_keeps_each_process(runs: dict[int, Path]) -> None:
    merged = run_json("merge", str(runs[2]), str(runs[5]))
    assert merged["summary"]["definitely_lost"] == {
        "bytes": definitely_lost(2) + definitely_lost(5), "blocks": 6 + 12}
    pids = [m["pid"] for m in merged["merged_from"]]
    assert [m["definitely_lost"]["bytes"] for m in merged["merged_from"]] == [
        definitely_lost(2), definitely_lost(5)]
    [small] = [r for r in merged["records"] if r["frames"][0]["function"] == "leak_small"]
    assert (small["bytes"], small["blocks"]) == (small_bytes(7), 7)
    assert small["by_process"] == [
        {"source": 0, "pid": pids[0], "bytes": small_bytes(2), "blocks": 2,
         "total_allocations": 2, "total_allocated_bytes": small_bytes(2)},
        {"source": 1, "pid": pids[1], "bytes": small_bytes(5), "blocks": 5,
         "total_allocations": 5, "total_allocated_bytes": small_bytes(5)}]
    [big] = [r for r in merged["records"] if r["frames"][0]["function"] == "leak_big"]
    assert big["bytes"] == 2 * BIG_BYTES  # two call sites of each run, one backtrace by name
    assert merged["notes"][0] == f"merged from 2 reports: pid {pids[0]}, pid {pids[1]}"


def test_merge_refuses_one_capture_twice(runs: dict[int, Path], work: Path) -> None:
    """Its leaks would be added to themselves: by the same name, or by another name for
    the same file."""
    done = leaktrace("merge", str(runs[2]), str(runs[5]), str(runs[2]))
    assert_one_line_error(done, f"{runs[2]}: given twice: its leaks would be counted twice")
    other = work / "other-name.lt"
    other.unlink(missing_ok=True)
    os.link(runs[5], other)
    done = leaktrace("merge", str(runs[5]), str(other))
    assert_one_line_error(done, f"{other}: the same file as {runs[5]}")


def test_merge_renders_any_format(runs: dict[int, Path], work: Path) -> None:
    out = work / "merged.folded"
    done = leaktrace("merge", str(runs[2]), str(runs[5]), str(runs[0]), "--format", "folded",
                     "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert sorted(out.read_text().splitlines()) == sorted([
        f"{ROOT};keep_names;copy_name_[i] {name_bytes(7)}",
        f"{ROOT};leak_big {3 * BIG_BYTES}",
        f"{ROOT};leak_small {small_bytes(7)}"])
    text = leaktrace("merge", str(runs[2]), str(runs[5])).stdout
    assert "== Processes merged ==" in text
    assert f"definitely lost: {definitely_lost(2) + definitely_lost(5):,} bytes in 18 blocks" \
        in text


def test_bad_inputs_are_one_line_errors(runs: dict[int, Path], work: Path) -> None:
    assert_one_line_error(leaktrace("diff", str(runs[2]), str(work / "missing.lt")),
                          "missing.lt")
    junk = work / "junk.lt"
    junk.write_text("not a capture\n")
    assert_one_line_error(leaktrace("merge", str(runs[2]), str(junk)), "junk.lt")


def test_diff_html_in_a_browser(runs: dict[int, Path], work: Path) -> None:
    from browser import dom, find

    page = work / "diff.html"
    done = leaktrace("diff", str(runs[0]), str(runs[5]), "--format", "html", "-o", str(page))
    assert done.returncode == 0, done.stderr
    elements = dom(page)
    [total] = find(elements, id="diff-total")
    assert (int(total.attrs["data-before"]), int(total.attrs["data-after"])) == (
        definitely_lost(0), definitely_lost(5))
    counts = {e.attrs["data-status"]: e.text for e in find(elements, "tr")
              if "data-status" in e.attrs}
    assert counts["new"].endswith("2") and counts["same"].endswith("1")  # small, names; big
    [root] = find(elements, "div", "fr", data_name="all")
    assert int(root.attrs["data-value"]) == small_bytes(5) + name_bytes(5)  # bytes gained
    rows = find(elements, "tr", "rec")
    assert [r.classes & {"new", "same"} for r in rows] == [{"new"}, {"new"}, {"same"}]
    [gone_root] = find(dom(page, "#drive=weight:beforeBytes"), "div", "fr", data_name="all")
    assert int(gone_root.attrs["data-value"]) == BIG_BYTES


def test_diff_matches_valgrind_xml_with_a_capture(runs: dict[int, Path], work: Path) -> None:
    """valgrind names clones by symbol (below.constprop.0) and stops at main; the match
    ignores both."""
    import subprocess

    from export_helpers import tool

    xml = work / "memcheck.xml"
    subprocess.run([tool("valgrind", "valgrind"), "--leak-check=full", "--xml=yes",
                    f"--xml-file={xml}", str(work / "export_leaks-O2"), "3"],
                   capture_output=True, timeout=300, check=True)
    stacks = by_function(run_json("diff", str(xml), str(runs[5]))["stacks"])
    assert set(stacks) == {"leak_small", "leak_big", "copy_name"}
    assert (stacks["leak_small"]["status"], stacks["leak_small"]["change"]) == (
        "grew", {"bytes": small_bytes(2), "blocks": 2})
    assert stacks["leak_big"]["status"] == "same"


def test_cxx_new_records_of_a_capture_and_of_valgrind_xml_match(work: Path) -> None:
    """Each form of operator new: valgrind's XML has it as the record's kind, and so has the
    capture (its shim tells new[] from the new it calls; libstdc++'s frames are left out, as
    valgrind's replacement leaves them out). The same run
    under both tools: every stack the same (7 new and 7 gone before), and merge adds them
    up into one record each."""
    from export_helpers import tool

    exe = compile_program("cxx_new_leaks.cpp", work, "-O2")
    xml = work / "cxx.xml"
    subprocess.run([tool("valgrind", "valgrind"), "--leak-check=full", "--xml=yes",
                    f"--xml-file={xml}", str(exe)], capture_output=True, timeout=300, check=True)
    lt = work / "cxx.lt"
    done = leaktrace("run", "-o", str(lt), "--", str(exe))
    assert done.returncode == 0, done.stderr
    diff = run_json("diff", str(lt), str(xml))
    assert {s["status"] for s in diff["stacks"]} == {"same"}, diff["stacks"]
    assert len(diff["stacks"]) == 4
    merged = run_json("merge", str(lt), str(xml))
    sizes = sorted(r["bytes"] for r in merged["records"])
    assert sizes == sorted(2 * n for n in (16, 400, 333, 77)), sizes


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_diff_pairs_valgrind_names_of_clones_and_inlined_calls(work: Path, opt: str) -> None:
    """valgrind names a C++ clone by its symbol, `below(void (*)()) [clone .constprop.0]`
    (at -O2), and an inlined call by its short name, `make` (leaktrace:
    shapes::Box<int>::make(int)): the same run under both tools pairs every stack."""
    from export_helpers import tool

    exe = compile_program("suppress_cxx.cpp", work, opt)
    xml = work / f"inlined{opt}.xml"
    subprocess.run([tool("valgrind", "valgrind"), "--leak-check=full", "--show-leak-kinds=all",
                    "--xml=yes", f"--xml-file={xml}", str(exe)],
                   capture_output=True, timeout=300, check=True)
    lt = work / f"inlined{opt}.lt"
    done = leaktrace("run", "-o", str(lt), "--report-file", os.devnull, "--", str(exe))
    assert done.returncode == 0, done.stderr
    diff = run_json("diff", str(lt), str(xml), "--show", "all")
    assert {s["status"] for s in diff["stacks"]} == {"same"}, diff["stacks"]
    assert sum(s["after"]["bytes"] for s in diff["stacks"]) == 188  # the program's 5 leaks


def test_merged_pprof_keeps_a_pid_label(runs: dict[int, Path], work: Path) -> None:
    import re

    from export_helpers import run_tool, tool

    profile = work / "merged.pb.gz"
    done = leaktrace("merge", str(runs[2]), str(runs[5]), "--format", "pprof", "-o",
                     str(profile))
    assert done.returncode == 0, done.stderr
    pids = [run_json("report", str(runs[n]))["pid"] for n in (2, 5)]
    env = {**os.environ, "HOME": str(work), "GOCACHE": str(work / "gocache")}
    go = tool("go", "golang-go")
    for pid, count in zip(pids, (2, 5), strict=True):
        top = run_tool(go, "tool", "pprof", "-top", "-unit=B", f"-tagfocus=pid={pid}",
                       str(profile), env=env)
        assert top.returncode == 0, top.stderr
        assert re.search(rf"^\s+{small_bytes(count)}B .* leak_small$", top.stdout, re.M), \
            top.stdout
    whole = run_tool(go, "tool", "pprof", "-top", "-unit=B", str(profile), env=env).stdout
    assert re.search(rf"^\s+{small_bytes(7)}B .* leak_small$", whole, re.M), whole


def test_merged_html_shows_each_process(runs: dict[int, Path], work: Path) -> None:
    from browser import dom, find

    page = work / "merged.html"
    assert leaktrace("merge", str(runs[2]), str(runs[5]), "--format", "html", "-o",
                     str(page)).returncode == 0
    pids = [run_json("report", str(runs[n]))["pid"] for n in (2, 5)]
    [small] = [r for r in find(dom(page), "tr", "rec") if "leak_small" in r.text]
    elements = dom(page, f"#drive=expand:{small.attrs['data-stack']}")
    [stack] = find(elements, "tr", "stack")
    assert (f"per process: pid {pids[0]} {small_bytes(2)} bytes in 2 blocks, "
            f"pid {pids[1]} {small_bytes(5)} bytes in 5 blocks") in stack.text
    facts = " ".join(e.text for e in find(elements, "dt"))
    assert f"merged: pid {pids[0]}" in facts and f"merged: pid {pids[1]}" in facts
    [root] = find(elements, "div", "fr", data_name="all")
    assert int(root.attrs["data-value"]) == definitely_lost(2) + definitely_lost(5)


def test_diff_matches_a_rebuild_with_lines_added_above_the_leaks(
        runs: dict[int, Path], work: Path) -> None:
    """The source edited (lines added at the top, so every leak moved down) and rebuilt: a
    new build id, new addresses, new line numbers; the backtraces still match by name."""
    edited_dir = work / "edited"
    edited_dir.mkdir()
    source = Path(__file__).parent / "programs" / "export_leaks.c"
    added = ("/* an edit */\nstatic int unused_counter;\n"
             "int bump(void) { return ++unused_counter; }\n")
    (edited_dir / "export_leaks.c").write_text(added + source.read_text())
    exe = edited_dir / "export_leaks_edited"
    subprocess.run(["gcc", "-O2", "-g", "-fomit-frame-pointer", "-o", str(exe),
                    str(edited_dir / "export_leaks.c"), f"-I{source.parent}"], check=True)
    edited = capture(exe, 4, work, "edited-4.lt")

    def small_line(path: Path) -> int:
        report = run_json("report", str(path))
        [small] = [r for r in report["records"] if r["frames"][0]["function"] == "leak_small"]
        return int(small["frames"][0]["line"])

    assert small_line(edited) == small_line(runs[2]) + 3
    diff = run_json("diff", str(runs[2]), str(edited))
    stacks = by_function(diff["stacks"])
    assert {s["status"] for s in diff["stacks"]} == {"grew", "same"}  # nothing new or gone
    assert (stacks["leak_small"]["status"], stacks["leak_small"]["change"]) == (
        "grew", {"bytes": small_bytes(2), "blocks": 2})
    assert stacks["copy_name"]["change"] == {"bytes": name_bytes(2), "blocks": 2}
    assert stacks["leak_big"]["status"] == "same"


def test_merge_of_a_follow_children_run(work: Path) -> None:
    """fork_child.c: the parent keeps 111 bytes reachable; its forked child inherits that
    block (lost there: the child overwrote the pointer), leaks one 222-byte block and keeps
    another. The merge keeps the two allocation sites of main apart (same build: lines
    count), adds up each kind over the processes and says which process had what."""
    exe = compile_program("fork_child.c", work, "-O0")
    run_dir = work / "children"
    run_dir.mkdir()
    parent = run_dir / "parent.lt"
    done = leaktrace("run", "-o", str(parent), "--follow-children", "--", str(exe),
                     cwd=run_dir)
    assert done.returncode == 0, done.stderr
    [child] = [c for c in run_dir.glob("*.lt") if c != parent]
    inputs = [run_json("report", str(p), "--show", "all") for p in (parent, child)]
    merged = run_json("merge", str(parent), str(child), "--show", "all")
    for kind in ("definitely_lost", "still_reachable"):
        assert merged["summary"][kind] == {
            "bytes": sum(i["summary"][kind]["bytes"] for i in inputs),
            "blocks": sum(i["summary"][kind]["blocks"] for i in inputs)}
    parent_pid, child_pid = (i["pid"] for i in inputs)
    sites = {(r["leak_kind"], r["frames"][0]["line"]):
             (r["bytes"], [(p["pid"], p["bytes"], p["blocks"]) for p in r["by_process"]])
             for r in merged["records"] if r["frames"][0]["function"] == "main"}
    parent_line = marker_line("fork_child.c", "parent")
    child_line = marker_line("fork_child.c", "child")
    assert sites == {
        ("still reachable", parent_line): (111, [(parent_pid, 111, 1)]),
        ("definitely lost", parent_line): (111, [(child_pid, 111, 1)]),
        ("definitely lost", child_line): (222, [(child_pid, 222, 1)]),
        ("still reachable", child_line): (222, [(child_pid, 222, 1)]),
    }
    assert [m["pid"] for m in merged["merged_from"]] == [parent_pid, child_pid]


def test_diff_exports_for_flame_graph_tools(runs: dict[int, Path], work: Path) -> None:
    """folded: BEFORE and AFTER bytes per path (a differential flame graph's input);
    speedscope: both sides as profiles, valid against the published schema; pprof: the
    change, which go tool pprof reads (negative where the leak shrank)."""
    import re

    import jsonschema
    from export_helpers import run_tool, tool

    folded = leaktrace("diff", str(runs[2]), str(runs[5]), "--format", "folded")
    assert folded.returncode == 0, folded.stderr
    assert folded.stdout.splitlines() == sorted([
        f"{ROOT};keep_names;copy_name_[i] {name_bytes(2)} {name_bytes(5)}",
        f"{ROOT};leak_big {BIG_BYTES} {BIG_BYTES}",
        f"{ROOT};leak_small {small_bytes(2)} {small_bytes(5)}"])

    schema = json.loads((Path(__file__).parent / "data" /
                         "speedscope-file-format-schema.json").read_text())
    out = work / "diff.speedscope.json"
    assert leaktrace("diff", str(runs[2]), str(runs[5]), "--format", "speedscope", "-o",
                     str(out)).returncode == 0
    document = json.loads(out.read_text())
    jsonschema.validate(document, schema)
    before, after = document["profiles"]
    assert (before["endValue"], after["endValue"]) == (definitely_lost(2), definitely_lost(5))
    assert before["name"].startswith("BEFORE: export-2.lt")

    env = {**os.environ, "HOME": str(work), "GOCACHE": str(work / "gocache")}
    go = tool("go", "golang-go")
    for old, new, sign in ((2, 5, ""), (5, 2, "-")):
        profile = work / f"diff-{old}-{new}.pb.gz"
        done = leaktrace("diff", str(runs[old]), str(runs[new]), "--format", "pprof", "-o",
                         str(profile))
        assert done.returncode == 0, done.stderr
        top = run_tool(go, "tool", "pprof", "-top", "-unit=B", str(profile), env=env)
        assert top.returncode == 0, top.stderr
        flat = {name: value for value, name in re.findall(
            r"^\s+(-?\d+B)\s+\S+%\s+\S+%\s+\S+\s+\S+%\s+(\S+(?: \(inline\))?)$", top.stdout,
            re.M)}
        assert flat["leak_small"] == f"{sign}{small_bytes(3)}B", top.stdout
        assert flat["copy_name (inline)"] == f"{sign}{name_bytes(3)}B", top.stdout
        assert "leak_big" not in flat  # unchanged: no sample
