"""Take note of signals instead of acting on them, for the span of a critical section (the
injection must never be cut in half, Ctrl-C must end the collection window cleanly).

Not a signal mask: importing numpy starts OpenBLAS threads that block nothing, and the kernel
gives a process-directed signal to any thread that does not block it, so a mask on the main
thread alone would not hold SIGTERM back. Python handlers do, whichever thread the kernel
picks; the wakeup fd wakes wait() at once."""

from __future__ import annotations

import os
import select
import signal
from collections.abc import Iterable
from types import FrameType, TracebackType


class SignalWatch:
    """`with SignalWatch({SIGINT, SIGTERM}) as watch:` ... `watch.received` lists the signals
    that arrived, oldest first; `watch.wait(seconds)` sleeps until one arrives."""

    def __init__(self, signals: Iterable[int]) -> None:
        self.signals = frozenset(signals)
        self.received: list[int] = []
        self._previous_handlers: dict[int, object] = {}
        self._previous_fd = -1
        self._pipe: tuple[int, int] | None = None

    def __enter__(self) -> SignalWatch:
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._pipe = (read_end, write_end)
        self._previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        for signum in self.signals:
            self._previous_handlers[signum] = signal.signal(signum, self._note)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for signum, handler in self._previous_handlers.items():
            # A handler installed inside the block stays: it takes over with no gap.
            if signal.getsignal(signum) == self._note:
                signal.signal(signum, handler)  # type: ignore[arg-type]
        signal.set_wakeup_fd(self._previous_fd)
        if self._pipe is not None:
            for fd in self._pipe:
                os.close(fd)
        self._pipe = None

    def _note(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)

    def wait(self, timeout: float) -> None:
        """Until a signal arrives (any: the wakeup fd is process-wide) or `timeout` passes."""
        assert self._pipe is not None
        select.select([self._pipe[0]], [], [], max(timeout, 0.0))
        try:
            while os.read(self._pipe[0], 4096):
                pass
        except BlockingIOError:
            pass


def _deadly_signals() -> list[int]:
    """Every catchable signal whose default action ends or stops the process (SIGKILL and
    SIGSTOP cannot be caught; faults such as SIGSEGV are our own bugs, not someone's kill)."""
    names = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGPIPE", "SIGALRM",
             "SIGTERM", "SIGSTKFLT", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGXCPU", "SIGXFSZ",
             "SIGVTALRM", "SIGPROF", "SIGIO", "SIGPWR")
    found = [int(getattr(signal, name)) for name in names if hasattr(signal, name)]
    return found + list(range(signal.SIGRTMIN, signal.SIGRTMAX + 1))


class DeferredSignals:
    """`with DeferredSignals():` every deadly signal that still has its default action is
    held back (noted by a handler) and delivered again, with its default action, when the
    block ends: a Ctrl-\\ or a stray SIGUSR1 during the injection then ends leaktrace after
    the target's thread is restored, never in the middle. Signals someone already handles
    (a SignalWatch) are left to their handler."""

    def __init__(self) -> None:
        self.noted: list[int] = []
        self._taken: list[int] = []

    def __enter__(self) -> DeferredSignals:
        for signum in _deadly_signals():
            try:
                if signal.getsignal(signum) is signal.SIG_DFL:
                    signal.signal(signum, self._note)
                    self._taken.append(signum)
            except (OSError, ValueError):
                continue  # reserved by the C library or the platform
        return self

    def _note(self, signum: int, _frame: FrameType | None) -> None:
        if signum not in self.noted:
            self.noted.append(signum)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for signum in self._taken:
            signal.signal(signum, signal.SIG_DFL)
        for signum in self.noted:
            signal.raise_signal(signum)
