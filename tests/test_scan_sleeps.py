"""On-demand scans stop the program's threads with a signal, which ends a sleep early
(EINTR) whatever SA_RESTART says. The program must not notice: sleep, usleep, nanosleep and
clock_nanosleep sleep their whole time through any number of scans, poll, select and epoll_wait
wait out their timeout, pause and sigsuspend go on waiting, and a signal of the program's own
still ends each as it would without leaktrace."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from leakharness import LEAKTRACE, compile_program

from leaktrace.control.client import ControlError, send_command


def _run_with_control(exe: Path, tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    """`leaktrace run` of `exe` whose control socket goes in tmp_path/control."""
    control = tmp_path / "control"
    env = {**os.environ, "LEAKTRACE_CONTROL_DIR": str(control)}
    run = subprocess.Popen([*LEAKTRACE, "run", "-o", str(tmp_path / f"{exe.name}.lt"), "--",
                            str(exe)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    return run, control


def test_sleeps_last_their_whole_time_through_scans(build_dir: Path, tmp_path: Path) -> None:
    exe = compile_program("sleeps_through_scans.c", build_dir, "-O2")
    run, control = _run_with_control(exe, tmp_path)
    scans = 0
    try:
        deadline = time.monotonic() + 30
        while not (control.exists() and list(control.glob("*.sock"))):
            assert time.monotonic() < deadline, "the program never started"
            time.sleep(0.02)
        pid = int(next(control.glob("*.sock")).name.split(".")[0])
        # Straight to the control socket, not a `leaktrace scan` process each time: on a
        # loaded machine each start of the CLI took a second, too few scans per wait.
        while run.poll() is None:
            try:
                send_command(pid, "scan", directory=str(control))
                scans += 1
            except ControlError:
                pass  # the program has ended meanwhile
            time.sleep(0.1)
    finally:
        out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert scans >= 24, (scans, err)  # the program takes about 12 s: two scans a second
    results = {line.rsplit(" ", 2)[0]: (int(line.split()[-2]), float(line.split()[-1]))
               for line in out.splitlines()}
    assert results["sleep"][0] == 0 and results["sleep"][1] >= 1.9, results
    for call in ("usleep", "nanosleep", "clock_nanosleep", "poll", "select", "epoll_wait"):
        assert results[call][0] == 0 and results[call][1] >= 0.9, (call, results)
    # alarm(1) during sleep(3): ended after about a second with 2 seconds left, as natively.
    left, took = results["alarmed sleep"]
    assert left == 2 and took < 1.9, results
    # pause and sigsuspend end with the program's alarm (2 s, 1 s), not at a scan.
    assert results["pause"][0] == -1 and results["pause"][1] >= 1.9, results
    assert results["sigsuspend"][0] == -1 and results["sigsuspend"][1] >= 0.9, results


def _in_futex_wait(pid: int) -> bool:
    """The main thread waits on a futex: parked by the scan's signal handler."""
    try:
        return Path(f"/proc/{pid}/syscall").read_text().split()[0] == "202"  # futex
    except (OSError, IndexError):
        return False


def test_a_signal_of_the_programs_during_a_scan_ends_its_wait(build_dir: Path,
                                                             tmp_path: Path) -> None:
    """SIGUSR1 sent while the scan holds the thread (parked in the scan's handler, which
    blocks it): it is delivered as the handler returns, and sigsuspend ends with it instead
    of waiting on for a signal that has come and gone."""
    exe = compile_program("signal_during_scan.c", build_dir, "-O2")
    run, control = _run_with_control(exe, tmp_path)
    try:
        assert run.stdout is not None
        assert run.stdout.readline() == "ready\n"
        pid = int(next(control.glob("*.sock")).name.split(".")[0])
        scan = threading.Thread(target=send_command, args=(pid, "scan"),
                                kwargs={"directory": str(control)})
        scan.start()
        deadline = time.monotonic() + 30
        while not _in_futex_wait(pid):
            assert time.monotonic() < deadline, "the scan never stopped the program"
            time.sleep(0.001)
        os.kill(pid, signal.SIGUSR1)
        scan.join(timeout=60)
        out, err = run.communicate(timeout=30)
    finally:
        run.kill()
    assert run.returncode == 0, err
    assert out == "woke -1 1\n"
