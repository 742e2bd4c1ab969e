"""Helpers for the attach tests: tests/programs/attach_server.c started untraced (attach
comes later), clients that talk to it over loopback TCP, background load that checks every
answer, and `leaktrace attach` run in the background with its stderr followed line by line."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from leakharness import LEAKTRACE, compile_program

SERVER_SOURCE = "attach_server.c"
# Generous limits so a slow CI machine never fails a test; nothing here measures speed.
START_TIMEOUT = 120.0
ANSWER_TIMEOUT = 60.0


def attach_env(control_dir: Path) -> dict[str, str]:
    return {**os.environ, "LEAKTRACE_CONTROL_DIR": str(control_dir)}


class Client:
    """One connection to the server; one answer line per request."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT)
        self.reader = self.sock.makefile("r", encoding="ascii")

    def request(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\n")
        answer = self.reader.readline()
        assert answer.endswith("\n"), f"no answer to {line!r}"
        return answer.rstrip("\n")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class Server:
    """attach_server as `process` runs it: on its own (start()), as another user, or under
    `leaktrace run`, whose stdout is the server's."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        assert process.stdout is not None
        first = process.stdout.readline().split()
        assert first and first[0] == "port", first
        self.port = int(first[1])
        self.pid = process.pid
        self.leaks_sent = 0
        self.client = Client(self.port)

    @classmethod
    def start(cls, build_dir: Path, work: Path, *, prefix: tuple[str, ...] = (),
              exe: Path | None = None) -> Server:
        """Compiled (unless `exe` is given) and started untraced, after `prefix` (setpriv...)."""
        exe = exe or compile_program(SERVER_SOURCE, build_dir, "-O2")
        return cls(subprocess.Popen([*prefix, str(exe)], stdout=subprocess.PIPE, text=True,
                                    cwd=work))

    def leak(self, count: int = 1) -> None:
        """`count` leak requests, each answered (so each block exists) before the next."""
        for _ in range(count):
            self.leaks_sent += 1
            assert self.client.request("leak") == f"leaked {self.leaks_sent}"

    def check_answers(self) -> None:
        assert self.client.request("work 10") == "sum 55"

    def quit(self) -> tuple[int, str]:
        """Ask the server to exit; (its exit status, the rest of its stdout)."""
        assert self.client.request("quit") == "bye"
        self.client.close()
        out, _ = self.process.communicate(timeout=START_TIMEOUT)
        return self.process.returncode, out

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Load:
    """Threads that keep sending `work N` requests and check every answer, so allocations
    and frees happen on every server thread while attach and detach run."""

    def __init__(self, port: int, threads: int = 3) -> None:
        self.stop_event = threading.Event()
        self.errors: list[str] = []
        self.answered = 0
        self.threads = [threading.Thread(target=self._run, args=(port,), daemon=True)
                        for _ in range(threads)]
        for thread in self.threads:
            thread.start()

    def _run(self, port: int) -> None:
        try:
            client = Client(port)
            n = 0
            while not self.stop_event.is_set():
                n = n % 40 + 1
                answer = client.request(f"work {n}")
                if answer != f"sum {n * (n + 1) // 2}":
                    self.errors.append(f"work {n} answered {answer!r}")
                self.answered += 1
            client.close()
        except (OSError, AssertionError) as e:
            self.errors.append(f"load client failed: {e!r}")

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(ANSWER_TIMEOUT)
        assert not self.errors, self.errors
        assert self.answered > 0


class AttachRun:
    """`leaktrace attach PID ...` in the background; stderr lines arrive on a queue."""

    def __init__(self, pid: int, *args: str, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen([*LEAKTRACE, "attach", str(pid), *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=env, cwd=cwd)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self.stdout = ""
        self._out_thread = threading.Thread(target=self._read_stdout, daemon=True)
        self._err_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._out_thread.start()
        self._err_thread.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        self.stdout = self.process.stdout.read()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_line(self, text: str, timeout: float = START_TIMEOUT) -> bool:
        """Until a stderr line containing `text` (True) or the end of stderr (False)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no {text!r} line in time: {''.join(self.stderr)}"
                                     ) from None
            if line is None:
                return False
            if text in line:
                return True

    def wait_attached(self) -> None:
        assert self.wait_for_line("leaktrace: attached to"), "".join(self.stderr)

    def interrupt(self, sig: int = signal.SIGINT) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)

    def finish(self, timeout: float = 120) -> int:
        code = self.process.wait(timeout)
        self._out_thread.join(timeout)
        self._err_thread.join(timeout)
        return code

    @property
    def error_text(self) -> str:
        return "".join(self.stderr)
