"""Does a suppression match a loss record?

The stack a suppression is matched against is the one valgrind would show: the allocation
function first (malloc, calloc, operator new, ...), then the record's frames, innermost first,
inlined frames each on their own. leaktrace's backtraces start at the caller of the allocation
API, so the API is put in front; a C++ `operator new` already heads the backtrace (the shim sees
its call to malloc), and valgrind shows it first too.

A valgrind entry's stack lines must match the top of that stack, `...` standing for any number
of frames (none included); frames below the last line do not matter. `fun:` is compared with
the demangled name leaktrace shows and, for a pattern written mangled as valgrind writes them
(`_Z...`), with the function's symbol as well. A LeakSanitizer `leak:` line matches when any
frame's function, source file or module contains the pattern."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

from leaktrace.leak_kinds import LEAK_KINDS
from leaktrace.model import Frame, LeakRecord
from leaktrace.suppressions.entries import (
    ANY_FRAMES,
    FUN,
    OBJ,
    FramePattern,
    LsanSuppression,
    Suppression,
)
from leaktrace.suppressions.linkage_names import LinkageNames
from leaktrace.suppressions.patterns import has_wildcards, lsan_match, valgrind_match
from leaktrace.symbolize.demangle import demangle

UNKNOWN = "???"  # what valgrind matches a frame without a function or object name against


def allocation_stack(record: LeakRecord) -> list[Frame]:
    """The record's stack as valgrind shows it: the allocation function, then the callers."""
    frames = list(record.frames)
    if frames and (frames[0].function or "").startswith("operator new"):
        return frames
    return [Frame(address=0, function=record.kind), *frames]


class SuppressionMatcher:
    def __init__(self, suppressions: Sequence[Suppression],
                 linkage_names: LinkageNames | None = None) -> None:
        self.suppressions = list(suppressions)
        self.linkage_names = linkage_names or LinkageNames()

    def match(self, record: LeakRecord) -> Suppression | None:
        """The first suppression (in file order) that matches the record, or None."""
        stack: list[Frame] | None = None
        for suppression in self.suppressions:
            if not _kind_matches(suppression, record.leak_kind):
                continue
            if stack is None:
                stack = allocation_stack(record)
            if isinstance(suppression, LsanSuppression):
                if any(_lsan_frame_matches(suppression.pattern, f) for f in stack):
                    return suppression
            elif self._stack_matches(suppression.frames, stack):
                return suppression
        return None

    def _stack_matches(self, patterns: tuple[FramePattern, ...], stack: list[Frame]) -> bool:
        @functools.cache
        def matches_from(p: int, f: int) -> bool:
            if p == len(patterns):
                return True  # the frames below the entry's last line do not matter
            pattern = patterns[p]
            if pattern.what == ANY_FRAMES:
                return matches_from(p + 1, f) or (f < len(stack) and matches_from(p, f + 1))
            return (f < len(stack) and self.frame_matches(pattern, stack[f])
                    and matches_from(p + 1, f + 1))

        return matches_from(0, 0)

    def frame_matches(self, pattern: FramePattern, frame: Frame) -> bool:
        if pattern.what == FUN:
            if valgrind_match(pattern.pattern, frame.function or UNKNOWN):
                return True
            if not pattern.pattern.startswith("_Z"):
                return False
            # A mangled pattern: against the symbol, or demangled when it has no wildcard.
            symbol = self.linkage_names.of(frame)
            if symbol is not None and valgrind_match(pattern.pattern, symbol):
                return True
            return (not has_wildcards(pattern.pattern) and frame.function is not None
                    and demangle(pattern.pattern) == frame.function)
        if pattern.what == OBJ:
            return valgrind_match(pattern.pattern, frame.module or UNKNOWN)
        # src:FILE[:LINE] names the source file as valgrind shows it, without its directory.
        if frame.file is None:
            return False
        if not (valgrind_match(pattern.pattern, os.path.basename(frame.file))
                or valgrind_match(pattern.pattern, frame.file)):
            return False
        return pattern.line is None or pattern.line == frame.line


def _kind_matches(suppression: Suppression, leak_kind: str | None) -> bool:
    if isinstance(suppression, LsanSuppression) or suppression.leak_kinds is None:
        return True
    if leak_kind is None:
        # No scan ran: the record could be of any kind, so only an entry for every kind is
        # sure to mean it.
        return suppression.leak_kinds == frozenset(LEAK_KINDS)
    return leak_kind in suppression.leak_kinds


def _lsan_frame_matches(pattern: str, frame: Frame) -> bool:
    return (lsan_match(pattern, frame.function) or lsan_match(pattern, frame.file)
            or lsan_match(pattern, frame.module))

