"""The names of a process's captures: the main one, `<name>.lt`, and the numbered ones
written while it ran, `<name without .lt>.<reason>-<n>.lt` (report, scan, mtrace, ...).
Light on purpose: the launcher reads these names before any analysis module is imported."""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass

_NUMBERED = re.compile(r"^(?P<base>.*)\.(?P<label>[a-z]+)-(?P<number>\d+)\.lt$")


@dataclass(frozen=True)
class CaptureName:
    base: str  # the main capture's path without .lt
    label: str | None  # report, scan, mtrace, muntrace; None for the main capture
    number: int | None

    @property
    def short(self) -> str:
        return f"{self.label}-{self.number}" if self.label else "final capture"


def parse_capture_name(path: str) -> CaptureName:
    match = _NUMBERED.match(path)
    if match:
        return CaptureName(match["base"], match["label"], int(match["number"]))
    base = path[:-3] if path.endswith(".lt") else path
    return CaptureName(base, None, None)


def numbered_siblings(path: str) -> list[tuple[int, str]]:
    """(number, path) of every numbered capture beside `path` with the same main name."""
    name = parse_capture_name(os.path.abspath(path))
    found = []
    for candidate in glob.glob(glob.escape(name.base) + ".*-*.lt"):
        other = parse_capture_name(candidate)
        if other.base == name.base and other.number is not None:
            found.append((other.number, candidate))
    return sorted(found)
