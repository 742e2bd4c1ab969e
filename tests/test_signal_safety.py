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
