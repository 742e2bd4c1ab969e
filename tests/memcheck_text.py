"""Run valgrind memcheck on a test program and read its text output: the LEAK SUMMARY (with
the "reachable via heuristic" lines) and the loss records with their stacks. The summary
parser also reads leaktrace's text report, which prints the same lines."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

VALGRIND = shutil.which("valgrind")
needs_valgrind = pytest.mark.skipif(VALGRIND is None, reason="valgrind is not installed")

KINDS = ("definitely lost", "indirectly lost", "possibly lost", "still reachable")

_PID_PREFIX = re.compile(r"^==\d+== ?")
_SUMMARY = re.compile(r"^\s*(definitely lost|indirectly lost|possibly lost|still reachable|"
                      r"suppressed): ([\d,]+) bytes in ([\d,]+) blocks$")
_HEURISTIC = re.compile(r"^\s+(\w+)\s*: ([\d,]+) bytes in ([\d,]+) blocks$")
_RECORD = re.compile(r"^([\d,]+)(?: \(([\d,]+) direct, ([\d,]+) indirect\))? bytes in "
                     r"([\d,]+) blocks are (definitely lost|indirectly lost|possibly lost|"
                     r"still reachable) in loss record ([\d,]+) of ([\d,]+)$")
_FRAME = re.compile(r"^\s+(?:at|by) 0x[0-9A-Fa-f]+: (.*) \(([^()]*)\)$")


def _int(text: str) -> int:
    return int(text.replace(",", ""))


@dataclass
class LeakSummary:
    kinds: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind: (bytes, blocks)
    suppressed: tuple[int, int] = (0, 0)
    heuristics: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class LossRecord:
    leak_kind: str
    bytes: int  # direct + indirect
    direct: int
    indirect: int
    blocks: int
    number: int
    total: int
    frames: list[tuple[str, str]] = field(default_factory=list)  # (function, "file:line")

    def lines_in(self, source: str) -> list[int]:
        """Lines of the frames in `source`, innermost first."""
        lines = []
        for _function, where in self.frames:
            file, _, line = where.rpartition(":")
            if Path(file).name == source and line.isdigit():
                lines.append(int(line))
        return lines


def _lines(text: str) -> list[str]:
    return [_PID_PREFIX.sub("", line.rstrip()) for line in text.splitlines()]


def parse_leak_summary(text: str) -> LeakSummary:
    """The LEAK SUMMARY block, from valgrind's output or leaktrace's text report."""
    lines = _lines(text)
    start = next(i for i, line in enumerate(lines) if line.strip() == "LEAK SUMMARY:")
    summary = LeakSummary()
    in_heuristics = False
    for line in lines[start + 1:]:
        if "of which reachable via heuristic:" in line:
            in_heuristics = True
            continue
        match = _SUMMARY.match(line)
        if match:
            in_heuristics = False
            value = (_int(match[2]), _int(match[3]))
            if match[1] == "suppressed":
                summary.suppressed = value
                break
            summary.kinds[match[1]] = value
            continue
        heuristic = _HEURISTIC.match(line) if in_heuristics else None
        if heuristic:
            summary.heuristics[heuristic[1]] = (_int(heuristic[2]), _int(heuristic[3]))
    return summary


def parse_loss_records(text: str) -> list[LossRecord]:
    records: list[LossRecord] = []
    current: LossRecord | None = None
    for line in _lines(text):
        match = _RECORD.match(line.strip())
        if match:
            total = _int(match[1])
            direct = _int(match[2]) if match[2] else total
            indirect = _int(match[3]) if match[3] else 0
            current = LossRecord(match[5], total, direct, indirect, _int(match[4]),
                                 _int(match[6]), _int(match[7]))
            records.append(current)
            continue
        frame = _FRAME.match(line)
        if current is not None and frame:
            current.frames.append((frame[1], frame[2]))
        elif not line.strip():
            current = None
    return records


@dataclass
class MemcheckRun:
    summary: LeakSummary
    records: list[LossRecord]
    text: str

    def records_through(self, source: str, line: int) -> list[LossRecord]:
        """Loss records whose stack passes through `source`:`line`."""
        return [r for r in self.records if line in r.lines_in(source)]


def run_memcheck(exe: Path, *args: str) -> MemcheckRun:
    """valgrind --leak-check=full --show-leak-kinds=all, as a user would run it."""
    assert VALGRIND is not None
    done = subprocess.run([VALGRIND, "--leak-check=full", "--show-leak-kinds=all",
                           "--num-callers=30", str(exe), *args], capture_output=True, text=True,
                          timeout=300, check=False)
    return MemcheckRun(parse_leak_summary(done.stderr), parse_loss_records(done.stderr),
                       done.stderr)
