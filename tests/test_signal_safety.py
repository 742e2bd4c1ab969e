"""A signal handler that allocates while its thread is inside the shim (inside free, holding
a table lock) must neither hang the program nor lose its allocations."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from leakharness import compile_program, records_from, run_traced

from leaktrace.capture.reader import read_capture
from leaktrace.shim_library import find_shim_library

SOURCE = "signal_alloc.c"
HANDLER_BLOCKS, HANDLER_SIZE = 1500, 1237  # TARGET and HANDLER_SIZE in the program
RUNS = 20  # the deadlock this guards against hung 10 runs of 12


def test_handler_allocations_are_recorded_exactly(build_dir: Path, tmp_path: Path) -> None:
    exe = compile_program(SOURCE, build_dir, "-O2")
    run = run_traced(exe, work=tmp_path)
    assert run.returncode == 0, run.stderr
    assert f"handler blocks: {HANDLER_BLOCKS}" in run.stdout
    # one record per place the signals interrupted: the backtraces go on through the handler
    records = records_from(run.report, SOURCE, "handler")
    assert (sum(r["blocks"] for r in records), sum(r["bytes"] for r in records)) == \
        (HANDLER_BLOCKS, HANDLER_BLOCKS * HANDLER_SIZE)


def test_no_hang_and_exact_count_over_many_runs(build_dir: Path, tmp_path: Path) -> None:
    exe = compile_program(SOURCE, build_dir, "-O2")
    for i in range(RUNS):
        capture = tmp_path / f"run{i}.lt"
        env = dict(os.environ, LD_PRELOAD=str(find_shim_library()),
                   LEAKTRACE_OUTPUT=str(capture), LEAKTRACE_SCAN="0")
        try:
            done = subprocess.run([str(exe)], env=env, capture_output=True, text=True,
                                  timeout=30)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"run {i} hung: a handler allocated inside the shim") from e
        assert done.returncode == 0, (i, done.returncode, done.stderr)
        blocks = read_capture(str(capture)).blocks
        kept = int((blocks["size"] == HANDLER_SIZE).sum())
        assert kept == HANDLER_BLOCKS, f"run {i}: {kept} of {HANDLER_BLOCKS} handler blocks"


def test_a_signal_put_off_inside_the_shim_comes_before_the_hook_returns(build_dir: Path,
                                                                        tmp_path: Path) -> None:
    """A signal `leaktrace run` passes on (SIGALRM here, a timer's) that finds its thread inside
    malloc or free is put off until the thread is out of the shim. Sent again by a timer of the
    shim's, it came tens of microseconds later, or milliseconds on a busy machine: the
    program's handler ran after the program had stopped its timer (7 to 11 times in 20 rounds
    of tests/programs/timer_stopped.c), even after main returned. Now the thread sends it to
    itself as it leaves the shim's tables, before the hook returns to the program."""
    exe = compile_program("timer_stopped.c", build_dir, "-O2")
    assert subprocess.run([str(exe)], capture_output=True, text=True,
                          timeout=60).stdout == "handled 0\n"
    for _ in range(3):
        run = run_traced(exe, work=tmp_path)
        assert (run.returncode, run.stdout) == (0, "handled 0\n"), run.stderr
