"""The program as a shell's job sees it: it stays in leaktrace's process group, so that the
terminal's signals (Ctrl-C, Ctrl-Z, a hangup), a pipeline's other members and a signal for the
whole job reach it as they would have. (A group of its own would make its setsid() fail as a
job leader's does, but it also took the program out of a pipeline's group and the shell's
`fg`, `kill %1` and hangups: measured in the field and dropped.) What leaktrace adds is
passing on what is sent to its own pid, and, in an interactive shell's job, stopping when the
program stops."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import time
from collections.abc import Callable
from typing import cast

from leaktrace.control.client import process_stopped


def _has_controlling_terminal() -> bool:
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC))
    except OSError:
        return False
    return True


def _parent_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0
    # pid (comm) state ppid ...: comm may hold spaces and parentheses, the last ')' ends it.
    return int(stat[stat.rindex(b")") + 2:].split()[1])


class Job:
    """The program as a job: whether it is an interactive shell's, and how a signal meant for
    it reaches it."""

    def __init__(self) -> None:
        # The leader of a group in a session with a terminal: a job of an interactive shell,
        # which watches it stop and continues it (`fg`, `bg`).
        # Also set once a terminal's signal reaches leaktrace (a pipeline's later member).
        self.interactive = os.getpgrp() == os.getpid() and _has_controlling_terminal()
        self.pid = 0
        self.stopped_by = 0  # the signal that stopped the program, while it is stopped
        self._last_passed_on = (0, 0, 0.0)  # (signal, sender, time.monotonic()) of pass_on

    def started(self, pid: int) -> None:
        self.pid = pid

    def sent_by_the_program(self, sender: int) -> bool:
        """The program (or a process it started) signalled its own group, which leaktrace is
        in: passing that on would make the program signal itself twice."""
        for _ in range(64):  # the ancestry is short; a loop in it cannot be
            if sender == self.pid:
                return True
            if sender <= 1:
                return False
            sender = _parent_of(sender)
        return False

    def send(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def pass_on(self, sig: int, sender: int, sender_uid: int) -> None:
        """A signal sent to leaktrace by `sender`, for the program: tagged with its sender, so
        that the shim drops it when the program had the same signal from the same sender
        itself (sent to the group, or to every process: `timeout`, systemd), and else shows it
        to the program's handler as the sender's own (shim/forwarded.c). The same signal from
        the same sender again within REPEAT_MERGE_S is not passed on: the kernel merges two
        such signals while the first is pending, as it would have had leaktrace not taken the
        first at once (`timeout` signals leaktrace's pid and then its group)."""
        now = time.monotonic()
        repeat = self._last_passed_on[:2] == (sig, sender)
        if repeat and now - self._last_passed_on[2] < REPEAT_MERGE_S:
            return
        self._last_passed_on = (sig, sender, now)
        tag = _PASSED_ON_TAG << 54 | (sender_uid & 0xFFFFFFFF) << 22 | (sender & 0x3FFFFF)
        if _sigqueue()(self.pid, sig, tag) != 0:
            self.send(sig)

    def send_from_the_terminal(self, sig: int) -> None:
        """The terminal signalled leaktrace's group, which the program had in it: if the
        program has left it for a group of its own (setpgid, as `timeout` does), where the
        terminal's signals no longer reach it, that group gets it, as it would have."""
        with contextlib.suppress(OSError):
            group = os.getpgid(self.pid)
            if group != os.getpgrp():
                os.killpg(group, sig)

    def continue_if_stopped(self) -> None:
        """leaktrace was continued (a shell's `fg` or `bg`, a `kill -CONT`): so is the program,
        if that did not reach it too."""
        if process_stopped(self.pid):
            self.send(signal.SIGCONT)


# Within this many seconds of passing a signal on, the same one from the same sender is merged
# with it (pass_on).
REPEAT_MERGE_S = 0.005

# The tag forwarded.c recognises in a passed-on signal's value: TAG << 54 | uid << 22 | pid.
_PASSED_ON_TAG = 0x2A9


@functools.cache
def _sigqueue() -> Callable[[int, int, int], int]:
    """libc's sigqueue(pid, sig, value), loaded on first use (a signal to pass on is rare)."""
    import ctypes

    function = ctypes.CDLL(None, use_errno=True).sigqueue
    # union sigval is passed as its 8-byte integer class, as a pointer would be
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_uint64]
    function.restype = ctypes.c_int
    return cast(Callable[[int, int, int], int], function)
