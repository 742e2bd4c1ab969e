"""Signals leaktrace was started with ignored (`nohup` ignores SIGHUP; a shell without job
control starts background jobs with SIGINT and SIGQUIT ignored; `trap '' SIG`), which the
traced program must inherit ignored too, as it would without leaktrace. Python keeps an
inherited SIG_IGN for SIGINT and every other signal, so it can be read at start; it sets
SIGPIPE and SIGXFSZ to ignored itself, whose inherited disposition is therefore lost (the
program gets them at their default, as from any Python launcher)."""

from __future__ import annotations

import signal

_ignored: frozenset[int] = frozenset()
_SET_BY_PYTHON = frozenset(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, name))


def remember() -> None:
    global _ignored
    ignored = set()
    for sig in signal.valid_signals():
        if sig in _SET_BY_PYTHON:
            continue
        try:
            if signal.getsignal(sig) == signal.SIG_IGN:
                ignored.add(sig)
        except (OSError, ValueError):  # signals Python cannot query
            continue
    _ignored = frozenset(ignored)


def ignored_at_start(sig: int) -> bool:
    return sig in _ignored
