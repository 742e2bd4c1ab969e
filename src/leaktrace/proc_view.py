"""The /proc directory through which another process is seen. /proc/PID is its main
thread's: once that thread has ended (`pthread_exit`) while others go on, it reads as a
zombie whose maps, mem, descriptors, root and cwd are gone, though the process runs. Then
a live thread's /proc/PID/task/TID shows the same process."""

from __future__ import annotations

import os


def _ended(directory: str) -> bool:
    try:
        with open(f"{directory}/status", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("State:"):
                    return line.split()[1:2] in (["Z"], ["X"])
    except OSError:
        return True
    return False


def proc_dir(pid: int) -> str:
    """/proc/PID, or a live thread's directory when the main thread has ended; /proc/PID
    again when no thread lives (the process has ended)."""
    base = f"/proc/{pid}"
    if not _ended(base):
        return base
    try:
        tids = sorted(int(t) for t in os.listdir(f"{base}/task") if t.isdigit())
    except OSError:
        return base
    for tid in tids:
        if tid != pid and not _ended(f"{base}/task/{tid}"):
            return f"{base}/task/{tid}"
    return base
