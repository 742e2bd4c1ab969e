"""Run the traced program to its end, the way a shell would for a foreground job."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn

from leaktrace.errors import LeaktraceError
from leaktrace.launcher import inherited_fds, inherited_signals
from leaktrace.launcher.job_control import Job

# Signals for the program that reach leaktrace: a supervisor's stop, reload or application
# signal sent to the pid it started; Ctrl-C and the like sent by a process (not the terminal);
# a stop or a continue. Blocked while the program runs and taken with sigwaitinfo, which says
# who sent each.
PASSED_ON = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGALRM, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU,
             signal.SIGCONT)
# Sent by the terminal to its foreground group (si_code SI_KERNEL): when leaktrace gets one,
# the program, in the same group, has had its own.
FROM_THE_TERMINAL = (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGHUP)
SI_KERNEL = 0x80
PR_SET_PDEATHSIG = 1


def _death_signal_setter() -> Callable[[], None]:
    """What sets SIGKILL as the program's signal for leaktrace's death (`kill -9`, `timeout
    -k` of leaktrace would have killed the program itself without leaktrace), loaded before
    the fork so the child only calls it."""
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    launcher = os.getpid()

    def set_it() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != launcher:  # leaktrace died before it was set
            os.kill(os.getpid(), signal.SIGKILL)

    return set_it


def run_supervised(argv: Sequence[str], executable: str, env: Mapping[str, str],
                   while_running: Callable[[], None] | None = None) -> tuple[int, int]:
    """(the program's return code as subprocess gives it: the exit code, or -N when signal N
    killed it; the program's pid, which exec keeps, so it is the pid the shim writes captures
    for). `while_running` is called on a thread of its own once the program has started, while
    leaktrace waits for it (what it raises is ignored: it may only prepare what comes after)."""
    # A signal leaktrace was started with ignored is the program's ignored too (it inherits
    # it so, before its exec), but one sent to leaktrace's pid is still passed on: a shell
    # without job control starts `leaktrace run PROG &` with SIGINT and SIGQUIT ignored, and
    # its `kill -QUIT $!` reaches a program that set a handler of its own. Ignored, leaktrace
    # would never see it (the kernel drops an ignored signal even while it is blocked).
    waited = {int(sig) for sig in PASSED_ON}
    waited.add(signal.SIGCHLD)
    ignored = sorted(sig for sig in waited if inherited_signals.ignored_at_start(sig))
    # Started with SIGCHLD ignored, the launcher's children would be reaped by the kernel and
    # the program's status lost (wait: ECHILD). The launcher takes the default; the program
    # gets SIGCHLD ignored back before its exec, as it would have inherited it.
    sigchld_ignored = signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN
    if sigchld_ignored:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    job = Job()
    mask_before = signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    for sig in ignored:  # blocked: taken by sigwaitinfo, never acted on
        signal.signal(sig, signal.SIG_DFL)
    die_with_the_launcher = _death_signal_setter()
    passed_fds = inherited_fds.still_open()

    def in_the_program() -> None:
        if sigchld_ignored:
            signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        for sig in ignored:
            signal.signal(sig, signal.SIG_IGN)
        die_with_the_launcher()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask_before)

    try:
        try:
            child = subprocess.Popen(list(argv), executable=executable, env=dict(env),
                                     pass_fds=passed_fds, preexec_fn=in_the_program)
        except OSError as e:
            raise LeaktraceError(f"cannot start {executable}: {e.strerror or e}") from None
        job.started(child.pid)
        # On a thread of its own, so that signals for the program are passed on meanwhile
        # (two that waited for it would have been one); it has the signals blocked too.
        preparing = threading.Thread(target=_quietly, args=(while_running,), daemon=True)
        preparing.start()
        child.returncode = _wait_for_the_end(job, waited)
        preparing.join()
    finally:
        _drop_pending(waited)  # meant for the program, which is gone
        for sig in ignored:
            signal.signal(sig, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask_before)
        if sigchld_ignored:
            signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    return child.returncode, child.pid


def _quietly(work: Callable[[], None] | None) -> None:
    if work is not None:
        with contextlib.suppress(Exception):
            work()


def _wait_for_the_end(job: Job, waited: set[int]) -> int:
    while True:
        info = signal.sigwaitinfo(waited)
        sig = info.si_signo
        if sig == signal.SIGCHLD:
            ended = _reap(job)
            if ended is not None:
                return ended
        elif info.si_code == SI_KERNEL and sig in FROM_THE_TERMINAL:
            # leaktrace is in a terminal's foreground job, whose shell watches it stop; the
            # program had the signal too, unless it left leaktrace's group (setpgid).
            job.interactive = True
            job.send_from_the_terminal(sig)
        elif info.si_code <= 0 and info.si_pid and job.sent_by_the_program(info.si_pid):
            continue  # the program signalled its own group
        elif sig == signal.SIGCONT:
            job.continue_if_stopped()
        else:
            job.pass_on(sig, info.si_pid, info.si_uid)
        if job.interactive and job.stopped_by:
            _stop_with_the_program(job, waited)


def _reap(job: Job) -> int | None:
    """The program's return code once it has ended; None while it runs. Notes the signal
    that stopped it (and forgets it when it is continued)."""
    while True:
        pid, status = os.waitpid(job.pid, os.WNOHANG | os.WUNTRACED | os.WCONTINUED)
        if pid == 0:
            return None
        if os.WIFSTOPPED(status):
            job.stopped_by = os.WSTOPSIG(status)
        elif os.WIFCONTINUED(status):
            job.stopped_by = 0
        else:
            return os.waitstatus_to_exitcode(status)


def _stop_with_the_program(job: Job, waited: set[int]) -> None:
    """In an interactive shell's job (leaktrace leads it, or the terminal's signals reach it)
    a stopped program stops leaktrace with the same signal, so that the shell sees the whole
    job stop (Ctrl-Z, a read of the terminal in the background, a SIGSTOP), and its `fg` or
    `bg` continues both. Elsewhere nobody would continue leaktrace when the program is
    continued by its pid: it does not stop."""
    _stop_like(job.stopped_by, waited)
    job.stopped_by = 0
    job.continue_if_stopped()
    with contextlib.suppress(OSError):  # the SIGCONT that woke leaktrace: handled now
        signal.sigtimedwait([signal.SIGCONT], 0)


def _stop_like(sig: int, waited: set[int]) -> None:
    if sig == signal.SIGSTOP or sig not in waited:
        os.kill(os.getpid(), signal.SIGSTOP)
        return
    previous = signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])  # stopped here until continued
    signal.pthread_sigmask(signal.SIG_BLOCK, [sig])
    signal.signal(sig, previous)


def _drop_pending(waited: set[int]) -> None:
    with contextlib.suppress(OSError):
        while signal.sigtimedwait(waited, 0) is not None:
            pass


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
