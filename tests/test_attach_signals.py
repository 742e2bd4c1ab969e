"""Every catchable signal sent to `leaktrace attach` while it injects waits until the target's
thread is restored: Ctrl-\\ (SIGQUIT) ends the window cleanly like Ctrl-C, and signals that
would end or stop leaktrace (SIGUSR1, SIGPIPE, SIGALRM, SIGTSTP...) take effect only after the
injection. The target survives every trial."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from attach_harness import AttachRun, Load, Server, attach_env
from leakharness import LEAKTRACE

from leaktrace.attach.session import collecting_status

TRIALS = 12
DEFERRED = [signal.SIGUSR1, signal.SIGALRM, signal.SIGUSR2, signal.SIGXCPU]


@pytest.fixture
def server(build_dir: Path, tmp_path: Path) -> Iterator[Server]:
    started = Server.start(build_dir, tmp_path)
    yield started
    started.kill()


def _end_session(server: Server, env: dict[str, str], tmp_path: Path) -> None:
    server.check_answers()  # the target is alive and serving
    status = collecting_status(server.pid, env["LEAKTRACE_CONTROL_DIR"])
    if status is not None and status["collecting"]:
        done = subprocess.run([*LEAKTRACE, "detach", str(server.pid)], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
    server.check_answers()


def test_sigquit_during_injection_ends_the_window_cleanly(server: Server,
                                                         tmp_path: Path) -> None:
    env = attach_env(tmp_path / "ctl")
    load = Load(server.port)
    for _ in range(3):
        run = AttachRun(server.pid, "--verbose", env=env, cwd=tmp_path)
        assert run.wait_for_line("stopping a thread"), run.error_text
        run.interrupt(signal.SIGQUIT)
        code = run.finish()
        assert code == 0, run.error_text
        assert "leaktrace: collected from" in run.error_text
        _end_session(server, env, tmp_path)
    load.stop()
    assert server.quit()[0] == 7


def test_any_deadly_signal_at_random_moments_never_kills_the_target(server: Server,
                                                                   tmp_path: Path) -> None:
    env = attach_env(tmp_path / "ctl")
    load = Load(server.port)
    chance = random.Random(4321)
    for trial in range(TRIALS):
        run = AttachRun(server.pid, env=env, cwd=tmp_path)
        time.sleep(chance.uniform(0.2, 1.4))  # start-up, checks, injection or the window
        sig = signal.SIGQUIT if trial % 3 == 0 else DEFERRED[trial % len(DEFERRED)]
        run.interrupt(sig)
        try:
            run.process.wait(10)
        except subprocess.TimeoutExpired:  # not deadly there (a stop signal ends the window)
            run.interrupt(signal.SIGINT)
        run.finish()
        assert "Traceback" not in run.error_text, run.error_text
        _end_session(server, env, tmp_path)
    load.stop()
    assert server.quit()[0] == 7


@pytest.mark.parametrize("period_ns", [50_000, 20_000])
def test_attach_to_a_program_whose_timer_handler_allocates(build_dir: Path, tmp_path: Path,
                                                           period_ns: int) -> None:
    """The program's signals wait while the injected calls run (a handler that allocated
    inside dlopen's malloc corrupted the heap), and a steady stream of them no longer keeps
    the thread from stopping for the injection (attach looped for minutes)."""
    from leakharness import compile_program

    exe = compile_program("timer_handler_allocates.c", build_dir, "-O2", extra=["-lrt"])
    env = attach_env(tmp_path / "ctl")
    for _ in range(3):
        target = subprocess.Popen([str(exe), str(period_ns)], stdout=subprocess.PIPE,
                                  text=True)
        try:
            assert target.stdout is not None and target.stdout.readline() == "ready\n"
            done = subprocess.run([*LEAKTRACE, "attach", "--duration", "0.3", str(target.pid)],
                                  env=env, cwd=tmp_path, capture_output=True, text=True,
                                  timeout=60, check=False)
            assert done.returncode == 0, done.stderr
            target.send_signal(signal.SIGTERM)
            assert target.wait(timeout=30) == 5
            assert target.stdout.read() == "done\n"
        finally:
            if target.poll() is None:
                target.kill()
                target.wait()
