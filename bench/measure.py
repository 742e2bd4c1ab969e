"""Running one process and measuring it: wall time, CPU time and peak RSS from wait4()."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

EXPECTED_RE = re.compile(r"expected leak: (\d+) blocks, (\d+) bytes")
# The workloads print their own VmHWM at the end. wait4()'s ru_maxrss cannot be used for a
# small program: posix_spawn's child shares the parent's memory until it execs, and exec
# carries that high-water mark (the benchmark's Python, ~17 MiB) into the child's maxrss.
PEAK_RE = re.compile(r"^peak rss: (\d+) KiB$", re.M)
# Environment every measured run gets (the workload's, e.g. PYTHONMALLOC=malloc), set once by
# run.py before the first run.
WORKLOAD_ENV: dict[str, str] = {}


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
    env.update(WORKLOAD_ENV)
    env.update(extra_env or {})
    start = time.perf_counter()
    pid = spawn(argv, env, workdir, name)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - start
    stderr = (workdir / f"{name}.stderr").read_text(errors="replace")
    peak = PEAK_RE.search(stderr)
    run = Run(
        argv=list(argv),
        seconds=seconds,
        maxrss_kib=int(peak.group(1)) if peak else usage.ru_maxrss,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        exit_code=os.waitstatus_to_exitcode(status),
        stdout=(workdir / f"{name}.stdout").read_text(errors="replace"),
        stderr=stderr,
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


