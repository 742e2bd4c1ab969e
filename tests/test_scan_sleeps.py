"""On-demand scans stop the program's threads with a signal, which ends a sleep early
(EINTR) whatever SA_RESTART says. The program must not notice: sleep, usleep, nanosleep and
clock_nanosleep sleep their whole time through any number of scans, poll, select and epoll_wait
wait out their timeout, pause and sigsuspend go on waiting, and a signal of the program's own
still ends each as it would without leaktrace."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from leakharness import LEAKTRACE, compile_program
from liveharness import wait_for_control_socket

from leaktrace.control.client import ControlError, send_command


def _run_with_control(exe: Path, tmp_path: Path,
                      stdin: int | None = None) -> tuple[subprocess.Popen[str], Path]:
    """`leaktrace run` of `exe` whose control socket goes in tmp_path/control."""
    control = tmp_path / "control"
    env = {**os.environ, "LEAKTRACE_CONTROL_DIR": str(control)}
    run = subprocess.Popen([*LEAKTRACE, "run", "-o", str(tmp_path / f"{exe.name}.lt"), "--",
                            str(exe)], cwd=tmp_path, env=env, stdin=stdin,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return run, control


def test_sleeps_last_their_whole_time_through_scans(build_dir: Path, tmp_path: Path) -> None:
    exe = compile_program("sleeps_through_scans.c", build_dir, "-O2")
    run, control = _run_with_control(exe, tmp_path)
    scans = 0
    try:
        pid = wait_for_control_socket(control)
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


def test_a_scan_leaves_the_memory_below_a_small_stack_alone(build_dir: Path,
                                                          tmp_path: Path) -> None:
    """A thread on a 1 KiB stack inside a larger region (a goroutine's, in Go's heap), with an
    alternate signal stack, as every Go thread has: the scan's handler must run there. Run on
    the small stack, the kernel pushed its signal frame over the live memory below it (Go
    objects that held C blocks lost their pointers, and the blocks looked lost)."""
    exe = compile_program("coroutine_stack.c", build_dir, "-O2")
    native = subprocess.run([str(exe)], input="", capture_output=True, text=True, timeout=30)
    assert (native.returncode, native.stdout) == (0, "0 bytes below the small stack changed\n")
    run, control = _run_with_control(exe, tmp_path, stdin=subprocess.PIPE)
    try:
        pid = wait_for_control_socket(control)
        for _ in range(3):
            send_command(pid, "scan", directory=str(control))
        out, err = run.communicate("", timeout=60)
    finally:
        run.kill()
    assert (run.returncode, out) == (0, native.stdout), err


HOLD_CPU = """
import os, sys, time
os.sched_setaffinity(0, {{{cpu}}})
os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
print("holding", flush=True)
end = time.monotonic() + 0.9  # under the kernel's real-time throttle (0.95 s a second)
while time.monotonic() < end and not os.path.exists({stop!r}):
    pass
"""


def _pending(pid: int) -> int:
    """The signals pending for the main thread alone (tgkill), as a bit set."""
    for line in Path(f"/proc/{pid}/task/{pid}/status").read_text().splitlines():
        if line.startswith("SigPnd:"):
            return int(line.split()[1], 16)
    return 0


def _tgkill(pid: int, tid: int, sig: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(234, pid, tid, sig) != 0:  # SYS_tgkill on x86_64
        raise OSError(ctypes.get_errno(), "tgkill")


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 or os.geteuid() != 0,
                    reason="needs two CPUs and root, to hold a thread off its CPU")
def test_a_signal_sent_to_the_thread_just_before_the_scans_ends_its_wait(
        build_dir: Path, tmp_path: Path) -> None:
    """SIGUSR1 sent to the waiting thread itself, then the scan's signal, both while the
    thread cannot run (a real-time busy loop holds its CPU). When it runs, the kernel enters
    the program's handler first (the lower number) and the scan's on top of it, in the same
    interruption of sigsuspend: the wait must end with SIGUSR1, as without the scan (it went
    on waiting for good)."""
    exe = compile_program("signal_during_scan.c", build_dir, "-O2")
    run, control = _run_with_control(exe, tmp_path)
    mine = os.sched_getaffinity(0)
    held, other = sorted(mine)[:2]
    stop = tmp_path / "stop"
    hold = None
    both = False
    pid = 0
    try:
        assert run.stdout is not None
        assert run.stdout.readline() == "ready\n"
        pid = int(next(control.glob("*.sock")).name.split(".")[0])
        os.sched_setaffinity(0, {other})
        for tid in os.listdir(f"/proc/{pid}/task"):
            os.sched_setaffinity(int(tid), {held} if int(tid) == pid else {other})
        hold = subprocess.Popen([sys.executable, "-c", HOLD_CPU.format(cpu=held, stop=str(stop))],
                                stdout=subprocess.PIPE, text=True)
        assert hold.stdout is not None and hold.stdout.readline() == "holding\n"
        _tgkill(pid, pid, signal.SIGUSR1)
        scan = threading.Thread(target=send_command, args=(pid, "scan"),
                                kwargs={"directory": str(control)})
        scan.start()
        wanted = 1 << (signal.SIGUSR1 - 1) | 1 << (signal.SIGRTMAX - 2)  # the scan's: SIGRTMAX-1
        while hold.poll() is None and not both:
            both = _pending(pid) & wanted == wanted
        stop.touch()
        hold.wait(timeout=30)
        scan.join(timeout=60)
        out, err = run.communicate(timeout=30)
    finally:
        os.sched_setaffinity(0, mine)
        run.kill()
        if hold:
            hold.kill()
        if pid and run.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if not both:
        pytest.skip("the machine did not hold the thread off its CPU long enough")
    assert run.returncode == 0, err
    assert out == "woke -1 1\n"
