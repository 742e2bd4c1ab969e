"""Another local user cannot stand in for a traced process: a control directory created in
advance by another user (with a socket of theirs answering for the victim's pid) is refused
by the shim, which says so on the program's stderr and runs on, and by the victim's client
(and root's), which names the directory's real owner instead of showing the attacker's
answers.

Three users: root sets the scene, the victim is `nobody` (its program runs with the shim
preloaded, its client is the control client module under the system Python: leaktrace's own
interpreter may sit in root's home), the attacker is uid 4242 (no account needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from companion_helpers import SRC, compile_c
from liveharness import python_for

ATTACKER_UID = 4242  # no account needed: root gives the directory to this uid
VICTIM = "nobody"

PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
void * volatile sink;
int main(void) {
  sink = malloc(64);
  printf("%d\n", (int)getpid());
  fflush(stdout);
  char byte;
  while (read(0, &byte, 1) > 0) {} /* until the test closes our stdin */
  sink = malloc(21); sink = 0; /* leaked */
  return 0;
}
"""

# The attacker's socket: answers every command as a traced process would.
FAKE = r"""
import json, os, socket, sys
path, pid = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o777)
s.listen(8)
while True:
    c, _ = s.accept()
    c.recv(256)
    c.sendall(json.dumps({"ok": True, "pid": pid, "program": "evil", "uptime_ms": 1,
                          "collecting": True, "live_blocks": 0, "live_bytes": 0,
                          "capture": "/tmp/attacker-chosen.lt"}).encode() + b"\n")
    c.close()
"""


def _as(user_args: list[str], *command: str, env: dict[str, str],
        **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen([*user_args, "env", *(f"{k}={v}" for k, v in env.items()),
                             *command], text=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)  # type: ignore[call-overload]


CLIENT = ("import sys; sys.path.insert(0, sys.argv[1])\n"
          "from leaktrace.control.client import send_command, ControlError\n"
          "try:\n    print(send_command(int(sys.argv[2]), sys.argv[3]))\n"
          "except ControlError as e:\n    print('refused:', e)")


def test_a_control_directory_planted_by_another_user(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root, to act as two other users")
    if not shutil.which("runuser") or not shutil.which("setpriv"):
        pytest.skip("runuser and setpriv (util-linux) are needed")
    python = python_for(VICTIM, SRC)
    if python is None:
        pytest.skip(f"no Python the user {VICTIM} may run")
    from leaktrace.shim_library import find_shim_library

    shim = str(find_shim_library())
    victim_uid = int(subprocess.run(["id", "-u", VICTIM], capture_output=True, text=True,
                                    check=True).stdout)
    base = Path(tempfile.mkdtemp(prefix="leaktrace-spoof-", dir="/tmp"))
    fake: subprocess.Popen[str] | None = None
    victim: subprocess.Popen[str] | None = None
    try:
        base.chmod(0o755)
        exe = compile_c(base, PROGRAM, "victim")
        trap = base / "ctl"  # created first, by the attacker, open to all
        trap.mkdir()
        os.chown(trap, ATTACKER_UID, ATTACKER_UID)
        trap.chmod(0o777)
        work = base / "work"
        work.mkdir()
        os.chown(work, victim_uid, -1)
        env = {"LEAKTRACE_CONTROL_DIR": str(trap), "PATH": os.environ["PATH"]}
        as_victim = ["runuser", "-u", VICTIM, "--"]
        victim = _as(as_victim, str(exe), cwd=work,
                     env={**env, "LD_PRELOAD": shim, "LEAKTRACE_DIR": str(work)})
        assert victim.stdout is not None
        pid = int(victim.stdout.readline())

        as_attacker = ["setpriv", f"--reuid={ATTACKER_UID}", f"--regid={ATTACKER_UID}",
                       "--clear-groups"]
        fake = _as(as_attacker, python, "-c", FAKE, str(trap / f"{pid}.sock"), str(pid),
                   env={})
        deadline = time.monotonic() + 20
        while not (trap / f"{pid}.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (trap / f"{pid}.sock").exists()

        refusal = f"belongs to uid {ATTACKER_UID}, not to uid {victim_uid}"
        for command in ("status", "report", "scan"):
            client = _as(as_victim, python, "-c", CLIENT, str(SRC), str(pid), command, env=env)
            out, err = client.communicate(timeout=60)
            assert out.startswith("refused: ") and refusal in out, (command, out, err)
            assert "evil" not in out and "attacker-chosen" not in out
        # root asking about the victim's process is not fooled either (the full CLI).
        for command in (["status", str(pid)], ["report", "--pid", str(pid)]):
            done = subprocess.run([sys.executable, "-m", "leaktrace", *command],
                                  capture_output=True, text=True, timeout=60, check=False,
                                  env={**os.environ, **env})
            assert done.returncode == 2 and refusal in done.stderr, done
            assert "evil" not in done.stdout

        _out, err = victim.communicate(timeout=120)
        assert victim.returncode == 0, err
        assert (f"leaktrace: no control socket for process {pid}: the directory {trap} "
                "belongs to another user") in err
        assert list(work.glob("leaktrace-victim.*.lt")), "the capture at exit is written"
    finally:
        for process in (fake, victim):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()
        shutil.rmtree(base, ignore_errors=True)


def test_root_finds_another_users_traced_process(tmp_path: Path) -> None:
    """The socket is found where the process really listens (its descriptors and
    /proc/PID/net/unix), not in root's own directory: `status` answers instead of saying
    "not traced"."""
    if os.getuid() != 0 or not shutil.which("runuser"):
        pytest.skip("needs root and runuser, to run a process as another user")
    from leaktrace.shim_library import find_shim_library

    shim = str(find_shim_library())
    if subprocess.run(["runuser", "-u", VICTIM, "--", "test", "-r", shim]).returncode != 0:
        pytest.skip(f"{VICTIM} cannot read the shim (the checkout is in a directory only its "
                    "owner can enter)")

    base = Path(tempfile.mkdtemp(prefix="leaktrace-other-", dir="/tmp"))
    victim: subprocess.Popen[str] | None = None
    try:
        base.chmod(0o755)
        exe = compile_c(base, PROGRAM, "victim")
        work = base / "work"
        work.mkdir()
        victim_uid = int(subprocess.run(["id", "-u", VICTIM], capture_output=True, text=True,
                                        check=True).stdout)
        os.chown(work, victim_uid, -1)
        their_dir = work / "ctl"  # the victim's own choice, unknown to root's environment
        victim = _as(["runuser", "-u", VICTIM, "--"], str(exe), cwd=work,
                     env={"LD_PRELOAD": str(find_shim_library()), "LEAKTRACE_DIR": str(work),
                          "LEAKTRACE_CONTROL_DIR": str(their_dir)})
        assert victim.stdout is not None
        pid = int(victim.stdout.readline())
        env = {k: v for k, v in os.environ.items() if k != "LEAKTRACE_CONTROL_DIR"}
        done = subprocess.run([sys.executable, "-m", "leaktrace", "status", "--format", "json",
                               str(pid)], capture_output=True, text=True, timeout=60,
                              check=False, env=env)
        assert done.returncode == 0, done.stderr
        assert f'"pid": {pid}' in done.stdout
    finally:
        if victim is not None and victim.poll() is None:
            victim.kill()
            victim.communicate()
        shutil.rmtree(base, ignore_errors=True)
