"""--format folded, speedscope and pprof (and -o FILE) on captures of a real leaking program:
the numbers the tools read back are the leaks export_leaks.c made."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
from export_helpers import (
    BIG_BYTES,
    build,
    capture,
    definitely_lost,
    name_bytes,
    run_tool,
    small_bytes,
    tool,
)
from leakharness import LEAKTRACE, assert_one_line_error, leaktrace, marker_line

COUNT = 5
ROOT = "_start;__libc_start_main;__libc_start_call_main;main;below;make_leaks"
SCHEMA = Path(__file__).parent / "data" / "speedscope-file-format-schema.json"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="module")
def leaks(work: Path) -> Path:
    return capture(build(work), COUNT, work)


def report(*args: str) -> str:
    done = leaktrace("report", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_folded_lines_are_exact(leaks: Path) -> None:
    assert report(str(leaks), "--format", "folded").splitlines() == sorted([
        f"{ROOT};keep_names;copy_name_[i] {name_bytes(COUNT)}",
        f"{ROOT};leak_big {BIG_BYTES}",
        f"{ROOT};leak_small {small_bytes(COUNT)}",
    ])


def test_folded_follows_show_and_min_bytes(leaks: Path) -> None:
    every = report(str(leaks), "--format", "folded", "--show", "all").splitlines()
    assert f"{ROOT} 64" in every and len(every) == 4  # the still reachable config
    assert report(str(leaks), "--format", "folded", "--min-bytes", "500").splitlines() == [
        f"{ROOT};leak_big {BIG_BYTES}"]


def test_every_format_goes_to_a_file_with_o(leaks: Path, work: Path) -> None:
    for output_format in ("text", "json", "folded", "speedscope", "pprof"):
        out = work / f"report.{output_format}"
        done = leaktrace("report", str(leaks), "--format", output_format, "-o", str(out))
        assert done.returncode == 0 and done.stdout == "", done.stderr
        assert out.stat().st_size > 0
    assert json.loads((work / "report.json").read_text())["summary"]["definitely_lost"] == {
        "bytes": definitely_lost(COUNT), "blocks": 2 * COUNT + 2}


def test_pprof_goes_to_a_pipe_without_o(leaks: Path, work: Path) -> None:
    """pprof is binary: refused on a terminal (tests/test_terminal.py), written to a pipe or a
    redirected stdout as it is to -o FILE (docs/user-guide.md said it needs -o)."""
    with_o = work / "piped-check.pb.gz"
    assert leaktrace("report", str(leaks), "--format", "pprof", "-o", str(with_o)).returncode == 0
    piped = subprocess.run([*LEAKTRACE, "report", str(leaks), "--format", "pprof"],
                           capture_output=True, timeout=120, env=os.environ.copy())
    assert piped.returncode == 0 and piped.stderr == b"", piped.stderr
    assert piped.stdout[:2] == b"\x1f\x8b"  # gzip
    assert len(piped.stdout) == len(with_o.read_bytes())


def test_speedscope_matches_the_published_schema(leaks: Path) -> None:
    document = json.loads(report(str(leaks), "--format", "speedscope"))
    jsonschema.validate(document, json.loads(SCHEMA.read_text()))
    leaked, allocated = document["profiles"]
    assert leaked["unit"] == "bytes"
    assert sum(leaked["weights"]) == leaked["endValue"] == definitely_lost(COUNT)
    names = [f["name"] for f in document["shared"]["frames"]]
    paths = {tuple(names[i] for i in stack): weight
             for stack, weight in zip(leaked["samples"], leaked["weights"], strict=True)}
    assert paths[(*ROOT.split(";"), "leak_small")] == small_bytes(COUNT)
    assert paths[(*ROOT.split(";"), "keep_names", "copy_name (inlined)")] == \
        name_bytes(COUNT)
    assert sum(allocated["weights"]) == definitely_lost(COUNT)  # nothing was ever freed


def _go_env(work: Path) -> dict[str, str]:
    return {**os.environ, "HOME": str(work), "GOCACHE": str(work / "gocache"),
            "GOPATH": str(work / "gopath"), "GOFLAGS": ""}


def test_go_pprof_reads_the_profile(leaks: Path, work: Path) -> None:
    go = tool("go", "golang-go")
    profile = work / "leaks.pb.gz"
    report(str(leaks), "--format", "pprof", "-o", str(profile))
    top = run_tool(go, "tool", "pprof", "-top", str(profile), env=_go_env(work))
    assert top.returncode == 0, top.stderr
    assert "Type: inuse_space" in top.stdout
    flat = {m[1]: m[0] for m in re.findall(
        r"^\s*(\S+)\s+\S+%\s+\S+%\s+\S+\s+\S+%\s+(\S+(?: \(inline\))?)\s*$", top.stdout, re.M)}
    assert flat["leak_small"] == f"{small_bytes(COUNT)}B"
    assert flat["copy_name (inline)"] == f"{name_bytes(COUNT)}B"  # pprof saw the inlining
    assert flat["leak_big"] == f"{BIG_BYTES}B"
    assert flat["main"] == "0"
    raw = run_tool(go, "tool", "pprof", "-raw", str(profile), env=_go_env(work))
    samples = re.findall(r"^\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+):", raw.stdout, re.M)
    assert sum(int(s[1]) for s in samples) == definitely_lost(COUNT)
    assert sum(int(s[0]) for s in samples) == 2 * COUNT + 2
    assert re.search(r"/export_leaks-O2 [0-9a-f]{40} \[FN\]\[FL\]\[LN\]\[IN\]", raw.stdout)


def test_go_pprof_traces_show_file_line_and_inlining(leaks: Path, work: Path) -> None:
    go = tool("go", "golang-go")
    profile = work / "traces.pb.gz"
    report(str(leaks), "--format", "pprof", "-o", str(profile))
    traces = run_tool(go, "tool", "pprof", "-traces", "-lines", str(profile), env=_go_env(work))
    assert traces.returncode == 0, traces.stderr
    small = marker_line("export_leaks.c", "small")
    assert re.search(rf"{small_bytes(COUNT)}B\s+leak_small \S*export_leaks.c:{small}\n",
                     traces.stdout), traces.stdout
    names = marker_line("export_leaks.c", "copy_name")
    call = marker_line("export_leaks.c", "keep_names")
    assert re.search(rf"{name_bytes(COUNT)}B\s+copy_name \S*export_leaks.c:{names} \(inline\)\n"
                     rf"\s+keep_names \S*export_leaks.c:{call}\n", traces.stdout), traces.stdout


def test_run_writes_any_format_to_its_report_file(work: Path) -> None:
    exe = build(work)
    folded = work / "run.folded"
    done = leaktrace("run", "-o", str(work / "run.lt"), "--format", "folded",
                     "--report-file", str(folded), "--", str(exe), "2", cwd=work)
    assert done.returncode == 0, done.stderr
    assert f"{ROOT};leak_small {small_bytes(2)}" in folded.read_text().splitlines()


def test_run_refuses_a_binary_format_on_stderr(work: Path) -> None:
    for output_format in ("pprof", "html"):
        done = leaktrace("run", "--format", output_format, "--", "/bin/true", cwd=work)
        assert_one_line_error(done, "--report-file")


MTRACE_PROGRAM = r"""
#include <mcheck.h>
#include <stdlib.h>
void * volatile sink[2];
__attribute__((noinline)) void leak_small(void) { sink[0] = malloc(100); }
__attribute__((noinline)) void leak_array(void) { sink[1] = calloc(3, 40); }
int main(void) { mtrace(); leak_small(); leak_array(); muntrace(); return 0; }
"""


def test_mtrace_logs_export_too(work: Path) -> None:
    """The same formats from glibc's MALLOC_TRACE log (one frame: the caller)."""
    from companion_helpers import compile_c

    exe = compile_c(work, MTRACE_PROGRAM, "mtrace_leaks")
    log = work / "mtrace.log"
    done = run_tool(str(exe), env={**os.environ, "MALLOC_TRACE": str(log),
                                   "LD_PRELOAD": "libc_malloc_debug.so.0"})
    assert done.returncode == 0 and log.exists(), done.stderr
    folded = leaktrace("mtrace", str(exe), str(log), "--format", "folded")
    assert folded.returncode == 0  # leaks change the exit status only with --fail-on-leak
    assert folded.stdout.splitlines() == ["leak_array 120", "leak_small 100"]
    profile = work / "mtrace.pb.gz"
    assert leaktrace("mtrace", str(exe), str(log), "--format", "pprof", "-o",
                     str(profile), "--fail-on-leak").returncode == 99  # 220 bytes not freed
    top = run_tool(tool("go", "golang-go"), "tool", "pprof", "-top", str(profile),
                   env=_go_env(work))
    assert re.search(r"^\s+100B .* leak_small$", top.stdout, re.M), top.stdout


def test_pprof_sample_types_locations_and_mappings(leaks: Path, work: Path) -> None:
    """The four sample types in order, one Location with several Lines for an inlined call,
    and the program's Mapping with the build id readelf reads from the binary."""
    import subprocess

    go = tool("go", "golang-go")
    profile = work / "raw.pb.gz"
    report(str(leaks), "--format", "pprof", "-o", str(profile))
    assert profile.read_bytes()[:2] == b"\x1f\x8b"  # gzip
    raw = run_tool(go, "tool", "pprof", "-raw", str(profile), env=_go_env(work)).stdout
    assert "inuse_objects/count inuse_space/bytes[dflt] alloc_objects/count alloc_space/bytes" \
        in raw
    exe = work / "export_leaks-O2"
    notes = subprocess.run(["readelf", "-n", str(exe)], capture_output=True, text=True,
                           check=True).stdout
    build_id = notes.split("Build ID:")[1].split()[0]
    assert re.search(rf"^\d+: 0x[0-9a-f]+/0x[0-9a-f]+/0x[0-9a-f]+ {exe} {build_id} "
                     r"\[FN\]\[FL\]\[LN\]\[IN\]$", raw, re.M), raw
    names = marker_line("export_leaks.c", "copy_name")
    call = marker_line("export_leaks.c", "keep_names")
    # One address, two Lines: the inlined copy_name first, then keep_names around it.
    assert re.search(rf"^\s+\d+: 0x[0-9a-f]+ M=\d+ copy_name \S*export_leaks.c:{names} s=0\n"
                     rf"\s+keep_names \S*export_leaks.c:{call} s=0$", raw, re.M), raw


ALLOC_PROGRAM = r"""
#include <stdlib.h>
void *volatile sink;
__attribute__((noinline)) void churn(void)
{
    void *blocks[10];
    for (int i = 0; i < 10; i++)
        blocks[i] = malloc(32);
    for (int i = 0; i < 7; i++)
        free(blocks[i]);
    for (int i = 7; i < 10; i++)
        sink = blocks[i];
    blocks[7] = blocks[8] = blocks[9] = NULL;
    sink = NULL;  /* 3 blocks of 32 bytes definitely lost */
}
int main(void) { churn(); return 0; }
"""


def test_pprof_alloc_sample_types_count_freed_blocks_too(work: Path) -> None:
    """10 allocations of 32 bytes from one site, 7 freed: inuse 3 blocks / 96 bytes, alloc
    10 blocks / 320 bytes, as go tool pprof reads them per sample type."""
    from companion_helpers import compile_c

    exe = compile_c(work, ALLOC_PROGRAM, "churn")
    lt = work / "churn.lt"
    done = leaktrace("run", "-o", str(lt), "--", str(exe), cwd=work)
    assert lt.exists(), done.stderr
    profile = work / "churn.pb.gz"
    report(str(lt), "--format", "pprof", "-o", str(profile))
    go = tool("go", "golang-go")
    expected = {"inuse_objects": "3", "inuse_space": "96B", "alloc_objects": "10",
                "alloc_space": "320B"}
    for sample_index, value in expected.items():
        top = run_tool(go, "tool", "pprof", f"-sample_index={sample_index}", "-top",
                       str(profile), env=_go_env(work))
        assert top.returncode == 0, top.stderr
        assert f"Type: {sample_index}" in top.stdout
        assert re.search(rf"^\s+{value}\s+100%\s+100%\s+{value}\s+100%\s+churn$", top.stdout,
                         re.M), top.stdout


def test_valgrind_xml_exports_keep_its_inlined_frames(work: Path) -> None:
    """valgrind gives an inlined call as a frame of its own at its caller's address: pprof
    gets one Location with both Lines (`-traces` shows copy_name (inline) in keep_names),
    folded marks it, and the Mapping covers every frame's address."""
    import subprocess

    exe = build(work)
    xml = work / "exports-memcheck.xml"
    subprocess.run([tool("valgrind", "valgrind"), "--leak-check=full", "--xml=yes",
                    f"--xml-file={xml}", str(exe), "3"], capture_output=True, timeout=300,
                   check=True)
    folded = leaktrace("report", str(xml), "--format", "folded").stdout.splitlines()
    valgrind_root = "main;below.constprop.0;make_leaks"
    assert f"{valgrind_root};keep_names;copy_name_[i] {name_bytes(3)}" in folded
    profile = work / "memcheck.pb.gz"
    report(str(xml), "--format", "pprof", "-o", str(profile))
    go = tool("go", "golang-go")
    traces = run_tool(go, "tool", "pprof", "-traces", "-lines", str(profile),
                      env=_go_env(work)).stdout
    names = marker_line("export_leaks.c", "copy_name")
    call = marker_line("export_leaks.c", "keep_names")
    assert re.search(rf"{name_bytes(3)}B\s+copy_name \S*export_leaks.c:{names} \(inline\)\n"
                     rf"\s+keep_names \S*export_leaks.c:{call}\n", traces), traces
    raw = run_tool(go, "tool", "pprof", "-raw", str(profile), env=_go_env(work)).stdout
    [(start, end)] = re.findall(rf"^1: (0x[0-9a-f]+)/(0x[0-9a-f]+)/0x0 {exe} ", raw, re.M)
    addresses = [int(a, 16) for a in re.findall(r"^\s+\d+: (0x[0-9a-f]+) M=1 ", raw, re.M)]
    assert addresses and all(int(start, 16) <= a < int(end, 16) for a in addresses)


STRDUP_PROGRAM = r"""
#include <stdlib.h>
#include <string.h>
void *volatile sink;
int main(void) { sink = strdup("leaked by libc's strdup"); sink = NULL; return 0; }
"""


def test_pprof_names_the_program_when_libc_allocated(work: Path) -> None:
    """pprof calls the first Mapping the profile's file: the program's, even when every
    backtrace starts in a library (strdup in libc)."""
    from companion_helpers import compile_c

    exe = compile_c(work, STRDUP_PROGRAM, "strdup_leak")
    lt = work / "strdup.lt"
    done = leaktrace("run", "-o", str(lt), "--", str(exe), cwd=work)
    assert lt.exists(), done.stderr
    profile = work / "strdup.pb.gz"
    report(str(lt), "--format", "pprof", "-o", str(profile))
    top = run_tool(tool("go", "golang-go"), "tool", "pprof", "-top", str(profile),
                   env=_go_env(work))
    assert top.returncode == 0, top.stderr
    assert top.stdout.startswith("File: strdup_leak\n"), top.stdout
    assert re.search(r"^\s+24B\s+100%\s+100%\s+24B\s+100%\s+(__)?strdup$", top.stdout,
                     re.M), top.stdout
