#!/usr/bin/env python3
"""Benchmark leaktrace against running natively, heaptrack, LeakSanitizer and valgrind memcheck.

Builds a workload (bench/workload.c, or bench/workload_cpp.cpp with --workload cpp), or takes
a real program of the system (--workload sqlite3, --workload python3), runs it N times natively
and under each tracer that is installed, and writes a Markdown report (docs/benchmarks.md for
the C workload, docs/benchmarks-WORKLOAD.md for the others) with the median wall and CPU time,
the peak resident set size of the traced process, their ratios to native, and whether each tool
reported exactly the workload's one deliberate leak (for the real programs: what it reported).

    nice -n 10 python3 bench/run.py                   # full run, writes docs/benchmarks.md
    nice -n 10 python3 bench/run.py --workload cpp    # writes docs/benchmarks-cpp.md
    nice -n 10 python3 bench/run.py --workload sqlite3   # docs/benchmarks-sqlite3.md (python3 too)
    python3 bench/run.py --quick                      # smoke run, into bench/out/

Timings are informational: the machine is shared and noisy, so nothing here passes or fails.
Runs of the different tools are interleaved (run 1 of every tool, then run 2, ...) so that a
burst of load from elsewhere hits all of them alike.

The modules, one concern each: workloads.py (the programs; peak.c measures a real program's
peak RSS), measure.py (running one process:
wall, CPU, peak RSS), tools.py (each row: native, the shim, the CLI, heaptrack, LeakSanitizer,
valgrind), leak_checks.py (did a tool report exactly the deliberate leak), render.py (the
Markdown report), paths.py (where things are), and this file (arguments and the run order).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import measure
import paths
from leak_checks import LeakCheck
from measure import BenchError
from paths import BENCH_DIR, DEFAULT_SHIM, DISPLAY_PATHS, REPO, relative, shown
from render import fmt_mib, machine_description, render
from tools import (
    Heaptrack,
    LeakSanitizer,
    Leaktrace,
    LeaktraceCli,
    Native,
    NativeAt,
    Result,
    Tool,
    Valgrind,
    installed_shim,
    source_tree_cli,
)
from workloads import WORKLOADS

# ---- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="timed runs per tool (default 5)")
    p.add_argument(
        "--memory-runs",
        type=int,
        default=3,
        help="direct runs for peak RSS, for tools timed through a launcher (default 3)",
    )
    p.add_argument("--workload", choices=sorted(WORKLOADS), default="c",
                   help="c (bench/workload.c, the default), cpp (bench/workload_cpp.cpp), or a "
                   "real program: sqlite3 (a row-insert script), python3 (a large dict)")
    p.add_argument("--iterations", type=int, default=None,
                   help="per thread (default: c 2,000,000, cpp 300,000), rows (sqlite3 "
                   "20,000) or dict entries (python3 1,000,000)")
    p.add_argument("--threads", type=int, default=None,
                   help="workload threads (c 4, cpp 2; the real programs run theirs)")
    p.add_argument(
        "--valgrind-fraction",
        type=float,
        default=0.2,
        help="valgrind runs this fraction of the iterations (default 0.2)",
    )
    p.add_argument(
        "--tools",
        default="native,leaktrace,heaptrack,lsan,valgrind",
        help="comma-separated subset of native,leaktrace,heaptrack,lsan,valgrind",
    )
    p.add_argument(
        "--shim",
        type=Path,
        default=None,
        help="leaktrace shim .so (default: $LEAKTRACE_SHIM, else builddir/libleaktrace_shim.so)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=BENCH_DIR / "out",
        help="scratch directory; each invocation makes a runs-* directory in it (gitignored)",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help="Markdown report (default docs/benchmarks.md, or with --quick "
        "bench/out/benchmarks-quick.md)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 100,000 iterations, 2 runs, 1 memory run",
    )
    args = p.parse_args(argv)
    args.workload = WORKLOADS[args.workload]
    if args.iterations is None:
        args.iterations = args.workload.default_iterations
    if args.threads is None:
        args.threads = args.workload.default_threads
    if args.quick:
        args.iterations = min(args.iterations, 100_000)
        args.runs = min(args.runs, 2)
        args.memory_runs = min(args.memory_runs, 1)
    if args.output is None:
        args.output = (
            args.out / f"benchmarks-{args.workload.key}-quick.md" if args.quick
            else REPO / "docs" / ("benchmarks.md" if args.workload.key == "c"
                                  else f"benchmarks-{args.workload.key}.md")
        )
    args.shim_given = args.shim is not None or bool(os.environ.get("LEAKTRACE_SHIM"))
    if args.shim is None:
        env_shim = os.environ.get("LEAKTRACE_SHIM")
        args.shim = Path(env_shim) if env_shim else DEFAULT_SHIM
    args.shim = args.shim.resolve()
    if args.runs < 1 or args.memory_runs < 1 or args.iterations < 1 or args.threads < 1:
        p.error("counts must be positive")
    if not 0 < args.valgrind_fraction <= 1:
        p.error("--valgrind-fraction must be in (0, 1]")
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = set(args.tools) - {"native", "leaktrace", "heaptrack", "lsan", "valgrind"}
    if unknown:
        p.error(f"unknown tools: {', '.join(sorted(unknown))}")
    args.invocation = "python3 bench/run.py" + (
        " " + shlex.join(list(argv) if argv is not None else sys.argv[1:])
        if (argv if argv is not None else sys.argv[1:])
        else ""
    )
    return args


def snapshot_leaktrace(shim: Path, scratch: Path) -> Path:
    """Copy the shim and the Python package; return the shim copy."""
    base = scratch / "leaktrace-snapshot"
    (base / "src").mkdir(parents=True)
    shim_copy = base / shim.name
    shutil.copy2(shim, shim_copy)
    shutil.copytree(
        REPO / "src" / "leaktrace",
        base / "src" / "leaktrace",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    paths.SOURCE_TREE = base / "src"
    DISPLAY_PATHS.append((str(shim_copy), str(shim)))
    DISPLAY_PATHS.append((str(paths.SOURCE_TREE), str(REPO / "src")))
    return shim_copy


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.monotonic()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="runs-", dir=out))
    machine = machine_description()
    unavailable = args.workload.missing()
    if unavailable:
        log(f"cannot run the {args.workload.key} workload: {unavailable}")
        return 2
    built, build_command = args.workload.build(out)
    log(f"built {built}")
    measure.WORKLOAD_ENV.update(args.workload.env)
    workload = args.workload

    n, threads = args.iterations, args.threads
    vg_n = max(1000, round(n * args.valgrind_fraction))
    tools: list[Tool] = []
    references: dict[str, str] = {}
    # Native is always measured: everything is relative to it.
    tools.append(Native(workload, built, n, threads, scratch))
    if "leaktrace" in args.tools and not shutil.which("leaktrace") and args.shim.exists():
        args.shim = snapshot_leaktrace(args.shim, scratch)
        log(f"copied the leaktrace shim and package to {args.shim.parent}")
    if "leaktrace" in args.tools:
        # Row "leaktrace": the shim preloaded directly, the tracing cost the targets are about
        # (wall time and the traced program's own peak RSS). Row "leaktrace run (CLI)": the
        # command-line tool as a user runs it, installed if it is, else from the source tree;
        # it adds the launcher's start-up and the end-of-run report.
        exe = shutil.which("leaktrace")
        own_shim = installed_shim(exe) if exe and not args.shim_given else None
        shim = own_shim or args.shim
        tools.append(Leaktrace(workload, built, n, threads, scratch, shim))
        problem: str | None = None
        if exe:
            cli = ([exe], {} if own_shim else {"LEAKTRACE_SHIM": str(shim)})
        else:
            cli, problem = source_tree_cli(shim)
        cli_tool = LeaktraceCli(workload, built, n, threads, scratch, shim, cli,
                                measure_memory=False)
        cli_tool.unusable = problem
        tools.append(cli_tool)
    if "heaptrack" in args.tools:
        tools.append(Heaptrack(workload, built, n, threads, scratch))
    if "lsan" in args.tools:
        tools.append(LeakSanitizer(workload, built, n, threads, scratch))
    if "valgrind" in args.tools:
        if vg_n != n:
            tools.append(NativeAt(workload, built, vg_n, threads, scratch))
            references[Valgrind.name] = NativeAt.name
        tools.append(Valgrind(workload, built, vg_n, threads, scratch))

    results: dict[str, Result] = {}
    for tool in tools:
        r = Result(
            name=tool.name,
            version=tool.version() if not tool.missing() else "",
            iterations=tool.iterations,
            timing_command=shown(tool.timing_command()),
            memory_command=relative(tool.memory_command()) if tool.separate_memory_run else None,
            skipped=tool.missing(),
            reference=references.get(tool.name),
        )
        if r.skipped:
            log(f"skipping {tool.name}: {r.skipped}")
        results[tool.name] = r

    expected: tuple[int, int] | None = None
    for i in range(args.runs):
        for tool in tools:
            r = results[tool.name]
            if r.skipped or r.failed:
                continue
            try:
                run = tool.timed(i)
            except (BenchError, OSError) as e:
                r.failed = f"run {i + 1} failed"
                r.notes.append(f"{tool.name}: run {i + 1} failed, no further runs: {shown(str(e))}")
                log(f"{tool.name} failed: {e}")
                if not r.times:
                    r.skipped = f"failed: {shown(str(e)).split(' [command:')[0]}"
                continue
            r.times.append(run.seconds)
            r.cpu.append(run.cpu_seconds)
            if not tool.separate_memory_run and getattr(tool, "measure_memory", True):
                r.rss_kib.append(run.maxrss_kib)
            log(f"run {i + 1}/{args.runs} {tool.name}: {run.seconds:.2f} s, {run.maxrss_kib} KiB")
            exp = run.expected_leak()
            if exp is None and workload.deliberate_leak:
                r.notes.append(f"{tool.name}: run {i + 1} printed no expected-leak line")
            elif tool.iterations == n:
                expected = exp
            if i > 0:
                tool.discard(run)
            if i == 0 and (exp is not None or not workload.deliberate_leak):
                try:
                    r.leak = tool.leak_check(run, exp)
                except (BenchError, OSError) as e:
                    r.leak = LeakCheck(False, "no: leak check failed", [f"{tool.name}: {e}"])
                if r.leak:
                    log(f"{tool.name} leak check: {r.leak.summary}")

    for tool in tools:
        r = results[tool.name]
        if r.skipped or not tool.separate_memory_run:
            continue
        for i in range(args.memory_runs):
            try:
                run = tool.memory(i)
            except (BenchError, OSError) as e:
                r.notes.append(f"{tool.name} memory run failed: {e}")
                log(f"{tool.name} memory run failed: {e}")
                break
            r.rss_kib.append(run.maxrss_kib)
            tool.discard(run)
            log(f"memory run {i + 1}/{args.memory_runs} {tool.name}: {run.maxrss_kib} KiB")
        if isinstance(tool, Heaptrack) and hasattr(tool, "interpret_rss_kib"):
            r.notes.append(
                "heaptrack: the separate heaptrack_interpret | compressor process peaked at "
                f"{fmt_mib(tool.interpret_rss_kib)} (not included in the table)"
            )
        if not r.rss_kib:
            r.notes.append(f"{tool.name}: no successful memory run")

    if expected:
        log(f"expected leak at full size: {expected[0]} blocks, {expected[1]} bytes")
    ordered = [results[t.name] for t in tools]
    text = render(ordered, args, machine, build_command, started, time.monotonic() - t0)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    log(f"wrote {args.output}")
    print(text.split("## Workload")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
