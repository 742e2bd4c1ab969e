"""The file descriptors leaktrace itself inherited (above stderr), so that the traced program
inherits them too, as it would without leaktrace: a shell's `3>file` or process substitution,
a make jobserver's pipe, systemd's LISTEN_FDS sockets. Remembered at start, before leaktrace
opens anything of its own; each is passed on only if it is still the same open file."""

from __future__ import annotations

import os

_inherited: dict[int, tuple[int, int]] = {}  # fd -> (st_dev, st_ino) at start


def remember() -> None:
    try:
        listed = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for fd in listed:
        if fd <= 2:
            continue
        try:  # the listing's own descriptor is closed by now
            st = os.fstat(fd)
        except OSError:
            continue
        _inherited[fd] = (st.st_dev, st.st_ino)


def still_open() -> tuple[int, ...]:
    """The remembered descriptors that still name the file they named at start."""
    kept = []
    for fd, identity in sorted(_inherited.items()):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == identity:
            kept.append(fd)
    return tuple(kept)
