"""Hold signals back for a critical section (the injection must never be cut in half)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterable, Iterator


@contextlib.contextmanager
def signals_blocked(signals: Iterable[int]) -> Iterator[None]:
    """Block `signals` in this thread; they stay pending and are acted on when the previous
    mask comes back (or are consumed with sigtimedwait/sigpending meanwhile)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, set(signals))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
