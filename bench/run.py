#!/usr/bin/env python3
"""Benchmark leaktrace against running natively, heaptrack and valgrind memcheck.

Builds bench/workload.c, runs it N times natively and under each tracer that is installed,
and writes a Markdown report (docs/benchmarks.md by default) with the median wall time, the
peak resident set size of the traced process, their ratios to native, and whether each tool
reported exactly the workload's one deliberate leak.

    nice -n 10 python3 bench/run.py            # full run, writes docs/benchmarks.md
    python3 bench/run.py --quick               # smoke run, writes bench/out/benchmarks-quick.md

Timings are informational: the machine is shared and noisy, so nothing here passes or fails.
Runs of the different tools are interleaved (run 1 of every tool, then run 2, ...) so that a
burst of load from elsewhere hits all of them alike.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
WORKLOAD_SOURCE = BENCH_DIR / "workload.c"
CFLAGS = ["-O2", "-fomit-frame-pointer", "-g", "-pthread"]
DEFAULT_SHIM = REPO / "builddir" / "libleaktrace_shim.so"
LEAK_FUNCTION = "leak_site"  # the workload's deliberate leak
SITE_PREFIX = "site_"  # the workload's other allocation sites, which must not leak

EXPECTED_RE = re.compile(r"expected leak: (\d+) blocks, (\d+) bytes")

# The leaktrace Python package the CLI and the report are run from. main() points it at a copy
# taken when the benchmark starts, with a copy of the shim, so that a rebuild in the shared
# tree during the benchmark cannot mix versions.
SOURCE_TREE = REPO / "src"
# (path as used, path as shown in the report) for those copies.
DISPLAY_PATHS: list[tuple[str, str]] = []


# ---- running one process --------------------------------------------------------------------


@dataclass
class Run:
    argv: list[str]
    seconds: float
    maxrss_kib: int  # ru_maxrss of the process we waited for (and its waited-for children)
    cpu_seconds: float  # user + system time of it and its waited-for children
    exit_code: int
    stdout: str
    stderr: str
    workdir: Path

    def expected_leak(self) -> tuple[int, int] | None:
        m = EXPECTED_RE.search(self.stderr)
        return (int(m.group(1)), int(m.group(2))) if m else None


class BenchError(Exception):
    pass


def spawn(argv: Sequence[str], env: dict[str, str], workdir: Path, name: str) -> int:
    """Start argv with stdout and stderr going to files in workdir; return the pid."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(workdir / f"{name}.stdout"), flags, 0o644),
        (os.POSIX_SPAWN_OPEN, 2, str(workdir / f"{name}.stderr"), flags, 0o644),
    ]
    return os.posix_spawnp(argv[0], list(argv), env, file_actions=actions)


def run_measured(
    argv: Sequence[str], workdir: Path, extra_env: dict[str, str] | None = None, name: str = "run"
) -> Run:
    """Run argv to completion, timing it and taking its peak RSS from wait4()."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(extra_env or {})
    start = time.perf_counter()
    pid = spawn(argv, env, workdir, name)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - start
    run = Run(
        argv=list(argv),
        seconds=seconds,
        maxrss_kib=usage.ru_maxrss,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        exit_code=os.waitstatus_to_exitcode(status),
        stdout=(workdir / f"{name}.stdout").read_text(errors="replace"),
        stderr=(workdir / f"{name}.stderr").read_text(errors="replace"),
        workdir=workdir,
    )
    if run.exit_code != 0:
        lines = run.stderr.strip().splitlines()
        last = lines[-1] if lines else "(no output)"
        raise BenchError(
            f"exit status {run.exit_code}: {last} [command: {shlex.join(argv)}; stderr in "
            f"{workdir / (name + '.stderr')}]"
        )
    return run


def output_of(argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """stdout + stderr of a helper command (versions, report generation); raises on failure."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(
            f"{shlex.join(argv)} exited with {proc.returncode}: {proc.stderr.strip()[-2000:]}"
        )
    return proc.stdout + proc.stderr


def first_line(argv: Sequence[str]) -> str:
    try:
        text = output_of(argv, timeout=60).strip()
    except (BenchError, OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"
    return text.splitlines()[0] if text else "unknown"


# ---- leak checks ----------------------------------------------------------------------------


@dataclass
class LeakCheck:
    exact: bool  # the deliberate leak was reported with exactly the expected blocks and bytes
    summary: str  # one line for the table
    details: list[str] = field(default_factory=list)  # for the notes


def judge(
    tool: str,
    expected: tuple[int, int],
    found: tuple[int, int] | None,
    other_site_leaks: list[str],
    runtime_leaks: list[str],
    blocks_note: str = "",
) -> LeakCheck:
    exp_blocks, exp_bytes = expected
    details: list[str] = []
    if found is None:
        return LeakCheck(False, "no: deliberate leak not reported", runtime_leaks)
    blocks, nbytes = found
    exact = (blocks, nbytes) == expected and not other_site_leaks
    summary = (
        f"{'yes' if exact else 'no'}: {blocks} blocks, {nbytes} B from {LEAK_FUNCTION}{blocks_note}"
    )
    if (blocks, nbytes) != expected:
        details.append(
            f"{tool}: expected {exp_blocks} blocks / {exp_bytes} B from {LEAK_FUNCTION}, "
            f"got {blocks} / {nbytes}"
        )
    if other_site_leaks:
        summary += f"; {len(other_site_leaks)} false leak(s) at workload sites"
        details += [f"{tool}: false leak at a workload site: {s}" for s in other_site_leaks]
    if runtime_leaks:
        summary += f"; +{len(runtime_leaks)} runtime record(s), see notes"
        details += [
            f"{tool}: also reported (not from the workload's sites): {s}" for s in runtime_leaks
        ]
    return LeakCheck(exact, summary, details)


def check_valgrind(run: Run, log: Path, expected: tuple[int, int]) -> LeakCheck:
    text = log.read_text(errors="replace")

    def num(s: str) -> int:
        return int(s.replace(",", ""))

    m = re.search(r"definitely lost: ([\d,]+) bytes in ([\d,]+) blocks", text)
    if m is None:
        # No LEAK SUMMARY at all means valgrind found nothing leaked.
        if "All heap blocks were freed" in text:
            return LeakCheck(False, "no: valgrind reported no leaks")
        return LeakCheck(False, "no: could not parse the valgrind log")
    definitely = (num(m.group(2)), num(m.group(1)))
    # Loss records: "N bytes in M blocks are definitely lost in loss record i of n", then frames.
    found: tuple[int, int] | None = None
    others: list[str] = []
    runtime: list[str] = []
    record_re = re.compile(
        r"==\d+== ([\d,]+)(?: \([^)]*\))? bytes in ([\d,]+) blocks are (definitely|possibly) lost"
        r"[^\n]*\n((?:==\d+==\s+(?:at|by) [^\n]*\n)*)"
    )
    for rec in record_re.finditer(text):
        nbytes, blocks, kind, frames = (
            num(rec.group(1)),
            num(rec.group(2)),
            rec.group(3),
            rec.group(4),
        )
        functions = re.findall(r"(?:at|by) 0x[0-9A-Fa-f]+: (\S+)", frames)
        what = f"{blocks} blocks, {nbytes} B {kind} lost via {' <- '.join(functions[:3])}"
        if kind == "definitely" and LEAK_FUNCTION in functions:
            prev = found or (0, 0)
            found = (prev[0] + blocks, prev[1] + nbytes)
        elif any(f.startswith(SITE_PREFIX) for f in functions):
            others.append(what)
        else:
            runtime.append(what)
    check = judge("valgrind", expected, found, others, runtime)
    check.details.insert(
        0, f"valgrind: LEAK SUMMARY definitely lost: {definitely[1]} B in {definitely[0]} blocks"
    )
    if definitely != expected:
        check.exact = False
    return check


def parse_heaptrack_leaks(print_output: str) -> list[tuple[int, list[str]]]:
    """The MEMORY LEAKS section of `heaptrack_print -l`: (calls, functions) per entry."""
    section = print_output.split("MEMORY LEAKS", 1)[-1]
    entries: list[tuple[int, list[str]]] = []
    # An entry header looks like "800.00K leaked over 8000 calls from" then the frames of the
    # allocating function, then (for unmerged backtraces) more "... from:" blocks.
    for m in re.finditer(
        r"^\S+ leaked over (\d+) calls from\n(.*?)(?=^\S+ leaked over|\Z|^total runtime)",
        section,
        re.S | re.M,
    ):
        functions = re.findall(r"^\s*([A-Za-z_][\w:.~<>]*)\s*$", m.group(2), re.M)
        entries.append((int(m.group(1)), functions))
    return entries


def check_heaptrack(data_file: Path, workdir: Path, expected: tuple[int, int]) -> LeakCheck:
    """Exact leaked bytes per backtrace come from the flame-graph export (cost type 'leaked');
    the block count from the number of calls of the leaking backtrace in `-l` (every call of
    leak_site leaks, so calls = blocks; heaptrack_print has no per-backtrace leaked count)."""
    stacks_file = workdir / "heaptrack-leaked-stacks.txt"
    output_of(
        [
            "heaptrack_print", "-f", str(data_file), "-p", "0", "-a", "0", "-T", "0",
            "-F", str(stacks_file), "--flamegraph-cost-type", "leaked",
        ]
    )  # fmt: skip
    leak_bytes = 0
    saw_leak_stack = False
    others: list[str] = []
    runtime: list[str] = []
    for line in stacks_file.read_text(errors="replace").splitlines():
        stack, _, cost = line.rpartition(" ")
        if not cost.isdigit():
            continue
        nbytes = int(cost)
        functions = [f.split(" (")[0] for f in stack.rstrip(";").split(";")]
        if LEAK_FUNCTION in functions:
            saw_leak_stack = True
            leak_bytes += nbytes
        elif nbytes and any(f.startswith(SITE_PREFIX) for f in functions):
            others.append(f"{nbytes} B via {' <- '.join(reversed(functions[-3:]))}")
        elif nbytes:
            runtime.append(f"{nbytes} B via {' <- '.join(reversed(functions[-3:]))}")
    text = output_of(
        ["heaptrack_print", "-f", str(data_file), "-l", "-p", "0", "-a", "0", "-T", "0"]
    )
    (workdir / "heaptrack-print-leaks.txt").write_text(text)
    leak_calls = sum(
        calls for calls, funcs in parse_heaptrack_leaks(text) if LEAK_FUNCTION in funcs
    )
    summary_m = re.search(r"total memory leaked: (\S+)", text)
    found = (leak_calls, leak_bytes) if saw_leak_stack else None
    check = judge("heaptrack", expected, found, others, runtime, blocks_note=" (blocks = calls)")
    if summary_m:
        check.details.insert(0, f"heaptrack_print: total memory leaked: {summary_m.group(1)}")
    return check


def leaktrace_cli() -> tuple[list[str], dict[str, str]]:
    """How to invoke the leaktrace CLI: installed, else from the source tree."""
    exe = shutil.which("leaktrace")
    if exe:
        return [exe], {}
    return [sys.executable, "-m", "leaktrace"], {"PYTHONPATH": str(SOURCE_TREE)}


def frame_functions(record: dict[str, object]) -> list[str]:
    frames = record.get("frames") or []
    names: list[str] = []
    if isinstance(frames, list):
        for f in frames:
            if isinstance(f, dict) and isinstance(f.get("function"), str):
                names.append(str(f["function"]))
            elif isinstance(f, str):
                names.append(f)
    return names


# Used when the CLI has no `report` command yet: the same JSON, built with the package's own
# report builder and JSON renderer (what `leaktrace report --format json` is made of).
LIBRARY_REPORT = """
import sys
from leaktrace.analyze.build_report import load_report
from leaktrace.render.json_report import render_json
from leaktrace.render.options import RenderOptions
sys.stdout.write(render_json(load_report(sys.argv[1], with_addresses=False), RenderOptions()))
"""


def leaktrace_report_json(capture: Path) -> tuple[str, str, list[str]]:
    """(json text, how it was made, problems) for one capture."""
    cli, env = leaktrace_cli()
    full_env = dict(os.environ)
    full_env.update(env)
    # Every leak kind: blocks of the leak site may be definitely or indirectly lost (a leaked
    # block's stale contents can point to another leaked block).
    argv = [*cli, "report", str(capture), "--format", "json", "--show", "all",
            "--no-default-suppressions"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=full_env, check=False)
    # A leak report may well exit non-zero when it found leaks; judge by the JSON.
    if proc.stdout.lstrip().startswith("{"):
        return proc.stdout, "leaktrace report CAPTURE --format json --show all", []
    last = (proc.stderr.strip().splitlines() or [""])[-1]
    problems = [f"`leaktrace report` exited {proc.returncode}: {last}"]
    if cli[0] != sys.executable:
        return "", "", problems
    argv = [sys.executable, "-c", LIBRARY_REPORT, str(capture)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=full_env, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [""])[-1]
        problems.append(f"library report builder failed: {last}")
        return "", "", problems
    how = "leaktrace.analyze.build_report + render.json_report (no `report` command yet)"
    return proc.stdout, how, problems


def check_leaktrace(
    capture: Path, workdir: Path, expected: tuple[int, int], tool: str = "leaktrace"
) -> LeakCheck:
    text, how, problems = leaktrace_report_json(capture)
    (workdir / "leaktrace-report.json").write_text(text)
    try:
        report = json.loads(text)
    except json.JSONDecodeError:
        return LeakCheck(False, "no: no JSON report", [f"{tool}: {p}" for p in problems])
    records = report.get("records", []) if isinstance(report, dict) else []
    found: tuple[int, int] | None = None
    leak_stack: list[str] = []
    leak_records: list[str] = []
    others: list[str] = []
    runtime: list[str] = []
    for rec in records:
        if not isinstance(rec, dict):
            continue
        functions = frame_functions(rec)
        # A definitely lost record's bytes include what it owns indirectly, which is counted
        # again in the indirectly lost records: add up the blocks' own (direct) bytes.
        direct = rec.get("direct_bytes")
        blocks = int(rec.get("blocks", 0))
        nbytes = int(direct if direct is not None else rec.get("bytes", 0))
        label = str(rec.get("kind"))
        if rec.get("leak_kind"):
            label += f", {rec.get('leak_kind')}"
        what = f"{blocks} blocks, {nbytes} B ({label}) via {' <- '.join(functions[:3])}"
        if LEAK_FUNCTION in functions:
            prev = found or (0, 0)
            found = (prev[0] + blocks, prev[1] + nbytes)
            leak_stack = functions
            leak_records.append(f"{blocks} blocks, {nbytes} B ({label})")
        elif any(f.startswith(SITE_PREFIX) for f in functions):
            others.append(what)
        else:
            runtime.append(what)
    check = judge(tool, expected, found, others, runtime)
    if len(leak_records) > 1:
        check.details.append(
            f"{tool}: {LEAK_FUNCTION} comes in {len(leak_records)} records: "
            + "; ".join(leak_records)
        )
    if leak_stack:
        # The workload is built without frame pointers: a complete backtrace shows that the
        # shim unwound through every frame with the CFI, up to the thread's entry point.
        complete = "start_thread" in leak_stack or any("clone" in f for f in leak_stack)
        check.details.append(
            f"{tool}: backtrace of {LEAK_FUNCTION}: {len(leak_stack)} frames, "
            f"{' <- '.join(leak_stack)} ({'complete' if complete else 'INCOMPLETE'})"
        )
    check.details.insert(0, f"{tool}: JSON report made with {how}")
    if problems:
        check.details.insert(1, f"{tool}: {problems[0]}")
    summary = report.get("summary", {}) if isinstance(report, dict) else {}
    if isinstance(summary, dict):
        live = summary.get("live")
        if isinstance(live, dict):  # JSON report format 1
            live_blocks, live_bytes = live.get("blocks"), live.get("bytes")
        else:
            live_blocks, live_bytes = summary.get("live_blocks"), summary.get("live_bytes")
        check.details.insert(
            1, f"{tool}: report summary: {live_blocks} live blocks, {live_bytes} live bytes"
        )
    counters = report.get("counters", {}) if isinstance(report, dict) else {}
    if isinstance(counters, dict):
        nonzero = {k: v for k, v in counters.items() if v and k != "max_depth"}
        if nonzero:
            check.details.append(f"{tool}: shim counters: {nonzero}")
    return check


# ---- the tools ------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    version: str
    iterations: int
    timing_command: str
    memory_command: str | None = None  # when peak RSS was measured by a separate, direct run
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    leak: LeakCheck | None = None
    skipped: str | None = None
    failed: str | None = None  # a run failed: the runs before it still count
    notes: list[str] = field(default_factory=list)
    reference: str | None = None  # name of the native row this one is compared with


class Tool:
    """One way of running the workload. `timed` runs are counted for wall time; their peak RSS
    counts too unless the tool needs a separate `memory` run (a launcher that is not itself the
    traced process)."""

    name = "tool"
    separate_memory_run = False

    def __init__(self, workload: Path, iterations: int, threads: int, out: Path) -> None:
        self.workload = workload
        self.iterations = iterations
        self.threads = threads
        self.out = out / re.sub(r"\W+", "-", self.name).strip("-")

    def workload_argv(self) -> list[str]:
        return [str(self.workload), "-n", str(self.iterations), "-t", str(self.threads)]

    def missing(self) -> str | None:
        return None

    def version(self) -> str:
        return ""

    def timing_command(self) -> str:
        raise NotImplementedError

    def memory_command(self) -> str | None:
        return None

    def timed(self, index: int) -> Run:
        raise NotImplementedError

    def memory(self, index: int) -> Run:
        return self.timed(index)

    def leak_check(self, run: Run, expected: tuple[int, int]) -> LeakCheck | None:
        return None

    def discard(self, run: Run) -> None:
        """Delete the bulky outputs of a run that is not leak-checked (heaptrack data files
        are tens of MB each)."""
        for path in run.workdir.iterdir():
            if path.name.startswith(("heaptrack.", "data", "valgrind.log")):
                path.unlink()
            elif path.name == "captures" and path.is_dir():
                shutil.rmtree(path)


class Native(Tool):
    name = "native"

    def timing_command(self) -> str:
        return shlex.join(self.workload_argv())

    def version(self) -> str:
        return "-"

    def timed(self, index: int) -> Run:
        return run_measured(self.workload_argv(), self.out / f"run{index}")


class NativeAt(Native):
    """Native runs at the reduced iteration count used for valgrind."""

    name = "native (valgrind size)"


class Valgrind(Tool):
    name = "valgrind memcheck"

    def missing(self) -> str | None:
        return None if shutil.which("valgrind") else "valgrind not installed"

    def version(self) -> str:
        return first_line(["valgrind", "--version"])

    def argv(self, log: str) -> list[str]:
        return ["valgrind", "--leak-check=full", f"--log-file={log}", *self.workload_argv()]

    def timing_command(self) -> str:
        return shlex.join(self.argv("LOG"))

    def timed(self, index: int) -> Run:
        workdir = self.out / f"run{index}"
        workdir.mkdir(parents=True, exist_ok=True)
        return run_measured(self.argv(str(workdir / "valgrind.log")), workdir)

    def leak_check(self, run: Run, expected: tuple[int, int]) -> LeakCheck:
        return check_valgrind(run, run.workdir / "valgrind.log", expected)


class Heaptrack(Tool):
    name = "heaptrack"
    separate_memory_run = True

    def missing(self) -> str | None:
        if not shutil.which("heaptrack"):
            return "heaptrack not installed"
        if not shutil.which("heaptrack_print"):
            return "heaptrack_print not installed"
        if not self.preload().exists() or not self.interpreter().exists():
            return f"heaptrack libraries not found next to {shutil.which('heaptrack')}"
        return None

    def version(self) -> str:
        return first_line(["heaptrack", "--version"])

    def libdir(self) -> Path:
        # Where the heaptrack script itself looks: <bindir>/../lib/heaptrack
        script = Path(shutil.which("heaptrack") or "/usr/bin/heaptrack").resolve()
        return (script.parent / ".." / "lib" / "heaptrack").resolve()

    def preload(self) -> Path:
        return self.libdir() / "libheaptrack_preload.so"

    def interpreter(self) -> Path:
        return self.libdir() / "libexec" / "heaptrack_interpret"

    def timing_command(self) -> str:
        return shlex.join(["heaptrack", "-o", "FILE", *self.workload_argv()])

    def compressor(self) -> str:
        return "zstd -c" if shutil.which("zstd") else "gzip -c"

    def memory_command(self) -> str:
        return (
            f"mkfifo FIFO; {self.interpreter()} < FIFO | {self.compressor()} > FILE & "
            f"LD_PRELOAD={self.preload()} DUMP_HEAPTRACK_OUTPUT=FIFO "
            + shlex.join(self.workload_argv())
        )

    def timed(self, index: int) -> Run:
        workdir = self.out / f"run{index}"
        workdir.mkdir(parents=True, exist_ok=True)
        for old in workdir.glob("heaptrack.*"):
            old.unlink()
        # The heaptrack script records: the program runs with the preload library, which
        # streams to heaptrack_interpret (concurrently), which is compressed into FILE.zst or
        # .gz. With no heaptrack_gui installed it does not analyse anything afterwards.
        return run_measured(
            ["heaptrack", "-o", str(workdir / "heaptrack.workload"), *self.workload_argv()], workdir
        )

    def memory(self, index: int) -> Run:
        """The same pipeline as the heaptrack script, but with the preloaded program as our own
        child, so that wait4() gives the peak RSS of the traced program alone."""
        workdir = self.out / f"mem{index}"
        workdir.mkdir(parents=True, exist_ok=True)
        fifo = workdir / "fifo"
        if fifo.exists():
            fifo.unlink()
        os.mkfifo(fifo)
        pipeline = f'"$0" < "$1" | {self.compressor()} > "$2"'
        reader = spawn(
            ["sh", "-c", pipeline, str(self.interpreter()), str(fifo), str(workdir / "data")],
            dict(os.environ),
            workdir,
            "interpret",
        )
        try:
            run = run_measured(
                self.workload_argv(),
                workdir,
                {"LD_PRELOAD": str(self.preload()), "DUMP_HEAPTRACK_OUTPUT": str(fifo)},
            )
        except BaseException:
            os.kill(reader, signal.SIGTERM)  # it may still be waiting for a writer
            os.wait4(reader, 0)
            raise
        finally:
            fifo.unlink()
        _, status, usage = os.wait4(reader, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise BenchError("heaptrack_interpret pipeline failed")
        self.interpret_rss_kib = usage.ru_maxrss
        return run

    def leak_check(self, run: Run, expected: tuple[int, int]) -> LeakCheck:
        files = sorted(run.workdir.glob("heaptrack.workload.*"))
        if not files:
            return LeakCheck(False, "no: heaptrack wrote no data file")
        return check_heaptrack(files[0], run.workdir, expected)


class Leaktrace(Tool):
    """leaktrace, either through its CLI (`leaktrace run`, a launcher: peak RSS then comes from
    separate direct runs) or by preloading the shim directly."""

    name = "leaktrace"

    def __init__(
        self,
        workload: Path,
        iterations: int,
        threads: int,
        out: Path,
        shim: Path | None,
        cli: tuple[list[str], dict[str, str]] | None = None,
        measure_memory: bool = True,
    ) -> None:
        super().__init__(workload, iterations, threads, out)
        self.shim = shim
        self.cli = cli
        self.measure_memory = measure_memory
        self.separate_memory_run = cli is not None and measure_memory

    def missing(self) -> str | None:
        if self.cli is None or self.separate_memory_run:
            if self.shim is None:
                return "no shim: pass --shim or set LEAKTRACE_SHIM"
            if not self.shim.exists():
                return f"shim not built: {self.shim} does not exist"
        return None

    def version(self) -> str:
        cli, env = self.cli or leaktrace_cli()
        try:
            text = output_of([*cli, "--version"], env=env, timeout=60).strip()
        except (BenchError, OSError, subprocess.TimeoutExpired):
            m = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
            text = f"leaktrace {m.group(1)} (pyproject.toml)" if m else "leaktrace"
        try:
            rev = output_of(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]).strip()
            dirty = output_of(
                ["git", "-C", str(REPO), "status", "--porcelain", "--", "src", "shim"]
            ).strip()
            text += f", source tree at git {rev}"
            if dirty:
                text += " with uncommitted changes in src/ or shim/ (others' work in progress)"
        except (BenchError, OSError):
            pass
        if self.shim is not None and self.shim.exists():
            built = dt.datetime.fromtimestamp(self.shim.stat().st_mtime, dt.timezone.utc)
            text += f", shim {shown(str(self.shim))} built {built.strftime('%Y-%m-%d %H:%M UTC')}"
        return text

    def direct_env(self, capture_dir: Path) -> dict[str, str]:
        assert self.shim is not None
        return {"LD_PRELOAD": str(self.shim), "LEAKTRACE_DIR": str(capture_dir)}

    def direct_command(self) -> str:
        return f"LEAKTRACE_DIR=DIR LD_PRELOAD={self.shim} " + shlex.join(self.workload_argv())

    def cli_argv(self, capture: str, report: str) -> list[str]:
        assert self.cli is not None
        return [
            *self.cli[0], "run", "-o", capture, "--report-file", report,
            "--", *self.workload_argv(),
        ]  # fmt: skip

    def timing_command(self) -> str:
        if self.cli is None:
            return self.direct_command()
        env = " ".join(f"{k}={v}" for k, v in self.cli[1].items())
        argv = self.cli_argv("CAPTURE", "REPORT")
        if argv[0] == sys.executable:
            argv[0] = "python3"
        return (env + " " if env else "") + shlex.join(argv)

    def memory_command(self) -> str | None:
        return self.direct_command() if self.separate_memory_run else None

    def fresh_dir(self, workdir: Path) -> Path:
        capture_dir = workdir / "captures"
        if capture_dir.exists():
            shutil.rmtree(capture_dir)
        capture_dir.mkdir(parents=True)
        return capture_dir

    def timed(self, index: int) -> Run:
        workdir = self.out / f"run{index}"
        capture_dir = self.fresh_dir(workdir)
        if self.cli is None:
            return run_measured(self.workload_argv(), workdir, self.direct_env(capture_dir))
        argv = self.cli_argv(str(capture_dir / "capture.lt"), str(workdir / "report.txt"))
        return run_measured(argv, workdir, self.cli[1])

    def memory(self, index: int) -> Run:
        if not self.separate_memory_run:
            return self.timed(index)
        workdir = self.out / f"mem{index}"
        return run_measured(self.workload_argv(), workdir, self.direct_env(self.fresh_dir(workdir)))

    def leak_check(self, run: Run, expected: tuple[int, int]) -> LeakCheck:
        captures = sorted(p for p in (run.workdir / "captures").rglob("*") if p.is_file())
        if not captures:
            return LeakCheck(False, "no: no capture file written")
        check = check_leaktrace(captures[-1], run.workdir, expected, self.name)
        if len(captures) > 1:
            check.details.append(
                f"{self.name}: {len(captures)} capture files; checked {captures[-1].name}"
            )
        return check


class LeaktraceCli(Leaktrace):
    """`leaktrace run` (installed, else `python3 -m leaktrace run` from the source tree): the
    whole user-visible cost, launcher and end-of-run report included."""

    name = "leaktrace run (CLI)"
    unusable: str | None = None

    def missing(self) -> str | None:
        return self.unusable or super().missing()


def source_tree_cli(shim: Path) -> tuple[tuple[list[str], dict[str, str]], str | None]:
    """The CLI from the source tree, and why it cannot be used (None if it can)."""
    cli = [sys.executable, "-m", "leaktrace"]
    env = {"PYTHONPATH": str(SOURCE_TREE), "LEAKTRACE_SHIM": str(shim)}
    try:
        output_of([*cli, "run", "--help"], env=env, timeout=60)
    except (BenchError, OSError, subprocess.TimeoutExpired) as e:
        last = (str(e).strip().splitlines() or [""])[-1][-200:]
        return (cli, env), f"`python3 -m leaktrace run --help` failed: {last}"
    return (cli, env), None


def installed_shim(exe: str) -> Path | None:
    """The shim the installed CLI would preload, asked of the Python that runs the CLI."""
    try:
        first = Path(exe).read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return None
    if not first.startswith("#!"):
        return None
    code = "from leaktrace.shim_library import find_shim_library as f; print(f())"
    try:
        return Path(output_of([*shlex.split(first[2:]), "-c", code], timeout=60).strip())
    except (BenchError, OSError, subprocess.TimeoutExpired):
        return None


# ---- the report -----------------------------------------------------------------------------


def machine_description() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"CPU: {cpu}, {os.cpu_count()} logical CPUs (shared, virtualised machine)"
        + (f", {mem}" if mem else ""),
        f"Kernel: {platform.system()} {platform.release()}",
        f"C library: {first_line(['ldd', '--version'])}",
        f"Compiler: {first_line(['gcc', '--version'])}",
        f"Python: {platform.python_version()}",
        f"Load average when the benchmark started: {load}",
    ]


def fmt_seconds(s: float) -> str:
    return f"{s:.2f} s" if s >= 1 else f"{s * 1000:.0f} ms"


def fmt_mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def render(
    results: list[Result],
    args: argparse.Namespace,
    machine: list[str],
    build_command: str,
    started: dt.datetime,
    elapsed: float,
) -> str:
    by_name = {r.name: r for r in results}
    lines: list[str] = []
    add = lines.append
    add("# Benchmarks")
    add("")
    add(
        "Generated by `bench/run.py`; do not edit by hand, re-run it. Timings come from a shared, "
        "noisy machine: treat them as indications, and compare ratios measured in the same run "
        "rather than absolute times across runs."
    )
    add("")
    add("## Results")
    add("")
    add(
        "| Tool | Iterations per thread | Median wall time (min-max) | x native | "
        "Median CPU time (x native) | "
        "Peak RSS of the traced process | x native peak | Found exactly the deliberate leak |"
    )
    add("|---|---|---|---|---|---|---|---|")
    for r in results:
        if r.skipped:
            add(f"| {r.name} | - | skipped: {r.skipped} | | | | | |")
            continue
        ref = by_name.get(r.reference or "native")
        t = statistics.median(r.times) if r.times else float("nan")
        rss = statistics.median(r.rss_kib) if r.rss_kib else float("nan")
        tref = statistics.median(ref.times) if ref and ref.times else float("nan")
        rref = statistics.median(ref.rss_kib) if ref and ref.rss_kib else float("nan")
        time_cell = f"{fmt_seconds(t)} ({fmt_seconds(min(r.times))}-{fmt_seconds(max(r.times))})"
        if r.reference:
            # Measured with fewer iterations: also give the time scaled to the full count.
            full = by_name.get("native")
            if full and full.times:
                time_cell += f"; ~{fmt_seconds(t / tref * statistics.median(full.times))} scaled"
        cpu = statistics.median(r.cpu) if r.cpu else float("nan")
        cref = statistics.median(ref.cpu) if ref and ref.cpu else float("nan")
        cpu_cell = fmt_seconds(cpu) + ("" if r is ref else f" ({cpu / cref:.2f})")
        leak = r.leak.summary if r.leak else "-"
        if r.failed:
            leak += f" ({r.failed} of {args.runs}, see notes)"
        ratio_t = "1.00" if r is ref else f"{t / tref:.2f}"
        ratio_m = "1.00" if r is ref else f"{rss / rref:.2f}"
        rss_cell = fmt_mib(rss)
        if not r.rss_kib:
            rss_cell, ratio_m = "not measured", "-"
            if r.name.startswith("leaktrace"):
                rss_cell = "same process as the leaktrace row"
        add(
            f"| {r.name} | {r.iterations:,} | {time_cell} | {ratio_t} | {cpu_cell} | "
            f"{rss_cell} | {ratio_m} | {leak} |"
        )
    add("")
    add(
        f"{args.threads} threads; {args.runs} timed runs per tool (median shown), "
        f"{args.memory_runs} extra direct run(s) per tool whose timed command is a launcher. "
        "Ratios are against the native row with the same iteration count. CPU time is user + "
        "system time from `wait4()` (including helper processes the command waits for, such as "
        "heaptrack_interpret); on this 2-CPU machine the 4 workload threads compete for the "
        "CPUs, so CPU time is the steadier measure of the work a tracer adds, wall time the one "
        "a user waits for."
    )
    valgrind = by_name.get("valgrind memcheck")
    if valgrind and not valgrind.skipped:
        add("")
        add(
            f"**valgrind runs with fewer iterations** ({valgrind.iterations:,} per thread instead "
            f"of {args.iterations:,}) to keep the benchmark short. Its ratios are against native "
            'runs of that same reduced count (row "native (valgrind size)"), and the "scaled" '
            "time is that ratio times the full-size native median. valgrind's fixed start-up cost "
            "(about half a second) weighs more in a shorter run, so the ratio is somewhat "
            "pessimistic for valgrind; the peak RSS barely depends on the iteration count "
            "because the workload's live set is bounded by its rings."
        )
    add("")
    add("### Targets")
    add("")
    add("The project's targets: leaktrace at most 3x native wall time with full stacks, and a "
        "tracer peak memory at most 2x native; for reference, heaptrack is usually quoted at "
        "about 6.6x and valgrind memcheck at about 26x.")  # fmt: skip
    add("")
    native = by_name.get("native")
    for r in results:
        if r.skipped or r.name.startswith("native") or not native or not native.times:
            continue
        ref = by_name.get(r.reference or "native") or native
        tr = statistics.median(r.times) / statistics.median(ref.times)
        mr = (
            statistics.median(r.rss_kib) / statistics.median(ref.rss_kib)
            if r.rss_kib and ref.rss_kib
            else float("nan")
        )
        if r.name == "leaktrace":
            verdict_t = "meets" if tr <= 3 else "misses"
            verdict_m = "meets" if mr <= 2 else "misses"
            add(f"- leaktrace: {tr:.2f}x native time ({verdict_t} the 3x target), "
                f"{mr:.2f}x native peak RSS ({verdict_m} the 2x target).")  # fmt: skip
        elif r.name.startswith("leaktrace"):
            add(f"- {r.name}: {tr:.2f}x native time, including the Python launcher's start-up "
                "and the symbolized report it prints at the end.")  # fmt: skip
        else:
            quoted = "6.6x" if r.name == "heaptrack" else "26x"
            add(f"- {r.name}: {tr:.2f}x native time here (quoted: about {quoted}), "
                f"{mr:.2f}x native peak RSS.")  # fmt: skip
    if "leaktrace" not in by_name or by_name["leaktrace"].skipped:
        add("- leaktrace: not measured in this run (see the table).")
    add("")
    add("## Workload")
    add("")
    add(
        "`bench/workload.c`: each thread makes ITERATIONS allocations from 15 sites chosen at "
        "random (xorshift64*, fixed seed), each site reached through its own chain of noinline "
        "functions 3 to 12 frames deep: malloc (4 sites), calloc (2), realloc chains growing and "
        "shrinking, reallocarray, posix_memalign, aligned_alloc, memalign, valloc and 64 KiB "
        "anonymous mmap/munmap. Sizes run from 8 B to 64 KiB, 85% of them at most 256 B. Each "
        "new block replaces the oldest of a ring of 4096 live blocks per thread, which is freed "
        "(free or munmap), so memory stays bounded. The one deliberate leak: every 1000th "
        "iteration of each thread, `leak_site` allocates 100 bytes and drops the pointer, so "
        "threads x ITERATIONS/1000 blocks of 100 B leak; the workload prints that total and the "
        "rings are emptied at the end. It is built without frame pointers, so tracers must "
        "unwind with DWARF CFI (`.eh_frame`)."
    )
    add("")
    add("## Machine and versions")
    add("")
    date = started.strftime("%Y-%m-%d %H:%M UTC")
    add(f"- Date: {date}; the benchmark took {elapsed / 60:.1f} min")
    for m in machine:
        add(f"- {m}")
    end_load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    add(f"- Load average when it ended: {end_load} (other work on the machine shows up here)")
    for r in results:
        if not r.name.startswith("native"):
            add(f"- {r.name}: {r.version if not r.skipped else 'skipped: ' + str(r.skipped)}")
    add("")
    add("## Commands")
    add("")
    add("```sh")
    add(f"# the benchmark itself\n{args.invocation}")
    add(f"# build\n{build_command}")
    for r in results:
        if r.skipped:
            continue
        rss_too = ", peak RSS" if r.rss_kib and not r.memory_command else ""
        add(f"# {r.name}: timed runs (wall time{rss_too})")
        add(r.timing_command)
        if r.memory_command:
            add(f"# {r.name}: peak RSS, the traced program as a direct child (wait4 ru_maxrss)")
            add(r.memory_command)
    add("```")
    add("")
    add(
        "Wall time is measured around spawning the command and reaping it with `wait4()`. Peak "
        "RSS is `ru_maxrss` from that `wait4()`: for native and valgrind (which runs the "
        "program inside its own process) and leaktrace (the shim preloaded directly) the timed "
        "runs give it directly. The heaptrack script is a launcher, not the traced process, so "
        "its peak RSS comes from separate runs of the preloaded program as a direct child, fed "
        "the same way the script would feed it. The heaptrack timing is its "
        "recording run only: the script streams to `heaptrack_interpret` and compresses while "
        "the program runs, and with no `heaptrack_gui` installed it analyses nothing "
        "afterwards; `heaptrack_print` is run afterwards, untimed, for the leak check."
    )
    cli_row = by_name.get(LeaktraceCli.name)
    if cli_row and not cli_row.skipped:
        where = "from the source tree" if "PYTHONPATH" in cli_row.timing_command else "installed"
        add("")
        add(
            f'The "{cli_row.name}" row runs the command-line tool {where}, as a user would: it '
            "starts Python, launches the program with the shim, then reads the capture, "
            "symbolizes it and writes the text report, all inside the timed command. Its traced "
            "process is the same as the leaktrace row's, so its peak RSS is not measured again."
        )
    add("")
    add("Leak checks (untimed, on the first timed run of each tool): valgrind's `definitely "
        "lost` records; heaptrack: exact bytes per backtrace from `heaptrack_print -F FILE "
        "--flamegraph-cost-type leaked`, block count = calls of that backtrace from "
        "`heaptrack_print -l`; leaktrace: `leaktrace report CAPTURE --format json`. \"yes\" means "
        "the records whose backtrace passes through `leak_site` add up to exactly the expected "
        "blocks and bytes and no other workload allocation site is reported as leaking. Blocks "
        "that the C runtime itself still holds at exit (e.g. glibc's per-thread DTV arrays, "
        "kept with its cache of thread stacks) are listed in the notes, not counted against "
        "the tool.")  # fmt: skip
    notes = [n for r in results for n in r.notes] + [
        d for r in results if r.leak for d in r.leak.details
    ]
    if notes:
        add("")
        add("## Notes from this run")
        add("")
        for n in notes:
            add(f"- {n}")
    add("")
    return "\n".join(lines)


# ---- main -----------------------------------------------------------------------------------


def build_workload(out: Path) -> tuple[Path, str]:
    out.mkdir(parents=True, exist_ok=True)
    exe = out / "workload"
    argv = ["gcc", *CFLAGS, "-o", str(exe), str(WORKLOAD_SOURCE)]
    output_of(argv)
    return exe, shlex.join(["gcc", *CFLAGS, "-o", "bench/out/workload", "bench/workload.c"])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="timed runs per tool (default 5)")
    p.add_argument(
        "--memory-runs",
        type=int,
        default=3,
        help="direct runs for peak RSS, for tools timed through a launcher (default 3)",
    )
    p.add_argument(
        "--iterations", type=int, default=2_000_000, help="per thread (default 2,000,000)"
    )
    p.add_argument("--threads", type=int, default=4, help="workload threads (default 4)")
    p.add_argument(
        "--valgrind-fraction",
        type=float,
        default=0.2,
        help="valgrind runs this fraction of the iterations (default 0.2)",
    )
    p.add_argument(
        "--tools",
        default="native,leaktrace,heaptrack,valgrind",
        help="comma-separated subset of native,leaktrace,heaptrack,valgrind",
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
    if args.quick:
        args.iterations = min(args.iterations, 100_000)
        args.runs = min(args.runs, 2)
        args.memory_runs = min(args.memory_runs, 1)
    if args.output is None:
        args.output = (
            args.out / "benchmarks-quick.md" if args.quick else REPO / "docs" / "benchmarks.md"
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
    unknown = set(args.tools) - {"native", "leaktrace", "heaptrack", "valgrind"}
    if unknown:
        p.error(f"unknown tools: {', '.join(sorted(unknown))}")
    args.invocation = "python3 bench/run.py" + (
        " " + shlex.join(list(argv) if argv is not None else sys.argv[1:])
        if (argv if argv is not None else sys.argv[1:])
        else ""
    )
    return args


def shown(text: str) -> str:
    """A command or path as shown in the report: snapshot copies under their original names,
    paths inside the repository relative to it."""
    for used, original in DISPLAY_PATHS:
        text = text.replace(used, original)
    return text.replace(f"{REPO}/", "")


def relative(command: str | None) -> str | None:
    return shown(command) if command is not None else None


def snapshot_leaktrace(shim: Path, scratch: Path) -> Path:
    """Copy the shim and the Python package; return the shim copy."""
    global SOURCE_TREE
    base = scratch / "leaktrace-snapshot"
    (base / "src").mkdir(parents=True)
    shim_copy = base / shim.name
    shutil.copy2(shim, shim_copy)
    shutil.copytree(
        REPO / "src" / "leaktrace",
        base / "src" / "leaktrace",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    SOURCE_TREE = base / "src"
    DISPLAY_PATHS.append((str(shim_copy), str(shim)))
    DISPLAY_PATHS.append((str(SOURCE_TREE), str(REPO / "src")))
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
    workload, build_command = build_workload(out)
    log(f"built {workload}")

    n, threads = args.iterations, args.threads
    vg_n = max(1000, round(n * args.valgrind_fraction))
    tools: list[Tool] = []
    references: dict[str, str] = {}
    # Native is always measured: everything is relative to it.
    tools.append(Native(workload, n, threads, scratch))
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
        tools.append(Leaktrace(workload, n, threads, scratch, shim))
        problem: str | None = None
        if exe:
            cli = ([exe], {} if own_shim else {"LEAKTRACE_SHIM": str(shim)})
        else:
            cli, problem = source_tree_cli(shim)
        cli_tool = LeaktraceCli(workload, n, threads, scratch, shim, cli, measure_memory=False)
        cli_tool.unusable = problem
        tools.append(cli_tool)
    if "heaptrack" in args.tools:
        tools.append(Heaptrack(workload, n, threads, scratch))
    if "valgrind" in args.tools:
        if vg_n != n:
            tools.append(NativeAt(workload, vg_n, threads, scratch))
            references[Valgrind.name] = NativeAt.name
        tools.append(Valgrind(workload, vg_n, threads, scratch))

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
            if exp is None:
                r.notes.append(f"{tool.name}: run {i + 1} printed no expected-leak line")
            elif tool.iterations == n:
                expected = exp
            if i > 0:
                tool.discard(run)
            if i == 0 and exp is not None:
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
