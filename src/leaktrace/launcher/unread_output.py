"""After the program has ended, leaktrace's report goes to a reader that may be gone
(`leaktrace run PROG 2>&1 | head`), to a full disk or device (`2>/dev/full`), or nowhere
(`2>&-`, which the program had closed too): the report is then lost, but leaktrace still ends
as the program did (its status, its signal, or the leak gate's status), where Python would
end with 141 on the first write, or 1."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, TextIO


class _DroppedWhenUnread:
    """A text stream whose writes go to /dev/null once its reader has gone."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError:  # EPIPE, ENOSPC, EIO: the same for the program's ending
            self._drop()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError:
            self._drop()

    def _drop(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)
        with contextlib.suppress(OSError, ValueError):  # what was buffered goes there too
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def drop_when_unread() -> None:
    """From here on, standard output and error drop what their reader no longer takes."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:  # started with the descriptor closed
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 (kept to the end)
        elif not isinstance(stream, _DroppedWhenUnread):
            setattr(sys, name, _DroppedWhenUnread(stream))
