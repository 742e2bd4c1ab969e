"""The control socket stays out of the program's way: a daemon that closes every
descriptor and dup2s its own listening socket over every number keeps all its clients (the
shim never accepts on a number that is no longer its socket), and the shim opens its socket
again so `status` still answers. A client that sends its command a byte at a time cannot
hold the control thread."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from leakharness import LEAKTRACE, compile_program, leaktrace

CLIENTS = 40


def _wait_for(path: Path, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


def _serve_clients(path: Path) -> int:
    served = 0
    for _ in range(CLIENTS):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.settimeout(10)
            c.connect(str(path))
            c.sendall(b"hello\n")
            if c.recv(64) == b"served\n":
                served += 1
            time.sleep(0.01)
    return served


def _status(pid: int, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LEAKTRACE, "status", "--format", "json", str(pid)], capture_output=True,
                          text=True, env=env, timeout=60, check=False)


@pytest.mark.parametrize("mode", ["fork", "nofork"])
def test_daemon_that_takes_every_descriptor_keeps_its_clients(
        build_dir: Path, tmp_path: Path, mode: str) -> None:
    exe = compile_program("fd_daemon.c", build_dir, "-O2")
    control = tmp_path / "control"
    env = dict(os.environ, LEAKTRACE_CONTROL_DIR=str(control))
    sock = tmp_path / "daemon.sock"
    follow = ["--follow-children"] if mode == "fork" else []
    run = subprocess.Popen([*LEAKTRACE, "run", *follow, "--", str(exe), str(sock),
                            str(CLIENTS), mode], cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pid = int(_wait_for(Path(f"{sock}.ready")))
        served = _serve_clients(sock)
        assert served == CLIENTS
        assert int(_wait_for(Path(f"{sock}.done"))) == CLIENTS
        # The shim lost its socket to the daemon's dup2s and opened a new one (a second
        # later at most).
        deadline = time.monotonic() + 10
        while True:
            answer = _status(pid, env)
            if answer.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert answer.returncode == 0, answer.stderr
        assert json.loads(answer.stdout)["pid"] == pid
    finally:
        Path(f"{sock}.quit").touch()
        _out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert "Traceback" not in err


SLEEPER = r"""
#include <stdlib.h>
#include <unistd.h>
void * volatile sink;
int main(void) { sink = malloc(10); sleep(60); return 0; }
"""


@contextmanager
def traced_sleeper(tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """A program sleeping under `leaktrace run`: yields its pid (once its control socket is
    up) and the environment that finds the socket; kills both at the end."""
    from companion_helpers import compile_c

    exe = compile_c(tmp_path, SLEEPER, "sleeper")
    control = tmp_path / "control"
    env = dict(os.environ, LEAKTRACE_CONTROL_DIR=str(control))
    run = subprocess.Popen([*LEAKTRACE, "run", "--", str(exe)], cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sockets: list[Path] = []
    try:
        deadline = time.monotonic() + 30
        while not sockets and time.monotonic() < deadline:
            sockets = list(control.glob("*.sock")) if control.exists() else []
            time.sleep(0.05)
        assert sockets, "the control socket never appeared"
        yield int(sockets[0].name.split(".")[0]), env
    finally:
        if sockets:
            os.kill(int(sockets[0].name.split(".")[0]), 9)
        run.kill()
        run.communicate()


def test_slow_client_cannot_hold_the_control_thread(tmp_path: Path) -> None:
    with traced_sleeper(tmp_path) as (pid, env):
        slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        slow.connect(str(tmp_path / "control" / f"{pid}.sock"))
        slow.sendall(b"s")  # then one byte every 0.5 s: never a whole line in time
        started = time.monotonic()
        status = subprocess.Popen([*LEAKTRACE, "status", str(pid)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for byte in b"tatus-tatus-tatus":  # 8 s of trickle, never a newline
            time.sleep(0.5)
            try:
                slow.sendall(bytes([byte]))
            except OSError:
                break  # the shim gave up on it: that is the point
            if status.poll() is not None:
                break
        _out, err = status.communicate(timeout=30)
        elapsed = time.monotonic() - started
        slow.close()
        assert status.returncode == 0, err
        assert elapsed < 5, elapsed  # the 2-second deadline, not the slow client's pace


def test_control_socket_descriptor_is_high_and_close_on_exec(tmp_path: Path) -> None:
    with traced_sleeper(tmp_path) as (pid, _env):
        inodes = {}
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:"):
                inodes[int(fd)] = target
        assert inodes and min(inodes) >= 512, inodes
        for fd in inodes:
            flags = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
            octal = int(flags.split("flags:")[1].split()[0], 8)
            assert octal & os.O_CLOEXEC, (fd, flags)


@pytest.mark.parametrize("mode", [(), ("--sample", "1073741824")])
def test_descriptor_table_is_grown_before_main(build_dir: Path, tmp_path: Path,
                                               mode: tuple[str, ...]) -> None:
    """The shim's descriptors sit high, which grows the descriptor table. Grown once threads
    share it, the kernel makes the growing thread wait for an RCU grace period: in sampling
    mode the first sampled allocation, a worker thread's, stood still 10-20 ms. The table now
    has its final size before main runs."""
    exe = compile_program("descriptor_table_size.c", build_dir, "-O2")
    done = leaktrace("run", "-o", str(tmp_path / "fds.lt"), *mode, "--", str(exe))
    assert done.returncode == 0, done.stderr
    at_start, at_end = (int(word) for word in done.stdout.split())
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert at_start == at_end, done.stdout
    assert at_start > min(soft * 3 // 4, 1000), (done.stdout, soft)


@pytest.mark.parametrize("mode", ["plain", "closefrom", "fork", "mainexit"])
def test_the_program_gets_the_descriptor_numbers_it_gets_natively(build_dir: Path,
                                                                  tmp_path: Path,
                                                                  mode: str) -> None:
    """open() gives the lowest free number. The control thread read the main thread's /proc
    stat every 200 ms (and the thread list every 50 ms once main had left) through a fresh
    descriptor: for that moment it held the lowest free number, and the program's open got
    another (hundreds of a second's opens did not get 3). It keeps those files open now,
    unless both limits are 1,024 or less (then a kept file would take one of the program's
    numbers for good)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard <= 1024:
        pytest.skip("RLIMIT_NOFILE: soft and hard limits equal and small; the files are not kept")
    exe = compile_program("descriptor_numbers.c", build_dir, "-O2", ["-lpthread", "-ldl"])
    native = subprocess.run([str(exe), mode], capture_output=True, text=True, timeout=60)
    done = leaktrace("run", "--follow-children", "-o", str(tmp_path / "numbers.lt"), "--",
                     str(exe), mode, cwd=tmp_path)
    assert native.returncode == 0 and " 0 opens not at 3" in native.stdout, native.stdout
    assert (done.returncode, done.stdout) == (0, native.stdout), done.stderr
    assert "definitely lost: 10 bytes in 1 blocks" in done.stderr
