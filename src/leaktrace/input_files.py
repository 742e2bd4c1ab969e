"""Opening the files leaktrace reads (captures, valgrind XML, mtrace logs, suppression files):
regular files only, never blocking on the open, and never reading more than the file holds.

A FIFO blocks an ordinary open() until a writer comes, and /dev/zero or /dev/urandom never
end: both are refused with one line before a byte is read. Reads are bounded by the size
fstat gave, so a file that grows while it is read cannot take the memory with it."""

from __future__ import annotations

import fcntl
import os
import stat
from typing import BinaryIO

from leaktrace.errors import LeaktraceError

_FILE_TYPES = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


def file_type_name(mode: int) -> str:
    return _FILE_TYPES.get(stat.S_IFMT(mode), "not a regular file")


def open_regular(path: str, what: str,
                 error: type[LeaktraceError] = LeaktraceError) -> BinaryIO:
    """Open `path` for reading; `error` (one line naming `what`) unless it is a regular
    file. O_NONBLOCK keeps the open of a FIFO from waiting for a writer; it is
    cleared again before any read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as e:
        raise error(f"cannot read {what} {os.fsdecode(path)}: {e.strerror or e}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"cannot read {what} {os.fsdecode(path)}: it is {file_type_name(mode)}, "
                        "not a regular file")
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str, what: str, limit: int | None = None,
                 error: type[LeaktraceError] = LeaktraceError) -> bytes:
    """The whole content of a regular file, read up to the size it had when opened.
    `limit`: refuse files larger than this many bytes (no reader of `what` needs more)."""
    with open_regular(path, what, error) as f:
        size = os.fstat(f.fileno()).st_size
        if limit is not None and size > limit:
            raise error(f"{os.fsdecode(path)} is {size:,} bytes: too large for a "
                                 f"{what} (at most {limit:,})")
        return f.read(size)

