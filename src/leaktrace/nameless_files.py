"""Files that leave nothing behind: no name in any directory, reachable by the processes of
our user as /proc/<our pid>/fd/<n> while we hold them open. However leaktrace ends (SIGKILL
included), the kernel frees them with its last descriptor: the launcher's capture notices
and attach's settings file and notices never pile up in /tmp."""

from __future__ import annotations

import os
import tempfile
from types import TracebackType


class NamelessFile:
    """An empty file without a name; `path` opens it (for our user) while this is open."""

    def __init__(self, directory: str | None = None) -> None:
        directory = directory or tempfile.gettempdir()
        try:
            self.fd = os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
        except OSError:  # a filesystem without O_TMPFILE: a name for an instant
            self.fd, name = tempfile.mkstemp(prefix="leaktrace-", dir=directory)
            os.unlink(name)
        self.path = f"/proc/{os.getpid()}/fd/{self.fd}"

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> NamelessFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
