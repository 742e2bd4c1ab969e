"""Nothing of leaktrace's stays behind in the temporary directory or the control directory
once both sides are gone, even when leaktrace itself is killed with SIGKILL: the launcher's
capture notices and attach's settings and notices are files without a name (reached through
/proc/<leaktrace pid>/fd), and the socket of a process that could not remove it is removed
by the leaktrace command that sees the process gone."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from attach_harness import AttachRun, Server
from companion_helpers import compile_c
from leakharness import LEAKTRACE
from liveharness import wait_for_control_socket

SLOW = r"""
#include <stdlib.h>
#include <unistd.h>
void * volatile sink;
int main(void) { sink = malloc(10); sleep(2); sink = malloc(33); sink = 0; return 0; }
"""


def _isolated(tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    temp, control = tmp_path / "tmp", tmp_path / "ctl"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "LEAKTRACE_CONTROL_DIR": str(control)}
    return env, temp, control


def _gone(pid: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still runs")


def _run_slow(tmp_path: Path, env: dict[str, str], control: Path
              ) -> tuple[subprocess.Popen[bytes], int]:
    """`leaktrace run` of SLOW, and the program's pid once its control socket is up."""
    exe = compile_c(tmp_path, SLOW, "slow")
    run = subprocess.Popen([*LEAKTRACE, "run", "--", str(exe)], cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pid = wait_for_control_socket(control)
    assert len(list(control.glob("*.sock"))) == 1  # one program, one socket
    return run, pid


def test_run_killed_with_sigkill_leaves_no_temporary_file(tmp_path: Path) -> None:
    """SIGKILL of leaktrace kills the program too (as `kill -9` of the program's pid would
    without leaktrace): no temporary file is left; the program, killed, wrote no capture."""
    env, temp, control = _isolated(tmp_path)
    run, program = _run_slow(tmp_path, env, control)
    run.send_signal(signal.SIGKILL)
    run.communicate()
    _gone(program)
    assert list(temp.iterdir()) == []
    assert not list(tmp_path.glob(f"leaktrace-slow.{program}.lt"))


def test_program_killed_with_sigkill_leaves_no_socket(tmp_path: Path) -> None:
    env, temp, control = _isolated(tmp_path)
    run, program = _run_slow(tmp_path, env, control)
    os.kill(program, signal.SIGKILL)
    run.communicate(timeout=60)
    assert run.returncode == -signal.SIGKILL  # leaktrace ends the way the program did
    assert list(temp.iterdir()) == []
    assert list(control.iterdir()) == []


def test_attach_killed_with_sigkill_leaves_nothing(build_dir: Path, tmp_path: Path) -> None:
    env, temp, control = _isolated(tmp_path)
    server = Server.start(build_dir, tmp_path)
    try:
        run = AttachRun(server.pid, env=env, cwd=tmp_path)
        run.wait_attached()
        server.leak(3)
        run.interrupt(signal.SIGKILL)
        run.finish()
        assert list(temp.iterdir()) == []  # no settings file
        assert [p.name for p in control.iterdir()] == [f"{server.pid}.sock"]  # no notices
        done = subprocess.run([*LEAKTRACE, "detach", str(server.pid)], capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert server.quit()[0] == 7
        assert list(temp.iterdir()) == []
        assert sorted(p.name for p in control.iterdir()) in ([], [f"{server.pid}.sock"])
        # The process is gone: the next command that looks cleans its socket up.
        subprocess.run([*LEAKTRACE, "ps"], env=env, capture_output=True, timeout=60,
                       check=False)
        assert list(control.iterdir()) == []
    finally:
        server.kill()
