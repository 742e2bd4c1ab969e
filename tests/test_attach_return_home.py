"""attach's injected calls bring the thread back by themselves (attach/return_home.py): a
tracer killed with SIGKILL in the middle of a call no longer takes the target with it. The
target (tests/programs/register_keeper.c) keeps known values in ymm0-15 and six general
registers across blocking system calls and checks them after each: it must end with its
"ok" whether the injection was finished by leaktrace or by the thread itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from attach_harness import attach_env
from leakharness import LEAKTRACE, compile_program

pytestmark = pytest.mark.skipif("avx2" not in Path("/proc/cpuinfo").read_text(),
                                reason="the register keeper uses AVX registers")

# A tracer that stops the target's main thread inside its blocking call, starts an injected
# call of strtod (which uses the vector registers) that returns through the signal frame,
# says so, and waits to be killed.
TRACER = textwrap.dedent("""
    import sys, time
    from leaktrace.attach import ptrace
    from leaktrace.attach.process_info import MemoryMap
    from leaktrace.attach.return_home import (Home, find_restorer, signal_mask,
                                              start_call_returning_home)
    from leaktrace.attach.target_libraries import LIBC, find_library
    pid = int(sys.argv[1])
    libc = find_library(pid, MemoryMap.read(pid), LIBC)
    restorer = find_restorer(libc)
    memory = open(f"/proc/{pid}/mem", "r+b", buffering=0)
    ptrace.seize(pid)
    for attempt in range(200):  # until it is stopped inside its blocking call
        ptrace.interrupt(pid)
        while not ptrace.wait_for_stop(pid, 10, time.sleep).is_event_stop:
            pass
        saved = ptrace.get_registers(pid)
        if saved.rax >= 1 << 63 and saved.orig_rax < 1 << 63:
            break
        ptrace.resume(pid)
        time.sleep(0.003)
    home = Home(restorer, ptrace.get_fp_state(pid), signal_mask(pid, pid))
    start_call_returning_home(pid, memory.fileno(), saved, home, libc.address_of("strtod"),
                              [b"1.5", 0])
    print("started", saved.orig_rax, saved.rax - (1 << 64), flush=True)
    time.sleep(600)
""")


def _start_keeper(build_dir: Path, mode: str, rounds: int) -> subprocess.Popen[str]:
    exe = compile_program("register_keeper.c", build_dir, "-O2")
    keeper = subprocess.Popen([str(exe), mode, str(rounds)], stdout=subprocess.PIPE, text=True)
    assert keeper.stdout is not None and keeper.stdout.readline() == "ready\n"
    return keeper


ROUNDS = {"read": 1500, "sleep": 60}  # about 3 s each


@pytest.mark.parametrize(("mode", "syscall", "restart"), [("read", 0, -512),
                                                          ("sleep", 35, -516)])
def test_a_call_ends_well_when_the_tracer_is_killed_in_it(build_dir: Path, mode: str,
                                                          syscall: int, restart: int) -> None:
    keeper = _start_keeper(build_dir, mode, ROUNDS[mode])
    tracer = subprocess.Popen([sys.executable, "-c", TRACER, str(keeper.pid)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert tracer.stdout is not None
        started = tracer.stdout.readline().split()
        # It was stopped inside its blocking call, which must be restarted afterwards.
        assert started == ["started", str(syscall), str(restart)], started
    finally:
        os.kill(tracer.pid, signal.SIGKILL)
        tracer.wait()
    out, _ = keeper.communicate(timeout=120)
    assert (keeper.returncode, out) == (0, f"rounds {ROUNDS[mode]} ok\n")


@pytest.mark.parametrize("mode", ["read", "sleep"])
def test_attach_leaves_every_register_as_it_was(build_dir: Path, tmp_path: Path,
                                                mode: str) -> None:
    keeper = _start_keeper(build_dir, mode, ROUNDS[mode])
    control = tmp_path / "ctl"
    control.mkdir(mode=0o700)
    done = subprocess.run([*LEAKTRACE, "attach", str(keeper.pid), "--duration", "0.3",
                           "--verbose"], capture_output=True, text=True, timeout=120,
                          env=attach_env(control), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "return through rt_sigreturn" in done.stderr
    out, _ = keeper.communicate(timeout=120)
    assert (keeper.returncode, out) == (0, f"rounds {ROUNDS[mode]} ok\n")
