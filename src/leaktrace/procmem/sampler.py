"""Cheap periodic memory samples of one process for `leaktrace watch`."""

from __future__ import annotations

from dataclasses import dataclass

from leaktrace.procmem.smaps import parse_rollup, read_proc_file

# What a sample holds and how the CSV and the chart name it.
METRICS = {
    "rss": "RSS",
    "pss": "Pss",
    "private_dirty": "Private dirty",
    "heap": "Heap ([heap] mapping)",
}


@dataclass(frozen=True)
class Sample:
    seconds: float  # since the first sample
    rss: int  # bytes
    pss: int
    private_dirty: int
    heap: int  # size of the [heap] mapping (brk heap); big blocks glibc mmaps are not in it

    def value(self, metric: str) -> int:
        return int(getattr(self, metric))


def heap_size(maps_text: str) -> int:
    """Size of the [heap] mapping(s) in /proc/PID/maps (much cheaper to read than smaps)."""
    total = 0
    for line in maps_text.splitlines():
        if line.endswith("[heap]"):
            start, _, end = line.split(None, 1)[0].partition("-")
            total += int(end, 16) - int(start, 16)
    return total


def take_sample(pid: int, seconds: float) -> Sample:
    """Raises LeaktraceError when the process is gone."""
    rollup = parse_rollup(read_proc_file(pid, "smaps_rollup"))
    return Sample(
        seconds=seconds,
        rss=rollup.get("Rss", 0),
        pss=rollup.get("Pss", 0),
        private_dirty=rollup.get("Private_Dirty", 0),
        heap=heap_size(read_proc_file(pid, "maps")),
    )
