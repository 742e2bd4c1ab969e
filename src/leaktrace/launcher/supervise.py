"""Run the traced program to its end, the way a shell would for a foreground job."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Mapping, Sequence
from types import FrameType

from leaktrace.errors import LeaktraceError

FORWARDED = (signal.SIGTERM, signal.SIGHUP)
# The terminal sends these to the whole foreground group, the program included: the program
# reacts (writes its capture, dies) and the launcher must outlive it to print the report.
LEFT_TO_THE_PROGRAM = (signal.SIGINT, signal.SIGQUIT)


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    """A handler, not SIG_IGN: exec resets handlers to default, whereas SIG_IGN would be
    inherited and the program could no longer be interrupted."""


def run_supervised(argv: Sequence[str], executable: str,
                   env: Mapping[str, str]) -> tuple[int, int]:
    """(exit status as a shell reports it: the exit code, or 128+N when killed by signal N;
    the program's pid, which exec keeps, so it is the pid the shim writes captures for)."""
    child: subprocess.Popen[bytes] | None = None
    pending: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        if child is None:
            pending.append(signum)
        elif child.returncode is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    previous.update({sig: signal.signal(sig, _ignore) for sig in LEFT_TO_THE_PROGRAM})
    try:
        try:
            child = subprocess.Popen(list(argv), executable=executable, env=dict(env))
        except OSError as e:
            raise LeaktraceError(f"cannot start {executable}: {e.strerror or e}") from None
        for signum in pending:
            child.send_signal(signum)
        returncode = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return (128 - returncode if returncode < 0 else returncode), child.pid


def signal_description(returncode: int) -> str | None:
    """'killed by SIGSEGV' for a 128+N status, else None."""
    if returncode > 128:
        try:
            return f"killed by {signal.Signals(returncode - 128).name}"
        except ValueError:
            return None
    return None
