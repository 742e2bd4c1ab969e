"""The cycle collector off for the rest of a command that builds a report."""

from __future__ import annotations

import gc


def no_cycle_collection() -> None:
    """A report of a big capture is millions of objects that live until the command ends
    and form no cycles: every full collection would walk them all again (a third of the
    time of a million-record report). The command's process is short-lived, so garbage in
    cycles is never a concern."""
    gc.disable()
