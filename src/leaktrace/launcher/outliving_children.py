"""Traced children that outlive the program (--follow-children): multiprocessing's resource
tracker ends a moment after the program, a daemon it started keeps running. `run` waits a
little for their captures, so that the children's summary and --fail-on-leak count them,
and names those still running after that."""

from __future__ import annotations

import time
from dataclasses import dataclass

from leaktrace.control.client import process_alive
from leaktrace.launcher.notifications import (
    CaptureFailure,
    CaptureNotice,
    ended,
    read_notifications,
    traced_children,
)

# How long, at most, after the program's end: a child ending with it writes its capture in
# milliseconds; one still running after this is a daemon, not to be waited for.
GRACE_SECONDS = 2.0
POLL_SECONDS = 0.02


@dataclass(frozen=True)
class ChildrenAtEnd:
    notices: list[CaptureNotice]
    failures: list[CaptureFailure]
    still_running: list[int]  # traced children alive, without their final capture yet
    vanished: list[int]  # traced children gone without a capture or a failure (SIGKILL)


def wait_for_children(notify_path: str, main_pid: int,
                      grace: float = GRACE_SECONDS) -> ChildrenAtEnd:
    """The notifications once every traced child has written its final capture or is gone,
    or `grace` seconds have passed."""
    deadline = time.monotonic() + grace
    while True:
        notices, failures = read_notifications(notify_path)
        silent = sorted(pid for pid in traced_children(notify_path) - {main_pid}
                        if not ended(pid, notices, failures))
        running = [pid for pid in silent if process_alive(pid)]
        if not running or time.monotonic() >= deadline:
            vanished = [pid for pid in silent if pid not in running]
            return ChildrenAtEnd(notices, failures, running, vanished)
        time.sleep(POLL_SECONDS)
