"""A backtrace's identity across runs and processes: the names of its frames, not their
addresses. Two runs load the same binaries at different addresses (ASLR), and a rebuilt
binary moves code around, but the functions on the path stay the same. Line numbers are left
out on purpose: an edit elsewhere in the file would otherwise break every match below it."""

from __future__ import annotations

import os

from leaktrace.model import Frame, LeakRecord

FrameKey = tuple[str, str]  # (function or module+offset, file name)
StackKey = tuple[str, str | None, tuple[FrameKey, ...]]  # (API kind, leak kind, frames)


def frame_key(frame: Frame) -> FrameKey:
    if frame.function:
        return frame.function, os.path.basename(frame.file) if frame.file else ""
    module = os.path.basename(frame.module) if frame.module else "?"
    return f"{module}+{frame.offset:#x}" if frame.offset is not None else module, ""


def stack_key(record: LeakRecord) -> StackKey:
    return record.kind, record.leak_kind, tuple(frame_key(f) for f in record.frames)
