"""Measure what SIGKILL of `leaktrace attach` during the injection does to the target
(docs/attach.md, "Signals during attach"). Not a test: a measurement, run by hand.

Each trial starts tests/programs/attach_server.c, starts `leaktrace attach PID`, waits until
the server's TracerPid shows it seized (the injection has begun), sleeps a random 0..--spread
ms, and kills the attach process with SIGKILL. Then it checks the server: dead (and of which
signal), hung (no answer within 10 s), or alive, and then whether the shim was loaded and
whether it was left attached (collecting, with nobody to detach it: `leaktrace detach` ends
that). With --reattach, the server is attached and detached once first, so the trial measures
a later attach (the shim already loaded: no dlopen of a new file).

    .venv/bin/python scripts/attach_kill_window.py --trials 40
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEAKTRACE = [sys.executable, "-m", "leaktrace"]


def tracer_pid(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    except OSError:
        return -1
    return 0


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"work 10\n")
            return sock.makefile("r").readline().strip() == "sum 55"
    except OSError:
        return False


def shim_loaded(pid: int) -> bool:
    try:
        return "libleaktrace_shim.so" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def trial(server_exe: Path, work: Path, spread_ms: float, reattach: bool) -> str:
    env = {**os.environ, "LEAKTRACE_CONTROL_DIR": str(work / "ctl")}
    server = subprocess.Popen([str(server_exe)], stdout=subprocess.PIPE, text=True, cwd=work)
    assert server.stdout is not None
    port = int(server.stdout.readline().split()[1])
    pid = server.pid
    try:
        if reattach:
            subprocess.run([*LEAKTRACE, "attach", str(pid), "--duration", "0.2"], env=env,
                           cwd=work, capture_output=True, timeout=120, check=True)
        attach = subprocess.Popen([*LEAKTRACE, "attach", str(pid), "--duration", "3"],
                                  env=env, cwd=work, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while tracer_pid(pid) == 0 and attach.poll() is None and time.monotonic() < deadline:
            time.sleep(0.0002)
        if attach.poll() is not None or tracer_pid(pid) <= 0:
            attach.kill()
            attach.wait()
            return "no injection seen"
        time.sleep(random.uniform(0, spread_ms) / 1000)
        attach.send_signal(signal.SIGKILL)
        attach.wait()
        time.sleep(0.3)
        code = server.poll()
        if code is not None:
            return f"target died ({signal.Signals(-code).name if code < 0 else code})"
        if not answers(port):
            return "target hung"
        loaded = shim_loaded(pid)
        detached = subprocess.run([*LEAKTRACE, "detach", str(pid)], env=env, cwd=work,
                                  capture_output=True, text=True, timeout=60)
        state = ("left attached (detach ended it)" if detached.returncode == 0 else
                 "shim loaded, not attached" if loaded else "untouched")
        # 7 after quit; 99 if its main thread's read() saw EINTR (a restart lost).
        ending = _quit(server, port)
        return f"target alive: {state}" + ("" if ending == 7 else f", then exit {ending}")
    finally:
        if server.poll() is None:
            _quit(server, port)


def _quit(server: subprocess.Popen[str], port: int) -> int:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"quit\n")
            sock.makefile("r").readline()
    except OSError:
        pass
    try:
        return server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        return server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--spread", type=float, default=25.0,
                        help="kill a random 0..SPREAD ms after the seize (default 25)")
    parser.add_argument("--reattach", action="store_true")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    random.seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="leaktrace-killwindow-") as tmp:
        work = Path(tmp)
        (work / "ctl").mkdir(mode=0o700)
        exe = work / "attach_server"
        subprocess.run(["gcc", "-O2", "-g", "-pthread", "-o", str(exe),
                        str(ROOT / "tests/programs/attach_server.c")], check=True)
        outcomes: collections.Counter[str] = collections.Counter()
        for number in range(1, args.trials + 1):
            outcome = trial(exe, work, args.spread, args.reattach)
            outcomes[outcome] += 1
            print(f"{number:3d} {outcome}", flush=True)
    print(f"\n{args.trials} trials, SIGKILL 0..{args.spread:g} ms after the seize"
          f"{', shim already loaded' if args.reattach else ''}:")
    for outcome, count in outcomes.most_common():
        print(f"  {count:3d}  {outcome}")


if __name__ == "__main__":
    main()
