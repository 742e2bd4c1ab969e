"""The shim's incremental backtraces (shim/unwind.c) are exact when consecutive allocations'
stacks change in subtle ways: the same function at the same depth under another caller,
recursion of varying depth, longjmp, C++ exceptions, signal handlers, threads that reuse an
exited thread's stack. Every leaking block's full backtrace (file:line of each frame of the
test program) and the exact block counts are checked, at -O2 without frame pointers (every
frame found from .eh_frame) and at -O0 with them."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from leakharness import compile_program, marker_line, program_records, run_traced

ROOT = Path(__file__).parent.parent

SOURCE = "changing_stacks.cpp"


def lines(*markers: str) -> list[int]:
    return [marker_line(SOURCE, m) for m in markers]


Stacks = dict[tuple[int, ...], tuple[int, int]]


def expected_stacks() -> Stacks:
    """The program's frames' lines, innermost first -> (blocks, bytes)."""
    via_a = lines("leaf", "common", "via_a", "dispatch_a", "same_depth")
    via_b = lines("leaf", "common", "via_b", "dispatch_b", "same_depth")
    main_same = lines("main_same_depth")
    thread = lines("thread_main")
    rec_bottom = lines("leaf", "rec_bottom")
    recursion = lines("recursion", "main_recursion")
    stacks: list[tuple[list[int], int, int]] = [
        # main's two rounds (101 bytes, then 102): 30 calls each, every third through via_b
        (via_a + main_same, 40, 20 * 101 + 20 * 102),
        (via_b + main_same, 20, 10 * 101 + 10 * 102),
        (rec_bottom + lines("rec") * 3 + recursion, 20, 20 * 103),
        (rec_bottom + lines("rec") * 6 + recursion, 20, 20 * 104),
        (lines("leaf", "jump_bottom") + lines("deep_jump") * 4 + lines("longjmps", "main_longjmps"),
         20, 20 * 105),
        (lines("leaf", "common", "after_jump", "main_longjmps"), 20, 20 * 106),
        (lines("leaf", "throw_bottom") + lines("thrower") * 3
         + lines("exceptions", "main_exceptions"), 20, 20 * 107),
        (lines("leaf", "common", "after_throw", "main_exceptions"), 20, 20 * 108),
        # the handler's backtrace goes on through the signal frame: raise() at depth 0-3
        *[(lines("leaf", "on_signal", "raise") + lines("raise_at") * depth
           + lines("signals", "main_signals"), 6, 6 * 109) for depth in range(4)],
        (lines("leaf", "common", "after_signal", "main_signals"), 24, 24 * 110),
        # 4 threads one after another (111 bytes), then 3 at once (112); 30 calls each
        (via_a + thread, 80 + 60, 80 * 111 + 60 * 112),
        (via_b + thread, 40 + 30, 40 * 111 + 30 * 112),
    ]
    return {tuple(own): (blocks, size) for own, blocks, size in stacks}


def found_stacks(report: dict[str, Any]) -> Stacks:
    found: Stacks = {}
    for record in program_records(report, SOURCE):
        own = tuple(
            f["line"] for f in record["frames"] if f.get("file") and Path(f["file"]).name == SOURCE
        )
        blocks, size = found.get(own, (0, 0))
        found[own] = (blocks + record["blocks"], size + record["bytes"])
    return found


@pytest.mark.parametrize("opt", ["-O2", "-O0"])
def test_backtraces_exact_under_changing_call_paths(build_dir: Path, tmp_path: Path,
                                                     opt: str) -> None:
    exe = compile_program(SOURCE, build_dir, opt)
    run = run_traced(exe, work=tmp_path)
    assert run.returncode == 0, run.stderr
    assert found_stacks(run.report) == expected_stacks()
    # every backtrace was complete (none cut at --max-depth)
    assert run.report["counters"]["truncated_stacks"] == 0, run.report["counters"]


def test_backtraces_exact_when_cut_at_max_depth(build_dir: Path, tmp_path: Path) -> None:
    """A depth limit that cuts the recursion's and the signal handler's backtraces (and not
    the shallow ones): a record cut short by one allocation must not leave its cut into the
    next one's. Expected: the first 8 frames of each whole backtrace of a run without the
    limit (checked exact first), the program's own lines among them."""
    exe = compile_program(SOURCE, build_dir, "-O2")
    whole = run_traced(exe, work=tmp_path)
    assert found_stacks(whole.report) == expected_stacks()
    expected: Stacks = {}
    for record in program_records(whole.report, SOURCE):
        own = tuple(f["line"] for f in record["frames"][:8]
                    if f.get("file") and Path(f["file"]).name == SOURCE)
        blocks, size = expected.get(own, (0, 0))
        expected[own] = (blocks + record["blocks"], size + record["bytes"])
    run = run_traced(exe, work=tmp_path, options=("--max-depth", "8"))
    assert run.returncode == 0, run.stderr
    assert found_stacks(run.report) == expected


@pytest.mark.parametrize("opt", ["-O2", "-O0"])
def test_cut_backtraces_recognised_again_and_each_counted(build_dir: Path, tmp_path: Path,
                                                          opt: str) -> None:
    """Three threads leak 200 blocks each from 20 to 22 calls deep, the same three backtraces
    over and over, under a limit of 8 frames: every one of the 600 allocations is counted as cut
    (also those whose backtrace was recognised from the thread's recent ones without a walk),
    and they make one record of the 8 innermost frames."""
    source = "cut_backtraces.c"
    exe = compile_program(source, build_dir, opt)
    run = run_traced(exe, work=tmp_path, options=("--max-depth", "8"))
    assert run.returncode == 0, run.stderr
    assert run.report["counters"]["truncated_stacks"] == 600, run.report["counters"]
    [record] = program_records(run.report, source)
    assert (record["blocks"], record["bytes"]) == (600, 600 * 48)
    assert [f.get("line") for f in record["frames"]] == (
        [marker_line(source, "deep")] + [marker_line(source, "descend")] * 7)


@pytest.fixture(scope="module")
def self_checking_shim(build_dir: Path) -> Path:
    """The shim built from this tree with -DLT_UNWIND_SELFCHECK: every backtrace the
    incremental unwinder gives (from the thread's record, a recent path, a cut's cache) is
    compared with a full walk, and a difference stops the program (SIGILL) with a message."""
    sources = re.findall(r"'(shim/[a-z_]+\.c)'", (ROOT / "meson.build").read_text())
    out = build_dir / "libleaktrace_shim_selfcheck.so"
    subprocess.run(["gcc", "-std=gnu11", "-O1", "-shared", "-fPIC", "-D_GNU_SOURCE",
                    "-DLT_UNWIND_SELFCHECK", "-fvisibility=hidden", "-fno-omit-frame-pointer",
                    "-ftls-model=initial-exec", f"-I{ROOT / 'src/leaktrace/include'}",
                    "-o", str(out),
                    *(str(ROOT / source) for source in sources),
                    "-Wl,-z,nodelete", "-Wl,--no-undefined", "-lpthread", "-ldl", "-lm"],
                   check=True)
    return out


@pytest.mark.parametrize("depth", [4, 8, 64])
@pytest.mark.parametrize(("source", "opt"), [("changing_stacks.cpp", "-O2"),
                                             ("changing_stacks.cpp", "-O0"),
                                             ("cut_backtraces.c", "-O2")])
def test_every_incremental_backtrace_equals_a_full_walk(build_dir: Path, tmp_path: Path,
                                                        self_checking_shim: Path, source: str,
                                                        opt: str, depth: int) -> None:
    """Under depth limits that cut some backtraces and not others, every backtrace the
    unwinder's shortcuts give is the one a full walk gives."""
    exe = compile_program(source, build_dir, opt)
    env = dict(os.environ, LD_PRELOAD=str(self_checking_shim), LEAKTRACE_MAX_DEPTH=str(depth),
               LEAKTRACE_OUTPUT=str(tmp_path / "capture.lt"))
    done = subprocess.run([str(exe)], env=env, capture_output=True, text=True, timeout=120)
    assert "incremental backtrace differs" not in done.stderr
    assert done.returncode == 0, done.stderr


HANDLERS = "handler_backtraces.c"


@pytest.mark.parametrize("opt", ["-O2", "-O0"])
def test_handler_backtraces_go_on_into_the_interrupted_code(build_dir: Path, tmp_path: Path,
                                                            opt: str) -> None:
    """As valgrind's: the handler's frames, then the interrupted code's (the faulting
    instruction's function, found although it is that function's first instruction), the
    trampoline between them "<signal handler called>"."""
    exe = compile_program(HANDLERS, build_dir, opt)
    run = run_traced(exe, work=tmp_path)
    assert run.returncode == 0, run.stderr
    found = {}
    for record in run.report["records"]:
        own = tuple(f["line"] for f in record["frames"]
                    if f.get("file") and Path(f["file"]).name == HANDLERS)
        if own:
            found[own] = (record["blocks"], record["bytes"], record["leak_kind"])

    def at(*markers: str) -> tuple[int, ...]:
        return tuple(marker_line(HANDLERS, m) for m in markers)

    assert found == {
        at("on_alarm", "spin", "main_spin"): (1, 64, "still reachable"),
        at("on_fault", "store_one", "main_fault"): (1, 96, "still reachable"),
    }
    # Between the handler's frames and the interrupted code's: the C library's trampoline,
    # named as gdb names it.
    handlers = 0
    for record in run.report["records"]:
        names = [f["function"] for f in record["frames"]]
        for handler in ("on_alarm", "on_fault"):
            if handler in names:
                assert names[names.index(handler) + 1] == "<signal handler called>", names
                handlers += 1
    assert handlers == 2


IN_CALLS = "handler_in_calls.c"


def _handler_records(report: dict[str, Any], marker: str) -> list[dict[str, Any]]:
    line = marker_line(IN_CALLS, marker)
    return [r for r in report["records"]
            if any(f.get("line") == line and Path(f.get("file") or "").name == IN_CALLS
                   for f in r["frames"][:1])]


@pytest.mark.parametrize("opt", ["-O2", "-O0"])
def test_a_handler_interrupting_a_hooked_call(build_dir: Path, tmp_path: Path, opt: str) -> None:
    """SIGALRM during pause(): past the signal frame the backtrace is libc's pause, then main,
    as valgrind's (the shim's pause hook showed, and a signal inside malloc showed the shim's
    internals, one call site becoming many records). A SIGPROF handler firing inside the
    mmap/munmap hooks: all 200 blocks recorded (none were)."""
    exe = compile_program(IN_CALLS, build_dir, opt)
    run = run_traced(exe, "pause", work=tmp_path)
    assert run.returncode == 0 and run.stdout == "made 1\n", run.stderr
    [record] = _handler_records(run.report, "pause_handler")
    modules = [Path(f.get("module") or "?").name for f in record["frames"]]
    assert not any("leaktrace" in m for m in modules), record["frames"]
    lines = [f.get("line") for f in record["frames"]
             if Path(f.get("file") or "").name == IN_CALLS]
    assert lines == [marker_line(IN_CALLS, "pause_handler"), marker_line(IN_CALLS, "main_pause")]
    assert any(f.get("function") == "pause" for f in record["frames"])

    run = run_traced(exe, "mmap", work=tmp_path)
    assert run.returncode == 0 and run.stdout == "made 200\n", run.stderr
    records = _handler_records(run.report, "prof_handler")
    assert (sum(r["blocks"] for r in records), sum(r["bytes"] for r in records)) == (200, 8000)


def test_a_handler_after_a_fault_on_a_wild_stack_pointer(build_dir: Path, tmp_path: Path) -> None:
    """The backtrace goes through the signal frame with reads that cannot fault: through the
    wild pointer a read killed the program (SIGSEGV blocked in its handler)."""
    exe = compile_program(IN_CALLS, build_dir, "-O0")
    run = run_traced(exe, "wild", work=tmp_path)
    assert (run.returncode, run.stdout) == (3, "handler ran\n"), run.stderr
    [record] = _handler_records(run.report, "wild_handler")
    assert record["bytes"] == 77
