"""Custom-allocator annotations (leaktrace/annotate.h, docs/annotations.md): a pool allocator
that carves objects out of big slabs (tests/programs/pool_alloc.c) tells leaktrace about each
object. Its leaked objects must be reported with the backtrace of the code that asked the pool
for them, with valgrind's leak kinds, exact bytes and counts, at -O0 and -O2; the slabs
themselves never. The same program built with valgrind's client requests instead must give
memcheck's same answers (malloc'd slabs); with mmap'd slabs the one difference is documented."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from attach_harness import AttachRun, attach_env
from leakharness import PROGRAMS, compile_program, leaktrace, marker_line, run_traced
from memcheck_text import VALGRIND, MemcheckRun, run_memcheck

from leaktrace.annotations import include_dir

SOURCE = "pool_alloc.c"
OPT_LEVELS = ["-O0", "-O2"]
DEFINITE, INDIRECT = "definitely lost", "indirectly lost"
POSSIBLE, REACHABLE = "possibly lost", "still reachable"

# call-site marker: (API kind, {(leak kind, direct bytes, indirect bytes, blocks)})
EXPECTED: dict[str, tuple[str, set[tuple[str, int, int, int]]]] = {
    "p_definite": ("mempool", {(DEFINITE, 48, 0, 1)}),
    "p_lost_head": ("mempool", {(DEFINITE, 64, 80, 1)}),
    "p_indirect": ("mempool", {(INDIRECT, 80, 0, 1)}),
    "p_reachable": ("mempool", {(REACHABLE, 96, 0, 1)}),
    "p_possible": ("mempool", {(POSSIBLE, 112, 0, 1)}),
    "p_freed": ("mempool", set()),  # MEMPOOL_FREE
    "q_destroyed": ("mempool", set()),  # DESTROY_MEMPOOL forgets the pool's objects
    "r_kept": ("mempool", {(REACHABLE, 104, 0, 1)}),  # TRIM, MOVE_MEMPOOL, MEMPOOL_CHANGE
    "r_trimmed": ("mempool", set()),
    "m_resized": ("malloclike", {(REACHABLE, 200, 0, 1)}),  # RESIZEINPLACE_BLOCK
    "m_definite": ("malloclike", {(DEFINITE, 144, 0, 1)}),
    "m_freed": ("malloclike", set()),  # FREELIKE_BLOCK
}
SUMMARY = {
    DEFINITE: (48 + 64 + 144, 3),
    INDIRECT: (80, 1),
    POSSIBLE: (112, 1),
    REACHABLE: (96 + 104 + 200, 3),
}
# Where the pool and the arena make their requests: the first frame of every object's stack.
REQUEST_LINES = {"mempool": marker_line(SOURCE, "pool_request"),
                 "malloclike": marker_line(SOURCE, "arena_request")}


def frame_lines(frames: list[dict[str, Any]]) -> list[int]:
    return [f["line"] for f in frames
            if f.get("file") and Path(f["file"]).name == SOURCE and f.get("line")]


@dataclass
class PoolRun:
    exe: Path
    slabs: str
    report: dict[str, Any]

    def summary(self) -> dict[str, tuple[int, int]]:
        s = self.report["summary"]
        return {kind: (s[kind.replace(" ", "_")]["bytes"], s[kind.replace(" ", "_")]["blocks"])
                for kind in SUMMARY}

    def records_through(self, marker: str) -> list[dict[str, Any]]:
        line = marker_line(SOURCE, marker)
        return [r for r in self.report["records"] if line in frame_lines(r["frames"])]


def compile_pool(build_dir: Path, opt: str, *flags: str, name: str = "") -> Path:
    """pool_alloc.c, with -I from `leaktrace include-dir` (what a user would type)."""
    done = leaktrace("include-dir")
    assert done.returncode == 0, done.stderr
    include = done.stdout.strip()
    assert Path(include) == include_dir() and (Path(include) / "leaktrace/annotate.h").is_file()
    return compile_program(SOURCE, build_dir, opt, [f"-I{include}", f"-I{PROGRAMS}", *flags],
                           output=f"pool{name}{opt}")


@pytest.fixture(scope="module")
def pool_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., PoolRun]:
    build = tmp_path_factory.mktemp("pool-build")
    runs: dict[tuple[str, str, tuple[str, ...]], PoolRun] = {}

    def run(opt: str, slabs: str = "malloc", *flags: str) -> PoolRun:
        key = (opt, slabs, flags)
        if key not in runs:
            exe = compile_pool(build, opt, *flags, name="".join(flags).replace("-", "_"))
            done = run_traced(exe, slabs, work=tmp_path_factory.mktemp("pool-run"))
            assert done.returncode == 0, done.stderr
            assert done.stdout == "done\n", done.stdout  # the pool requests answered as expected
            runs[key] = PoolRun(exe, slabs, done.report)
        return runs[key]

    return run


@pytest.mark.parametrize("slabs", ["malloc", "mmap"])
@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_pool_objects_are_reported_with_kinds_and_caller_stacks(
        pool_run: Callable[..., PoolRun], opt: str, slabs: str) -> None:
    run = pool_run(opt, slabs)
    assert run.summary() == SUMMARY
    for marker, (api, shapes) in EXPECTED.items():
        records = run.records_through(marker)
        assert {(r["leak_kind"], r["direct_bytes"], r["indirect_bytes"], r["blocks"])
                for r in records} == shapes, marker
        for record in records:
            assert record["kind"] == api, marker
            # The stack starts where the allocator made the request, then its caller.
            lines = frame_lines(record["frames"])
            assert lines[:2] == [REQUEST_LINES[api], marker_line(SOURCE, marker)], (marker, lines)


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_slabs_are_never_reported_nor_counted(pool_run: Callable[..., PoolRun], opt: str) -> None:
    """The malloc'd slabs hold annotated objects: valgrind's rule drops them (no record, no
    bytes); every live block of the program is one of its objects."""
    run = pool_run(opt, "malloc")
    slab_line = marker_line(SOURCE, "slab")
    assert not [r for r in run.report["records"] if slab_line in frame_lines(r["frames"])]
    program = [r for r in run.report["records"] if frame_lines(r["frames"])]
    assert {r["kind"] for r in program} == {"mempool", "malloclike"}
    assert sum(r["direct_bytes"] for r in program) == sum(b for b, _ in SUMMARY.values())
    assert sum(r["blocks"] for r in program) == sum(n for _, n in SUMMARY.values())


def test_capture_without_a_scan_does_not_count_slabs(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a scan (here LEAKTRACE_SCAN=0; also detach, `report --pid`) the capture lists
    the slabs beside their objects: the reader applies the same rule (capture/superblocks.py)."""
    exe = compile_pool(tmp_path, "-O2", name="noscan")
    monkeypatch.setenv("LEAKTRACE_SCAN", "0")
    report = run_traced(exe, "malloc", work=tmp_path).report
    assert report["scan"] is None
    program = [r for r in report["records"] if frame_lines(r["frames"])]
    assert not [r for r in program if marker_line(SOURCE, "slab") in frame_lines(r["frames"])]
    assert sum(r["bytes"] for r in program) == sum(b for b, _ in SUMMARY.values())
    assert sum(r["blocks"] for r in program) == sum(n for _, n in SUMMARY.values())


def test_freelike_of_an_unknown_address_is_counted(
        pool_run: Callable[..., PoolRun], tmp_path: Path) -> None:
    """The program makes one FREELIKE_BLOCK of an address that never was a block: one more
    unknown free than a program without annotations has at exit, and no crash."""
    baseline_exe = compile_program("no_leak.c", tmp_path, "-O2")
    baseline = run_traced(baseline_exe, work=tmp_path).report["counters"]["unknown_frees"]
    assert pool_run("-O2").report["counters"]["unknown_frees"] == baseline + 1


def test_runs_and_links_without_leaktrace(pool_run: Callable[..., PoolRun]) -> None:
    """No link-time dependency: a weak undefined reference, and the program runs alone."""
    exe = pool_run("-O2").exe
    done = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (0, "done\n")
    dynamic = subprocess.run(["readelf", "-W", "--dyn-syms", "-d", str(exe)], capture_output=True,
                             text=True, check=True).stdout
    assert "leaktrace" not in "".join(line for line in dynamic.splitlines() if "NEEDED" in line)
    entry = [line.split() for line in dynamic.splitlines() if "leaktrace_client_request" in line]
    assert entry and entry[0][4] == "WEAK" and entry[0][6] == "UND", dynamic


def test_non_pie_executable(pool_run: Callable[..., PoolRun]) -> None:
    """The header reads the entry point through the GOT: in a non-PIE executable the linker
    would otherwise have made the weak reference a constant 0."""
    run = pool_run("-O2", "malloc", "-no-pie", "-fno-pie")
    assert run.summary() == SUMMARY


# --- the same program under valgrind, with valgrind's client requests -----------------------

@pytest.fixture(scope="module")
def memcheck_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], MemcheckRun]:
    if VALGRIND is None:
        pytest.skip("valgrind is not installed")
    build = tmp_path_factory.mktemp("pool-valgrind")
    runs: dict[tuple[str, str], MemcheckRun] = {}

    def run(opt: str, slabs: str) -> MemcheckRun:
        if (opt, slabs) not in runs:
            exe = compile_program(SOURCE, build, opt, [f"-I{PROGRAMS}", "-DUSE_VALGRIND"],
                                  output=f"vpool{opt}")
            runs[(opt, slabs)] = run_memcheck(exe, slabs)
        return runs[(opt, slabs)]

    return run


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_valgrind_agrees_with_malloced_slabs(pool_run: Callable[..., PoolRun],
                                             memcheck_run: Callable[[str, str], MemcheckRun],
                                             opt: str) -> None:
    ours, theirs = pool_run(opt, "malloc"), memcheck_run(opt, "malloc")
    assert theirs.summary.kinds == ours.summary() == SUMMARY, theirs.text
    for marker, (_api, shapes) in EXPECTED.items():
        records = theirs.records_through(SOURCE, marker_line(SOURCE, marker))
        assert {(r.leak_kind, r.direct, r.indirect, r.blocks) for r in records} == shapes, marker
        for record in records:
            assert record.lines_in(SOURCE)[:2] == [REQUEST_LINES[_api], marker_line(SOURCE, marker)]


@pytest.mark.parametrize("opt", OPT_LEVELS)
def test_valgrind_differs_only_by_scanning_mmapped_slabs_as_roots(
        pool_run: Callable[..., PoolRun], memcheck_run: Callable[[str, str], MemcheckRun],
        opt: str) -> None:
    """An mmap'd slab is not heap to memcheck: it scans the whole slab as a root, the objects'
    contents included, so the object that only a lost object points to is still reachable
    there. leaktrace scans an annotated object only when it is reached (docs/annotations.md)."""
    theirs = memcheck_run(opt, "mmap")
    assert pool_run(opt, "mmap").summary() == SUMMARY
    expected = dict(SUMMARY)
    expected[INDIRECT] = (0, 0)
    expected[REACHABLE] = (SUMMARY[REACHABLE][0] + 80, SUMMARY[REACHABLE][1] + 1)
    assert theirs.summary.kinds == expected, theirs.text


# --- leaktrace.track(): the shim loaded by the process itself ---------------------------------

def test_attach_patches_the_annotation_entry(pool_run: Callable[..., PoolRun],
                                             tmp_path: Path) -> None:
    """`leaktrace attach` to a program whose pools were created before it came: the objects
    made during the window are recorded (each pool is created by its first MEMPOOL_ALLOC), the
    capture at detach (no scan) lists them and not their slabs."""
    exe = pool_run("-O2").exe
    program = subprocess.Popen([str(exe), "malloc", "wait"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    assert program.stdin is not None and program.stdout is not None
    try:
        assert program.stdout.readline() == "ready\n"
        run = AttachRun(program.pid, "--format", "json", "--no-default-suppressions",
                        env=attach_env(tmp_path / "ctl"), cwd=tmp_path)
        run.wait_attached()
        program.stdin.write("\n")
        program.stdin.flush()
        assert program.stdout.readline() == "made\n"
        run.interrupt()
        assert run.finish() == 0, run.error_text
        program.stdin.write("\n")
        program.stdin.flush()
        assert program.stdout.readline() == "done\n"  # the pool requests answered as expected
        assert program.wait(timeout=60) == 0
    finally:
        program.kill()
        program.wait()
    report = json.loads(run.stdout)
    live = {marker: sorted(r["bytes"] for r in report["records"]
                           if marker_line(SOURCE, marker) in frame_lines(r["frames"]))
            for marker in EXPECTED}
    assert live == {marker: sorted(direct for _kind, direct, _indirect, _n in shapes)
                    for marker, (_api, shapes) in EXPECTED.items()}
    assert not [r for r in report["records"]
                if marker_line(SOURCE, "slab") in frame_lines(r["frames"])]


def test_track_patches_the_annotation_entry(tmp_path: Path) -> None:
    """A library loaded before the tracked block: track() points its weak reference at the shim
    (GOT patching), and the block's pool objects are reported with their kinds; after the
    block, the reference is 0 again."""
    lib = tmp_path / "libpool.so"
    subprocess.run(["gcc", "-O2", "-g", "-shared", "-fPIC", "-Dmain=pool_main",
                    f"-I{include_dir()}", f"-I{PROGRAMS}", "-o", str(lib),
                    str(PROGRAMS / SOURCE)], check=True, capture_output=True, text=True)
    code = textwrap.dedent(f"""
        import ctypes, json, leaktrace
        pool = ctypes.CDLL({str(lib)!r})
        argv = (ctypes.c_char_p * 3)(b"pool", b"malloc", None)
        running = [pool.pool_tool_running()]
        with leaktrace.track() as t:
            running.append(pool.pool_tool_running())
            assert pool.pool_main(2, argv) == 0
        running.append(pool.pool_tool_running())
        report = json.loads(t.report().render("json"))
        print(json.dumps({{"running": running, "report": report}}))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("done\n"), done.stdout  # LEAKTRACE_RUNNING() answered 1
    result = json.loads(done.stdout.splitlines()[-1])
    # Before the block no shim; inside it the GOT entry points at it; after it, 0 again.
    assert result["running"] == [0, 1, 0]
    report = result["report"]
    s = report["summary"]
    assert {k: (s[k.replace(" ", "_")]["bytes"], s[k.replace(" ", "_")]["blocks"])
            for k in SUMMARY} == SUMMARY
    assert {r["kind"] for r in report["records"]} == {"mempool", "malloclike"}


def test_request_edge_cases(tmp_path: Path) -> None:
    """tests/programs/pool_edges.c: an allocation in a pool never created is kept (the pool is
    created), a block annotated twice is one block of the second size, FREELIKE of a pool's
    object is an unknown free that leaves it, and MEMPOOL_EXISTS follows CREATE/DESTROY."""
    source = "pool_edges.c"
    exe = compile_program(source, tmp_path, "-O2", [f"-I{include_dir()}", f"-I{PROGRAMS}"])
    done = run_traced(exe, work=tmp_path)
    assert (done.returncode, done.stdout) == (0, "1100\n")
    s = done.report["summary"]
    assert s["definitely_lost"] == {"bytes": 224, "blocks": 3}
    assert s["still_reachable"] == s["possibly_lost"] == {"bytes": 0, "blocks": 0}
    for marker, api, size in [("implicit_pool", "mempool", 48),
                              ("annotated_twice", "malloclike", 80),
                              ("wrong_free", "mempool", 96)]:
        line = marker_line(source, marker)
        records = [r for r in done.report["records"]
                   if any(f.get("file") and Path(f["file"]).name == source and f.get("line") == line
                          for f in r["frames"])]
        assert [(r["kind"], r["leak_kind"], r["bytes"], r["blocks"]) for r in records] == [
            (api, DEFINITE, size, 1)], marker
    baseline_exe = compile_program("no_leak.c", tmp_path, "-O2")
    baseline = run_traced(baseline_exe, work=tmp_path).report["counters"]["unknown_frees"]
    assert done.report["counters"]["unknown_frees"] == baseline + 1


def test_threads_and_fork(tmp_path: Path) -> None:
    """tests/programs/pool_threads.c: four threads annotate 20,000 blocks each at once (the
    table grows meanwhile) while a forked child makes requests of its own; each thread's
    10 leaked blocks are found, exactly, and nothing deadlocks."""
    exe = compile_program("pool_threads.c", tmp_path, "-O2",
                          [f"-I{include_dir()}", f"-I{PROGRAMS}"])
    done = run_traced(exe, work=tmp_path)
    assert (done.returncode, done.stdout) == (0, "done\n")
    s = done.report["summary"]
    assert s["definitely_lost"] == {"bytes": 10 * (32 + 48 + 64 + 80), "blocks": 40}
    assert s["still_reachable"] == s["possibly_lost"] == {"bytes": 0, "blocks": 0}
    # One backtrace (the workers run the same code): one loss record.
    assert [(r["kind"], r["bytes"], r["blocks"]) for r in done.report["records"]
            if r["kind"] == "malloclike"] == [("malloclike", 2240, 40)]
    assert done.report["counters"]["dropped_blocks"] == 0


def test_requests_from_signal_handlers(tmp_path: Path) -> None:
    """tests/programs/pool_signals.c: a timer's handler makes MALLOCLIKE/FREELIKE pairs while
    its thread makes its own, inside the annotation table too. Nothing deadlocks; a pair whose
    thread was inside the table is dropped whole (one dropped block, one unknown free); the
    main thread's seven leaks are exact."""
    exe = compile_program("pool_signals.c", tmp_path, "-O2",
                          [f"-I{include_dir()}", f"-I{PROGRAMS}"])
    done = run_traced(exe, work=tmp_path)
    assert (done.returncode, done.stdout) == (0, "done\n")
    s = done.report["summary"]
    assert s["definitely_lost"] == {"bytes": 7 * 48, "blocks": 7}
    assert s["possibly_lost"] == {"bytes": 0, "blocks": 0}
    # The handler's slab holds no annotated block at exit: an ordinary block again, in a global.
    assert s["still_reachable"] == {"bytes": 1024, "blocks": 1}
    baseline_exe = compile_program("no_leak.c", tmp_path, "-O2")
    baseline = run_traced(baseline_exe, work=tmp_path).report["counters"]["unknown_frees"]
    counters = done.report["counters"]
    assert counters["unknown_frees"] - baseline == counters["dropped_blocks"]


def test_cpp_pedantic(tmp_path: Path) -> None:
    """The header in C++ under -Wall -Wextra -pedantic -Werror; an object of an arena class is
    reported lost, with its caller's line."""
    source = "pool_cpp.cpp"
    # (scrub_stack.h's write-only pad is the test helper's, not the header's.)
    exe = compile_program(source, tmp_path, "-O2", [f"-I{include_dir()}", f"-I{PROGRAMS}",
                                                    "-Wall", "-Wextra", "-pedantic", "-Werror",
                                                    "-Wno-unused-but-set-variable"])
    alone = subprocess.run([str(exe)], capture_output=True, timeout=60, check=False)
    assert alone.returncode == 3  # LEAKTRACE_RUNNING() is 0 without leaktrace
    done = run_traced(exe, work=tmp_path)
    assert done.returncode == 0, done.stderr
    s = done.report["summary"]
    assert s["definitely_lost"] == {"bytes": 72, "blocks": 1}
    lost = [r for r in done.report["records"] if r["leak_kind"] == DEFINITE]
    assert len(lost) == 1 and lost[0]["kind"] == "malloclike"
    lines = [f["line"] for f in lost[0]["frames"]
             if f.get("file") and Path(f["file"]).name == source]
    assert lines[:2] == [marker_line(source, "cpp_request"), marker_line(source, "cpp_lost")]
