"""The program reads its own thread count in /proc as it would natively: the shim's control
thread is left out of /proc/PID/stat and /proc/PID/status (shim/own_proc.c)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from leakharness import LEAKTRACE, compile_program


def _tasks(stderr: str) -> int:
    found = re.search(r"^tasks (\d+)$", stderr, re.MULTILINE)
    assert found, stderr
    return int(found.group(1))


def _untraced_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LEAKTRACE_")}


@pytest.mark.parametrize("threads", ["0", "2"])
@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_the_program_reads_its_thread_count_as_natively(tmp_path: Path, opt: str,
                                                        threads: str) -> None:
    """fopen, open (fortified at -O2: __open_2), openat, of self/stat, self/status,
    thread-self/stat, PID/status and a task's stat: each count as natively, while the shim's
    thread is there (one more entry in /proc/self/task, which is not hidden)."""
    extra = ["-D_FORTIFY_SOURCE=2"] if opt == "-O2" else []
    exe = compile_program("own_thread_count.c", tmp_path, opt, extra)
    native = subprocess.run([str(exe), threads], capture_output=True, text=True, timeout=60,
                            env=_untraced_env())
    assert native.returncode == 0, native.stderr
    assert native.stdout.count(f": {1 + int(threads)}\n") == 15, native.stdout
    traced = subprocess.run([*LEAKTRACE, "run", "-o", str(tmp_path / "count.lt"), "--", str(exe),
                             threads], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert traced.returncode == 0, traced.stderr
    assert traced.stdout == native.stdout
    assert _tasks(traced.stderr) == _tasks(native.stderr) + 1, traced.stderr


def _python_that_warns_at_fork() -> str | None:
    """A Python 3.12 or later (they warn when os.fork() finds other threads), if one runs here
    (a pyenv shim on PATH may name a version that is not installed)."""
    names = [shutil.which(name) for name in ("python3.14", "python3.13", "python3.12")]
    installed = sorted((Path.home() / ".pyenv" / "versions").glob("3.1[2-9]*/bin/python3"))
    for candidate in [*(name for name in names if name), *map(str, installed)]:
        runs = subprocess.run([candidate, "-c", "pass"], capture_output=True, timeout=60,
                              env=_untraced_env())
        if runs.returncode == 0:
            return candidate
    return None


FORK_SCRIPT = """
import os
pid = os.fork()
if pid == 0:
    os._exit(7)
print("child", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_python_forks_without_the_multithreaded_warning(tmp_path: Path) -> None:
    """Python 3.12+ prints a DeprecationWarning after os.fork() in a process whose
    /proc/self/stat counts more than one thread; under leaktrace it did at every fork (the
    shim's thread)."""
    python = _python_that_warns_at_fork()
    if python is None:
        pytest.skip("no Python 3.12 or later here")
    command = [python, "-c", FORK_SCRIPT]
    native = subprocess.run(command, capture_output=True, text=True, timeout=60,
                            env=_untraced_env())
    assert (native.returncode, native.stdout, native.stderr) == (0, "child 7\n", "")
    traced = subprocess.run([*LEAKTRACE, "run", "-o", str(tmp_path / "py.lt"), "--", *command],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert (traced.returncode, traced.stdout) == (0, "child 7\n"), traced.stderr
    assert "Warning" not in traced.stderr and "Traceback" not in traced.stderr, traced.stderr
