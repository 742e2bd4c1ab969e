"""Which captures the shim wrote: it appends `capture <pid> <path>` to $LEAKTRACE_NOTIFY
for each one, and `failed <pid> <errno> <path>` for each one it could not write;
`traced <pid> <parent>` for each child it traces (--follow-children); `exec <pid> <file>`
when an image that wrote its capture execs `file`, `execfailed <pid> <file>` when that exec
failed; in attach mode, `detached <pid> <session>` when a detach ended the session."""

from __future__ import annotations

import contextlib
import glob
import os
from dataclasses import dataclass

from leaktrace.capture_names import parse_capture_name


@dataclass(frozen=True)
class CaptureNotice:
    pid: int
    path: str


@dataclass(frozen=True)
class CaptureFailure:
    """The shim could not write the capture `path`: errno `error`."""

    pid: int
    error: int
    path: str

    @property
    def reason(self) -> str:
        return os.strerror(self.error)


EXEC_LABEL = "exec"  # <main>.exec-<n>.lt: an image replaced by exec without fork

# The shim writes short lines; a notify file larger than this was not written by it.
_MAX_NOTIFY_BYTES = 16 << 20


def _lines(notify_path: str) -> list[list[bytes]]:
    """Each line's three fields: word, pid, the rest. A line cut short by a crash mid-write
    is skipped, never misread."""
    try:
        with open(notify_path, "rb") as f:
            raw = f.read(_MAX_NOTIFY_BYTES)
    except OSError:
        return []
    split = (line.split(b" ", 2) for line in raw.split(b"\n"))
    return [parts for parts in split
            if len(parts) == 3 and parts[1].isdigit() and parts[2]]


def read_notifications(notify_path: str) -> tuple[list[CaptureNotice], list[CaptureFailure]]:
    notices: list[CaptureNotice] = []
    failures: list[CaptureFailure] = []
    for parts in _lines(notify_path):
        if parts[0] == b"capture":
            notices.append(CaptureNotice(int(parts[1]), os.fsdecode(parts[2])))
        elif parts[0] == b"failed":
            error, _, path = parts[2].partition(b" ")
            if error.isdigit() and path:
                failures.append(CaptureFailure(int(parts[1]), int(error), os.fsdecode(path)))
    return notices, failures


def detached_sessions(notify_path: str, pid: int) -> set[str]:
    """The attach sessions of process `pid` that a detach ended."""
    return {os.fsdecode(parts[2]) for parts in _lines(notify_path)
            if parts[0] == b"detached" and int(parts[1]) == pid}


def traced_children(notify_path: str) -> set[int]:
    """The processes the shim traces as children (--follow-children)."""
    return {int(parts[1]) for parts in _lines(notify_path) if parts[0] == b"traced"}


def last_exec_targets(notify_path: str) -> dict[int, str]:
    """The file each process exec'd last, where that exec went through: if no capture came
    after it, the file may be one the shim cannot enter (setuid, static)."""
    targets: dict[int, str] = {}
    for parts in _lines(notify_path):
        if parts[0] == b"exec":
            targets[int(parts[1])] = os.fsdecode(parts[2])
        elif parts[0] == b"execfailed":
            targets.pop(int(parts[1]), None)
    return targets


def ended(pid: int, notices: list[CaptureNotice], failures: list[CaptureFailure]) -> bool:
    """Process `pid` wrote its final capture, or said it could not."""
    return (any(n.pid == pid and parse_capture_name(n.path).label is None for n in notices)
            or any(f.pid == pid for f in failures))


def find_capture(pid: int, notices: list[CaptureNotice], *, output: str | None,
                 capture_dir: str) -> str | None:
    """The launched process's final capture: from the notices (numbered on-demand and
    mtrace() captures are not it), else where it should be."""
    for notice in reversed(notices):
        if (notice.pid == pid and parse_capture_name(notice.path).number is None
                and _non_empty(notice.path)):
            return notice.path
    if output is not None:
        return output if _non_empty(output) else None
    found = [path for path in sorted(glob.glob(os.path.join(glob.escape(capture_dir),
                                                           f"leaktrace-*.{pid}.lt")))
             if _non_empty(path)]
    return found[-1] if found else None


def remove_empty_captures(pid: int, *, output: str | None, capture_dir: str) -> None:
    """Empty files where process `pid`'s final capture goes: opened early by a process that
    changed its user, then killed, or replaced by exec, before it wrote them."""
    candidates = glob.glob(os.path.join(glob.escape(capture_dir), f"leaktrace-*.{pid}.lt"))
    for path in ([output] if output else []) + candidates:
        with contextlib.suppress(OSError):
            if os.path.isfile(path) and os.path.getsize(path) == 0:
                os.remove(path)


def _non_empty(path: str) -> bool:
    """A capture file with something in it: the shim opens the final capture's file early
    when the program changes its user, and it stays empty if the program never gets to write
    it (killed by SIGKILL)."""
    try:
        return os.path.isfile(path) and os.path.getsize(path) > 0
    except OSError:
        return False


def numbered_captures(pid: int, notices: list[CaptureNotice]) -> list[str]:
    """The on-demand and mtrace() captures process `pid` wrote, in the order written."""
    return [n.path for n in notices
            if n.pid == pid and parse_capture_name(n.path).number is not None
            and parse_capture_name(n.path).label != EXEC_LABEL]


def exec_captures(pid: int, notices: list[CaptureNotice]) -> list[str]:
    """The captures of the images process `pid` replaced by exec, in order. The shim removes
    the file when the exec failed (the image lived on), so only existing files count."""
    return [n.path for n in notices
            if n.pid == pid and parse_capture_name(n.path).label == EXEC_LABEL
            and os.path.isfile(n.path)]
