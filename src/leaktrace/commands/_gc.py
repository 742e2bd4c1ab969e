"""The cycle collector off while a command builds and writes a report."""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def without_cycle_collection(command: Callable[P, R]) -> Callable[P, R]:
    """A report of a big capture is millions of objects that live until the command ends
    and form no cycles: every full collection would walk them all again (a third of the
    time of a million-record report). Collection is back on when the command returns, for
    whoever runs commands in-process (click's test runner)."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        collecting = gc.isenabled()
        gc.disable()
        try:
            return command(*args, **kwargs)
        finally:
            if collecting:
                gc.enable()

    return wrapper
