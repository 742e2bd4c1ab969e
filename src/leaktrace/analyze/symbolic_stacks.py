"""A backtrace's identity across runs, processes and tools: the names of its frames, not
their addresses. Two runs load the same binaries at different addresses (ASLR), and a rebuilt
binary moves code around, but the functions on the path stay the same. Left out on purpose:
- line numbers, unless the frame's module is the same build (GNU build id) in every report
  compared: in a rebuilt binary an edit elsewhere in a file would otherwise break every match
  below it, while in one build they keep two allocation sites of one function apart;
- the compiler's clone suffixes (`below.constprop.0`, `.isra.0`, `.part.1`, `.cold`, in C++
  `below(void (*)()) [clone .constprop.0]`): valgrind names a clone by its symbol, leaktrace by
  its DWARF name;
- an inlined call's qualification, parameters and template arguments: valgrind names it by the
  debug info's short name;
- the process start-up frames outside main (`_start`, `__libc_start_main`, `start_thread`,
  ...): valgrind cuts its backtraces there, leaktrace does not;
so a valgrind XML file and a leaktrace capture of the same program match too."""

from __future__ import annotations

import os

from leaktrace.analyze.frame_totals import PROCESS_START_FUNCTIONS
from leaktrace.model import Frame, LeakRecord, Report
from leaktrace.symbolize.names import inlined_names, without_clone

# (function or module+offset, file name, line when the module is one build everywhere)
FrameKey = tuple[str, str, int | None]
StackKey = tuple[str, str | None, tuple[FrameKey, ...]]  # (API kind, leak kind, frames)


def same_builds(reports: list[Report]) -> frozenset[str]:
    """File names of the modules loaded with one and the same build id in every report (none
    for sources without build ids, like valgrind XML): their line numbers can be compared."""
    common: dict[str, str] | None = None
    for report in reports:
        ids = {os.path.basename(m.path): m.build_id for m in report.modules if m.build_id}
        common = ids if common is None else {
            name: build for name, build in common.items() if ids.get(name) == build}
    return frozenset(common or ())


def frame_key(frame: Frame, same_build: frozenset[str] = frozenset()) -> FrameKey:
    module = os.path.basename(frame.module) if frame.module else "?"
    line = frame.line if module in same_build else None
    if frame.function:
        name = without_clone(frame.function)
        if frame.inlined:
            # valgrind names an inlined call by its debug info's short name ("make" for
            # app::Box<app::Widget>::make(int)), leaktrace's symbolizer by the qualified one
            name = min(inlined_names(name), key=len, default=name)
        return name, os.path.basename(frame.file) if frame.file else "", line
    return f"{module}+{frame.offset:#x}" if frame.offset is not None else module, "", None


# C++'s allocation functions, by their demangled names' start: `operator new(unsigned long)`,
# `operator new[](unsigned long, std::nothrow_t const&)`, ...
_CXX_NEW = "operator new"


def stack_key(record: LeakRecord, same_build: frozenset[str] = frozenset()) -> StackKey:
    """The API is C++'s `operator new` for any of its forms, whichever way the source says
    it: valgrind's XML and a capture name the form as the record's kind, but a capture of an
    older leaktrace has kind malloc and the C++ runtime's operator new as the first frame (its
    `new[]` calls `new`, often as a tail call: new[] and new are one API here)."""
    frames = list(record.frames)
    while frames and frames[-1].function in PROCESS_START_FUNCTIONS:
        frames.pop()
    api = _CXX_NEW if record.kind.startswith(_CXX_NEW) else record.kind
    while frames and (frames[0].function or "").startswith(_CXX_NEW):
        frames.pop(0)
        api = _CXX_NEW
    return api, record.leak_kind, tuple(frame_key(f, same_build) for f in frames)
