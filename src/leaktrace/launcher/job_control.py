"""The program's place among processes: where a shell made leaktrace a job of its own (the
leader of its process group), the program gets that place instead, as it would have had it
without leaktrace: it leads a group of its own and, if leaktrace was the terminal's foreground
job, has the terminal. The terminal's signals (Ctrl-C, Ctrl-Z, a hangup) then reach the
program alone and once, a signal for leaktrace's group is passed on once, and the program's
setsid() fails as it would. Elsewhere (a script's command, a supervisor's child) leaktrace
was not a group leader, and the program stays in leaktrace's group as it would have."""

from __future__ import annotations

import contextlib
import os
import signal


def _controlling_terminal() -> int | None:
    """A descriptor of the controlling terminal; None without one."""
    try:
        return os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None


def _is_foreground(terminal: int) -> bool:
    try:
        return os.tcgetpgrp(terminal) == os.getpgrp()
    except OSError:
        return False


def _parent_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0
    # pid (comm) state ppid ...: comm may hold spaces and parentheses, the last ')' ends it.
    return int(stat[stat.rindex(b")") + 2:].split()[1])


class Job:
    """The program as a job: its group, the terminal it may hold, and how a signal meant for
    it reaches it. The terminal calls (tcsetpgrp) are made with SIGTTOU blocked, which the
    supervisor's blocked signals include, so a background caller is not stopped by them."""

    def __init__(self) -> None:
        self.own_group = os.getpgrp() == os.getpid()
        # A job of an interactive shell (a group of its own in a session with a terminal):
        # its stops are the shell's business, so the program's are leaktrace's too.
        self.terminal = _controlling_terminal() if self.own_group else None
        self.interactive = self.terminal is not None
        self.pid = 0

    def enter(self) -> None:
        """In the program's process, between fork and exec: its own group, and the terminal
        if leaktrace is in the foreground, before the program could read it as a background
        job (which would stop it)."""
        if self.own_group:
            foreground = self.terminal is not None and _is_foreground(self.terminal)
            os.setpgid(0, 0)
            if self.terminal is not None and foreground:
                with contextlib.suppress(OSError):
                    os.tcsetpgrp(self.terminal, os.getpid())

    def started(self, pid: int) -> None:
        self.pid = pid

    def sent_by_the_program(self, sender: int) -> bool:
        """The program (or a process it started) signalled its own group, which leaktrace is
        in: passing that on would make the program signal itself twice."""
        if self.own_group:
            with contextlib.suppress(OSError):
                if os.getpgid(sender) == self.pid:
                    return True
        for _ in range(64):  # the ancestry is short; a loop in it cannot be
            if sender == self.pid:
                return True
            if sender <= 1:
                return False
            sender = _parent_of(sender)
        return False

    def send(self, sig: int) -> None:
        """A signal sent to leaktrace's pid, to the program's pid; SIGCONT to its whole group,
        which a stopped job is, as a shell's `fg` and `bg` send it."""
        with contextlib.suppress(ProcessLookupError):
            if sig == signal.SIGCONT and self.own_group:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)

    def is_stopped(self) -> bool:
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            return False
        return stat[stat.rindex(b")") + 2:][:1] in (b"T", b"t")

    def take_terminal(self) -> None:
        """The terminal back to leaktrace's group, as a shell takes it back from a job that
        ended or stopped, if the program's group has it."""
        if self.terminal is not None:
            with contextlib.suppress(OSError):
                if os.tcgetpgrp(self.terminal) == self.pid:
                    os.tcsetpgrp(self.terminal, os.getpgrp())

    def give_terminal(self) -> None:
        """To the program's group again, if the shell has given it back to leaktrace's (`fg`
        after a stop; not `bg`)."""
        if self.terminal is not None and _is_foreground(self.terminal):
            with contextlib.suppress(OSError):
                os.tcsetpgrp(self.terminal, self.pid)

    def close(self) -> None:
        self.take_terminal()
        if self.terminal is not None:
            os.close(self.terminal)
            self.terminal = None
