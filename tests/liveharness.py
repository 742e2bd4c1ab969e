"""Helpers for tests that drive a long-running traced program: start tests/programs/
request_server.c under `leaktrace run` with its own control directory, send it requests one
line at a time (each answered when done, so a test knows what was allocated when), and run
leaktrace client commands against it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from leakharness import LEAKTRACE, compile_program

SOCKET_WAIT = 30.0  # seconds for the server to start and open its socket (not a measurement)


def wait_for_control_socket(control: Path) -> int:
    """The pid of the traced program whose control socket appears in `control`."""
    deadline = time.monotonic() + SOCKET_WAIT
    while not (control.exists() and list(control.glob("*.sock"))):
        assert time.monotonic() < deadline, "the program never started"
        time.sleep(0.02)
    return int(next(control.glob("*.sock")).name.split(".")[0])


def control_env(control_dir: Path) -> dict[str, str]:
    env = os.environ.copy()
    env["LEAKTRACE_CONTROL_DIR"] = str(control_dir)
    return env


class LiveServer:
    """request_server running under `leaktrace run -o CAPTURE --interval SECONDS`."""

    def __init__(self, build_dir: Path, work: Path, *, interval: str = "0.1",
                 extra: tuple[str, ...] = (), control_dir: Path | None = None) -> None:
        self.exe = compile_program("request_server.c", build_dir, "-O0")
        self.work = work
        self.control_dir = control_dir or work / "ctl"
        self.capture = work / "server.lt"
        self.env = control_env(self.control_dir)
        self.answers: list[str] = []
        self.process = subprocess.Popen(
            [*LEAKTRACE, "run", "-o", str(self.capture), "--interval", interval, *extra, "--",
             str(self.exe)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=work, env=self.env)
        self.pid = self._wait_for_socket()

    def _wait_for_socket(self) -> int:
        deadline = time.monotonic() + SOCKET_WAIT
        while time.monotonic() < deadline:
            sockets = list(self.control_dir.glob("*.sock")) if self.control_dir.exists() else []
            if sockets:
                return int(sockets[0].name.split(".")[0])
            if self.process.poll() is not None:
                _out, err = self.process.communicate()
                raise AssertionError(f"the server ended early: {err}")
            time.sleep(0.02)
        self.process.kill()
        raise AssertionError("the traced server never opened its control socket")

    def request(self, line: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer == f"ok {line}\n", answer
        self.answers.append(answer)
        return answer

    def leaktrace(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*LEAKTRACE, *args], capture_output=True, text=True,
                              env=self.env, cwd=self.work, timeout=timeout)

    def json(self, *args: str) -> dict[str, Any]:
        done = self.leaktrace(*args, "--format", "json")
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def status(self) -> dict[str, Any]:
        return self.json("status", str(self.pid))

    def quit(self) -> tuple[int, str, str]:
        """(exit status of `leaktrace run`, the program's whole stdout, run's stderr)."""
        stdout, stderr = self.process.communicate("quit\n", timeout=120)
        return self.process.returncode, "".join(self.answers) + stdout, stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def python_for(user: str, src: Path) -> str | None:
    """An interpreter that `user` may run and that imports leaktrace's control client from
    its installed copy or from `src` (ours may sit in root's home, out of their reach)."""
    probe = f"import sys; sys.path.insert(0, {str(src)!r}); import leaktrace.control.client"
    for candidate in (sys.executable, "/usr/bin/python3"):
        done = subprocess.run(["runuser", "-u", user, "--", candidate, "-c", probe],
                              capture_output=True)
        if done.returncode == 0:
            return candidate
    return None
