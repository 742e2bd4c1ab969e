"""Colour for the text report on a terminal: headings bold, loss records by leak kind
(definitely lost red, possibly lost yellow), function names of backtraces bold, non-zero
lost totals in the LEAK SUMMARY red; in `leaktrace diff`, growth red and shrinking green.
Applied to the finished text, line by line, so the text renderer stays the one source of the
words; never used for files or pipes."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TextIO

RESET, BOLD = "\x1b[0m", "\x1b[1m"
RED, YELLOW, CYAN, GREEN = "\x1b[1;31m", "\x1b[1;33m", "\x1b[36m", "\x1b[1;32m"

_LOSS = re.compile(r" are (definitely|possibly|indirectly) lost in loss record |"
                   r" are still reachable in loss record ")
_SUMMARY = re.compile(r"^(\s+)(definitely lost|possibly lost|indirectly lost): ([\d,]+) bytes")
_FRAME = re.compile(r"^(\s+#\d+\s+(?:0x[0-9a-f]+\s+)?)(\S.*?)(  |$)")
_KIND_COLORS = {"definitely": RED, "possibly": YELLOW, "indirectly": YELLOW}


def use_color(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """On a terminal only, and not when NO_COLOR is set to anything (https://no-color.org)
    or the terminal is dumb."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def colorize_report(text: str) -> str:
    return "\n".join(_line(line) for line in text.split("\n"))


def _line(line: str) -> str:
    if (line.startswith("== ") and line.endswith(" ==")) or line == "LEAK SUMMARY:":
        return f"{BOLD}{line}{RESET}"
    loss = _LOSS.search(line)
    if loss:
        return f"{_KIND_COLORS.get(loss.group(1) or '', CYAN)}{line}{RESET}"
    summary = _SUMMARY.match(line)
    if summary and summary.group(3) != "0":
        return f"{summary.group(1)}{RED}{line[len(summary.group(1)):]}{RESET}"
    frame = _FRAME.match(line)
    if frame:
        return f"{frame.group(1)}{BOLD}{frame.group(2)}{RESET}{line[frame.end(2):]}"
    return line


_DIFF_COLORS = {"NEW": RED, "GREW": RED, "SHRANK": GREEN, "GONE": GREEN}


def colorize_diff(text: str) -> str:
    """`leaktrace diff`'s text: each backtrace's headline by its status, frames as above."""
    lines = []
    for line in text.split("\n"):
        word = line.split(" ", 1)[0]
        if word in _DIFF_COLORS and " bytes (" in line:
            lines.append(f"{_DIFF_COLORS[word]}{line}{RESET}")
        else:
            lines.append(_line(line))
    return "\n".join(lines)
