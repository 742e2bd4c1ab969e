"""Run the traced program to its end, the way a shell would for a foreground job."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import NoReturn

from leaktrace.errors import LeaktraceError
from leaktrace.launcher import inherited_fds, inherited_signals

# Sent to the launcher's pid by whoever started it (a supervisor's stop, reload or
# application signal): meant for the program, and the launcher would die of most of them.
FORWARDED = (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM)
# The terminal sends these to the whole foreground group, the program included: the program
# reacts (writes its capture, dies) and the launcher must outlive it to print the report.
LEFT_TO_THE_PROGRAM = (signal.SIGINT, signal.SIGQUIT)


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    """A handler, not SIG_IGN: exec resets handlers to default, whereas SIG_IGN would be
    inherited and the program could no longer be interrupted."""


def _ignore_sigchld() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)


def run_supervised(argv: Sequence[str], executable: str, env: Mapping[str, str],
                   while_running: Callable[[], None] | None = None) -> tuple[int, int]:
    """(the program's return code as subprocess gives it: the exit code, or -N when signal N
    killed it; the program's pid, which exec keeps, so it is the pid the shim writes captures
    for). `while_running` is called once the program has started, before waiting for it
    (what it raises is ignored: it may only prepare what comes after)."""
    child: subprocess.Popen[bytes] | None = None
    pending: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        if child is None:
            pending.append(signum)
        elif child.returncode is None:
            child.send_signal(signum)

    # A signal leaktrace was started with ignored stays ignored, so the program inherits it so.
    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED
                if not inherited_signals.ignored_at_start(sig)}
    previous.update({sig: signal.signal(sig, _ignore) for sig in LEFT_TO_THE_PROGRAM
                     if not inherited_signals.ignored_at_start(sig)})
    # Started with SIGCHLD ignored, the launcher's children would be reaped by the kernel and
    # the program's status lost (wait: ECHILD). The launcher takes the default; the program
    # gets SIGCHLD ignored back before its exec, as it would have inherited it.
    child_setup = None
    if signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN:
        previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        child_setup = _ignore_sigchld
    try:
        try:
            child = subprocess.Popen(list(argv), executable=executable, env=dict(env),
                                     pass_fds=inherited_fds.still_open(),
                                     preexec_fn=child_setup)
        except OSError as e:
            raise LeaktraceError(f"cannot start {executable}: {e.strerror or e}") from None
        for signum in pending:
            child.send_signal(signum)
        if while_running is not None:
            with contextlib.suppress(Exception):
                while_running()
        returncode = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return returncode, child.pid


def signal_description(returncode: int) -> str | None:
    """'killed by SIGSEGV' for a program a signal killed (return code -N), else None; an
    exit(139) is an exit status, not a signal."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return None


def shell_status(returncode: int) -> int:
    """The status a shell shows for it: the exit code, or 128+N for signal N."""
    return 128 - returncode if returncode < 0 else returncode


def end_like(returncode: int) -> NoReturn:
    """Leave the way the program left: with its exit code, or killed by its signal (so a
    parent sees WIFSIGNALED as without leaktrace). The launcher's own core dump is not the
    program's: none is written."""
    if returncode >= 0:
        raise SystemExit(returncode)
    sig = -returncode
    sys.stdout.flush()
    sys.stderr.flush()
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    with contextlib.suppress(OSError, ValueError):  # SIGKILL's disposition cannot be set
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
    os.kill(os.getpid(), sig)
    raise SystemExit(shell_status(returncode))  # a signal that does not kill (SIGCHLD...)
