"""A backtrace's identity across runs, processes and tools: the names of its frames, not
their addresses. Two runs load the same binaries at different addresses (ASLR), and a rebuilt
binary moves code around, but the functions on the path stay the same. Left out on purpose:
- line numbers: an edit elsewhere in a file would otherwise break every match below it;
- the compiler's clone suffixes (`below.constprop.0`, `.isra.0`, `.part.1`, `.cold`): valgrind
  names a clone by its symbol, leaktrace by its DWARF name;
- the process start-up frames outside main (`_start`, `__libc_start_main`, `start_thread`,
  ...): valgrind cuts its backtraces there, leaktrace does not;
so a valgrind XML file and a leaktrace capture of the same program match too."""

from __future__ import annotations

import os
import re

from leaktrace.analyze.frame_totals import PROCESS_START_FUNCTIONS
from leaktrace.model import Frame, LeakRecord

FrameKey = tuple[str, str]  # (function or module+offset, file name)
StackKey = tuple[str, str | None, tuple[FrameKey, ...]]  # (API kind, leak kind, frames)

_CLONE_SUFFIX = re.compile(r"(\.(constprop|isra|part|cold|lto_priv|localalias)(\.\d+)?)+$")


def frame_key(frame: Frame) -> FrameKey:
    if frame.function:
        name = _CLONE_SUFFIX.sub("", frame.function)
        return name, os.path.basename(frame.file) if frame.file else ""
    module = os.path.basename(frame.module) if frame.module else "?"
    return f"{module}+{frame.offset:#x}" if frame.offset is not None else module, ""


def stack_key(record: LeakRecord) -> StackKey:
    frames = list(record.frames)
    while frames and frames[-1].function in PROCESS_START_FUNCTIONS:
        frames.pop()
    return record.kind, record.leak_kind, tuple(frame_key(f) for f in frames)
