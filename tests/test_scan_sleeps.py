"""On-demand scans stop the program's threads with a signal, which ends a sleep early
(EINTR) whatever SA_RESTART says. The program must not notice: sleep, usleep, nanosleep and
clock_nanosleep sleep their whole time through any number of scans, poll, select and epoll_wait
wait out their timeout, pause and sigsuspend go on waiting, and a signal of the program's own
still ends each as it would without leaktrace."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from leakharness import LEAKTRACE, compile_program

from leaktrace.control.client import ControlError, send_command


def test_sleeps_last_their_whole_time_through_scans(build_dir: Path, tmp_path: Path) -> None:
    exe = compile_program("sleeps_through_scans.c", build_dir, "-O2")
    control = tmp_path / "control"
    env = {**os.environ, "LEAKTRACE_CONTROL_DIR": str(control)}
    run = subprocess.Popen([*LEAKTRACE, "run", "-o", str(tmp_path / "s.lt"), "--", str(exe)],
                           cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
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
