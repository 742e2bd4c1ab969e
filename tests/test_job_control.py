"""`leaktrace run` as a shell's job: the program has the terminal and the signals it would
have had without leaktrace, in leaktrace's process group. Each case runs the program natively
and under leaktrace, the same way, and compares what the program saw and how it ended."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from leakharness import LEAKTRACE
from native_programs import compile_source

SIGNALS_SEEN = r"""
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static volatile sig_atomic_t got;
static void count(int sig) { (void)sig; got++; }
int main(int argc, char **argv)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = count;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    const char *what = argc > 1 ? argv[1] : "";
    if (strcmp(what, "setsid") == 0) {
        printf("setsid %s\n", setsid() < 0 ? "failed" : "succeeded");
        return 0;
    }
    if (strcmp(what, "stop") == 0) {
        raise(SIGSTOP);
        printf("resumed\n");
        return 3;
    }
    if (strcmp(what, "own-group") == 0)
        kill(0, SIGUSR1);
    printf("ready\n");
    fflush(stdout);
    if (strcmp(what, "forever") == 0)
        for (;;)
            pause();
    struct timespec left = { 1, 0 };
    while (nanosleep(&left, &left) != 0) /* a handler's run cuts it short: sleep the rest */
        ;
    printf("signals %d\n", (int)got);
    return 0;
}
"""


@pytest.fixture(scope="module")
def signals_seen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_source(tmp_path_factory.mktemp("job"), "signals_seen.c", SIGNALS_SEEN, "-O2")


def _under_leaktrace(tmp_path: Path) -> list[str]:
    capture = tmp_path / f"job{time.monotonic_ns()}.lt"
    return [*LEAKTRACE, "run", "-o", str(capture), "--"]


def _both(tmp_path: Path, run: Callable[[list[str]], Any]) -> tuple[Any, Any]:
    """(what `run` gives for the program natively, and under leaktrace)."""
    return run([]), run(_under_leaktrace(tmp_path))


def _output(prefix: list[str], *argv: str, **popen: Any) -> tuple[str, int]:
    done = subprocess.run([*prefix, *argv], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True, timeout=120, **popen)
    return done.stdout, done.returncode


def test_a_scripts_command_can_start_a_session_as_without_leaktrace(
        tmp_path: Path, signals_seen: Path) -> None:
    """A script's command is in the script's group, so its setsid() succeeds; the program
    stays in leaktrace's group, so the same. (A shell's job leads its group, where setsid()
    fails: under leaktrace it succeeds, a difference the user guide lists.)"""
    native, traced = _both(tmp_path, lambda prefix: _output(prefix, str(signals_seen), "setsid"))
    assert native == ("setsid succeeded\n", 0)
    assert traced == native


@pytest.mark.parametrize("through_a_shell", [False, True], ids=["leader", "in-a-scripts-group"])
def test_a_program_signalling_its_own_group_gets_the_signal_once(
        tmp_path: Path, signals_seen: Path, through_a_shell: bool) -> None:
    """kill(0, SIGUSR1) reaches leaktrace too, when it is in the program's group: passing it
    on would give the program a second one."""
    shell = ["sh", "-c", 'trap : USR1; "$@"; exit $?', "sh"] if through_a_shell else []
    native, traced = _both(tmp_path, lambda prefix: _output(
        [*shell, *prefix], str(signals_seen), "own-group", start_new_session=True))
    assert native == ("ready\nsignals 1\n", 0)
    assert traced == native


@pytest.mark.parametrize("leader", [True, False], ids=["group-leader", "in-the-callers-group"])
def test_a_program_stopped_and_continued_by_its_pid_runs_to_its_end(
        tmp_path: Path, signals_seen: Path, leader: bool) -> None:
    """`kill -STOP PID; kill -CONT PID` of the program, outside an interactive shell: nobody
    would continue leaktrace, so it does not stop with the program, and waits for its end."""
    def stop_and_continue(prefix: list[str]) -> tuple[str, int]:
        job = subprocess.Popen([*prefix, str(signals_seen)], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, start_new_session=leader)
        assert job.stdout is not None
        assert job.stdout.readline() == "ready\n"
        program = _descendants(job.pid)[0] if prefix else job.pid
        os.kill(program, signal.SIGSTOP)
        time.sleep(0.3)
        os.kill(program, signal.SIGCONT)
        out, _ = job.communicate(timeout=60)
        return out, job.returncode

    native, traced = _both(tmp_path, stop_and_continue)
    assert native == ("signals 0\n", 0)
    assert traced == native


def _signal_program_and_leaktrace(tmp_path: Path, signals_seen: Path, how: str
                                  ) -> tuple[tuple[str, int], tuple[str, int]]:
    """SIGUSR1 for the program and, under leaktrace, for leaktrace too, as `how` says: `group`
    (kill -USR1 -PGID), `each` (a kill of each process, as systemd's stop: leaktrace's pid
    first, or the program's with `each-program-first`), or `timeout` (timeout(1) signals its
    child, then its group)."""
    def run(prefix: list[str]) -> tuple[str, int]:
        if how == "timeout":
            return _output(["timeout", "-s", "USR1", "0.3", *prefix], str(signals_seen))
        job = subprocess.Popen([*prefix, str(signals_seen)], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        assert job.stdout is not None
        assert job.stdout.readline() == "ready\n"
        program = _descendants(job.pid)[0] if prefix else job.pid
        if how == "group":
            os.killpg(job.pid, signal.SIGUSR1)
        else:
            order = [program, job.pid] if how == "each-program-first" else [job.pid, program]
            for pid in dict.fromkeys(order):
                os.kill(pid, signal.SIGUSR1)
        out, _ = job.communicate(timeout=60)
        return out, job.returncode

    return _both(tmp_path, run)


@pytest.mark.parametrize("how", ["group", "each", "each-program-first", "timeout"])
def test_a_signal_for_leaktrace_and_the_program_reaches_the_program_once(
        tmp_path: Path, signals_seen: Path, how: str) -> None:
    """leaktrace passes on what reaches its own pid; when the same sender signalled the program
    too (its group, every process of a service, `timeout`'s child and then its group), the
    program had it twice and its handler ran twice (`timeout 10 leaktrace run -- server`). The
    shim now drops the second copy."""
    native, traced = _signal_program_and_leaktrace(tmp_path, signals_seen, how)
    if how == "timeout":
        # timeout signals its child and then its group at once: natively the kernel merges
        # the two while the first is pending, or the program handles the first before the
        # second comes (1 or 2, by scheduling). Traced, the second copy from one sender is
        # always dropped: once.
        assert native in {("ready\nsignals 1\n", 124), ("ready\nsignals 2\n", 124)}
        assert traced == ("ready\nsignals 1\n", 124)
        return
    assert native == ("signals 1\n", 0)
    assert traced == native


CLEANS_UP_AND_RERAISES = r"""
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static void clean_up(int sig)
{
    signal(sig, SIG_DFL); /* as make's and most cleanup handlers do */
    struct timespec cleaning = { 0, 300 * 1000000L };
    nanosleep(&cleaning, NULL);
    static const char cleaned[] = "cleaned up\n";
    (void)!write(1, cleaned, sizeof cleaned - 1);
    raise(sig);
}
int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = clean_up;
    sa.sa_flags = SA_NODEFER; /* a second signal may come in while it cleans up */
    sigaction(SIGUSR1, &sa, NULL);
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause();
}
"""


@pytest.mark.parametrize("how", ["group", "each"])
def test_a_handler_that_puts_the_default_back_is_not_cut_short_by_a_second_copy(
        tmp_path: Path, how: str) -> None:
    """A cleanup handler puts SIG_DFL back, cleans up and raises the signal again. The copy
    leaktrace passed on came while it cleaned up and killed the program before it was done:
    the shim's stand-in for SIG_DFL drops a second copy too."""
    program = compile_source(tmp_path, "cleans_up.c", CLEANS_UP_AND_RERAISES, "-O2")
    native, traced = _signal_program_and_leaktrace(tmp_path, program, how)
    assert native == ("cleaned up\n", -signal.SIGUSR1)
    assert traced == native


SENDER_SEEN = r"""
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static volatile sig_atomic_t code = -100, sender;
static void seen(int sig, siginfo_t *info, void *context)
{
    (void)sig, (void)context;
    code = info->si_code;
    sender = info->si_pid;
}
int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = seen;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR2, &sa, NULL);
    printf("ready\n");
    fflush(stdout);
    while (code == -100)
        pause();
    printf("si_code %d from %d\n", (int)code, (int)sender);
    return 0;
}
"""


def _signalled_when_ready(argv: list[str], sig: int) -> tuple[str, int]:
    """Runs argv, sends `sig` to the pid started once it prints "ready": (the rest of its
    output, its return code)."""
    job = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert job.stdout is not None
    assert job.stdout.readline() == "ready\n"
    job.send_signal(sig)
    out, _ = job.communicate(timeout=120)
    return out, job.returncode


def test_a_passed_on_signal_shows_its_sender(tmp_path: Path) -> None:
    """A signal sent to leaktrace's pid reaches the program's SA_SIGINFO handler as the
    sender's kill(), SI_USER from the sender's pid, as natively (it came from leaktrace's)."""
    program = compile_source(tmp_path, "sender_seen.c", SENDER_SEEN, "-O2")

    native, traced = _both(tmp_path, lambda prefix: _signalled_when_ready(
        [*prefix, str(program)], signal.SIGUSR2))
    assert native == (f"si_code 0 from {os.getpid()}\n", 0)
    assert traced == native


PYTHON_WAITS_FOR_CTRL_C = """
import time
try:
    print("ready", flush=True)
    time.sleep(60)
except KeyboardInterrupt:
    print("caught KeyboardInterrupt")
"""


def test_sigint_sent_to_leaktraces_pid_reaches_the_program(tmp_path: Path) -> None:
    """`kill -INT PID` (or Popen.send_signal) of the pid a script started."""
    native, traced = _both(tmp_path, lambda prefix: _signalled_when_ready(
        [*prefix, sys.executable, "-c", PYTHON_WAITS_FOR_CTRL_C], signal.SIGINT))
    assert native == ("caught KeyboardInterrupt\n", 0)
    assert traced == native


def _descendants(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        children = [int(child) for child in f.read().split()]
    return [*children, *(grandchild for child in children for grandchild in _descendants(child))]


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_killing_leaktrace_kills_the_program(tmp_path: Path, signals_seen: Path) -> None:
    """`kill -9` or `timeout -k` of the pid they started kills the program without leaktrace;
    under it, SIGKILL of leaktrace kills the program too."""
    job = subprocess.Popen([*_under_leaktrace(tmp_path), str(signals_seen), "forever"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert job.stdout is not None
    assert job.stdout.readline() == "ready\n"
    with open(f"/proc/{job.pid}/task/{job.pid}/children") as f:
        program = int(f.read().split()[0])
    job.kill()
    job.wait(timeout=60)
    deadline = time.monotonic() + 10
    while _state(program) not in ("Z", "gone") and time.monotonic() < deadline:
        time.sleep(0.05)
    state = _state(program)
    if state not in ("Z", "gone"):
        os.kill(program, signal.SIGKILL)
    assert state in ("Z", "gone")


READS_THE_TERMINAL = r"""
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static volatile sig_atomic_t interrupts;
static void count(int sig) { (void)sig; interrupts++; }
static void *volatile sink;
int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = count;
    sigaction(SIGINT, &sa, NULL);
    sink = malloc(42);
    sink = NULL;
    char line[100];
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        char *got = fgets(line, sizeof line, stdin);
        if (interrupts) {
            printf("interrupts %d\n", (int)interrupts);
            fflush(stdout);
            interrupts = 0;
            clearerr(stdin);
            continue;
        }
        if (!got || strcmp(line, "end\n") == 0)
            return 7;
        printf("read %s", line);
        fflush(stdout);
    }
}
"""


class _Terminal:
    """An interactive bash on a pseudo-terminal, typed at as a user would."""

    def __init__(self) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # pragma: no cover - the child execs
            os.execvp("bash", ["bash", "--norc", "--noprofile", "-i"])
        self.pid, self.fd = pid, fd
        self.seen = b""
        self.type("PS1='$ '")
        self.expect("$ ")

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode() + (b"" if text in ("\x03", "\x1a") else b"\n"))

    def expect(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} not seen; the terminal shows {self.seen!r}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    self.seen += os.read(self.fd, 4096)
                except OSError:
                    break
        assert text.encode() in self.seen, self.seen
        self.seen = self.seen[self.seen.index(text.encode()) + len(text):]

    def close(self) -> None:
        """Exit the shell; a shell stuck with a job that never gave the terminal back (what
        a failing test may leave) is killed, with what it started."""
        self.type("exit")
        deadline = time.monotonic() + 10
        while os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                for pid in [*_descendants(self.pid), self.pid]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                break
            time.sleep(0.05)
        os.close(self.fd)


def _natively_then_traced(capture: Path, session: Callable[[_Terminal, str], None]) -> None:
    """`session(terminal, prefix)` in an interactive shell, with the program run natively
    (prefix "") and then under `leaktrace run -o capture`."""
    leaktrace = " ".join([*LEAKTRACE, "run", "-o", str(capture), "--"])
    for prefix in ("", leaktrace):
        terminal = _Terminal()
        try:
            session(terminal, prefix)
        finally:
            terminal.close()


def test_an_interactive_shells_job_reads_the_terminal_and_obeys_ctrl_c_and_ctrl_z(
        tmp_path: Path) -> None:
    """Typed lines reach the program, Ctrl-C reaches its handler once, Ctrl-Z stops the job,
    `fg` resumes it with the terminal; the report follows its end."""
    exe = compile_source(tmp_path, "reads_terminal.c", READS_THE_TERMINAL, "-O0", "-g")

    def session(terminal: _Terminal, prefix: str) -> None:
        terminal.type(f"{prefix} {exe} 2>{tmp_path}/stderr.txt")
        terminal.expect("ready")
        terminal.type("hello")
        terminal.expect("read hello")
        time.sleep(0.5)  # back in read(), which the handler's signal interrupts
        terminal.type("\x03")
        terminal.expect("interrupts 1")
        terminal.type("\x1a")
        terminal.expect("Stopped")
        terminal.expect("$ ")
        terminal.type("fg")
        time.sleep(0.5)
        terminal.type("again")
        terminal.expect("read again")
        terminal.type("end")
        terminal.expect("$ ")
        terminal.type("echo status=$?")
        terminal.expect("status=7")

    _natively_then_traced(tmp_path / "terminal.lt", session)
    report = (tmp_path / "stderr.txt").read_text()
    assert "definitely lost: 42 bytes in 1 blocks" in report, report


def test_a_program_that_stops_itself_stops_the_interactive_job(tmp_path: Path,
                                                              signals_seen: Path) -> None:
    """raise(SIGSTOP) in an interactive shell's job: the shell sees the job stop, and `fg`
    continues the program to its end."""
    def session(terminal: _Terminal, prefix: str) -> None:
        terminal.type(f"{prefix} {signals_seen} stop 2>/dev/null")
        terminal.expect("Stopped")
        terminal.expect("$ ")
        terminal.type("fg")
        terminal.expect("resumed")
        terminal.expect("$ ")
        terminal.type("echo status=$?")
        terminal.expect("status=3")

    _natively_then_traced(tmp_path / "stop.lt", session)
    assert (tmp_path / "stop.lt").exists()


def test_ctrl_z_stops_a_pipeline_whose_later_member_is_leaktrace(tmp_path: Path) -> None:
    """`sleep 30 | leaktrace run cat`: leaktrace is not its group's leader, but the terminal's
    Ctrl-Z reaches it: it stops with the program, so the shell sees the whole job stop."""
    def session(terminal: _Terminal, prefix: str) -> None:
        terminal.type(f"sleep 30 | {prefix} cat 2>/dev/null")
        time.sleep(1)
        terminal.type("\x1a")
        terminal.expect("Stopped")
        terminal.expect("$ ")
        terminal.type("fg")
        time.sleep(0.5)
        terminal.type("\x03")
        terminal.expect("$ ")
        terminal.type("echo status=$?")
        terminal.expect("status=130")

    _natively_then_traced(tmp_path / "pipeline.lt", session)


def test_ctrl_c_reaches_a_program_that_left_leaktraces_group(tmp_path: Path) -> None:
    """coreutils `timeout` puts itself in a group of its own (setpgid), a no-op for a shell's
    job leader; under leaktrace it leaves the terminal's group, and the Ctrl-C that reaches
    leaktrace is passed on to that group."""
    def session(terminal: _Terminal, prefix: str) -> None:
        terminal.type(f"{prefix} timeout 20 sleep 10 2>/dev/null")
        time.sleep(1.5)
        terminal.type("\x03")
        terminal.expect("$ ", timeout=5)  # not after the 10 s sleep
        terminal.type("echo status=$?")
        terminal.expect("status=130")

    _natively_then_traced(tmp_path / "timeout.lt", session)
