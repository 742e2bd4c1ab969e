"""Does a suppression match a loss record?

The stack a suppression is matched against is the one valgrind would show: the allocation
function first (malloc, calloc, operator new, ...), then the record's frames, innermost first,
inlined frames each on their own. leaktrace's backtraces start at the caller of the allocation
API, so the API is put in front; a C++ `operator new` already heads the backtrace (the shim sees
its call to malloc), and valgrind shows it first too.

A valgrind entry's stack lines must match the top of that stack, `...` standing for any number
of frames (none included); frames below the last line do not matter. `fun:` is compared with
the demangled name leaktrace shows and, for a pattern written mangled as valgrind writes them
(`_Z...`), with the function's symbol as well; a plain pattern also with an inlined call's
short name, as valgrind names inlined calls (`make` for app::Box<app::Widget>::make(int)),
and with the function's other C symbols (valgrind names glibc's functions by their exported
symbols, strndup and fclose, where debug info says __strndup and _IO_new_fclose) and without
the version valgrind writes after a dynamic symbol (`realpath@@GLIBC_2.3`). `obj:` is compared
with the module's path and the file it resolves to (valgrind shows
/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30 for /lib/x86_64-linux-gnu/libstdc++.so.6).
A LeakSanitizer `leak:` line matches when any frame's function, source file or module
contains the pattern."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Sequence

from leaktrace.leak_kinds import LEAK_KINDS
from leaktrace.model import Frame, LeakRecord
from leaktrace.suppressions.entries import (
    ANY_FRAMES,
    FUN,
    LEAK,
    OBJ,
    FramePattern,
    LsanSuppression,
    Suppression,
)
from leaktrace.suppressions.linkage_names import LinkageNames
from leaktrace.suppressions.patterns import has_wildcards, lsan_match, valgrind_match
from leaktrace.symbolize.demangle import demangle
from leaktrace.symbolize.names import inlined_names, without_version

UNKNOWN = "???"  # what valgrind matches a frame without a function or object name against
# The C library's callers of main, which valgrind names `(below main)` (and stops there).
BELOW_MAIN_NAME = "(below main)"
# (_start: below __libc_start_main when a constructor allocates.)
BELOW_MAIN = frozenset({"__libc_start_call_main", "__libc_start_main", "generic_start_main",
                        "_start"})
# valgrind's replacements of the aligned allocators go through its memalign, which heads their
# stacks (valgrind 3.19: memalign, posix_memalign, caller; memalign, caller for the others).
_VALGRIND_ALIGNED = {"posix_memalign": ("memalign", "posix_memalign"),
                     "aligned_alloc": ("memalign",), "valloc": ("memalign",),
                     "pvalloc": ("memalign",)}
# A constructor's or destructor's code in a symbol (C1/C2, D1/D2 name one function when the
# class has no virtual bases: two aliases of one address, either of which a tool may show),
# and operator new[]'s symbol prefix (libstdc++'s new[] calls new, often as a tail call, so a
# capture's backtrace shows new where valgrind's replacement says new[]).
_STRUCTOR = re.compile(r"(?<=[A-Za-z0-9_])([CD])[12](?=[EIB])")
_NEW_ARRAY = re.compile(r"^_Zna")


def _same_function_symbols(pattern: str) -> list[str]:
    """`pattern` and the patterns of the aliases it may stand for."""
    variants = {pattern, _STRUCTOR.sub(r"\g<1>1", pattern), _STRUCTOR.sub(r"\g<1>2", pattern)}
    variants |= {_NEW_ARRAY.sub("_Znw", v) for v in variants}
    return sorted(variants)


def allocation_stack(record: LeakRecord) -> list[Frame]:
    """The record's stack as valgrind shows it: the allocation function, then the callers."""
    frames = list(record.frames)
    if frames and (frames[0].function or "").startswith("operator new"):
        return frames
    return [Frame(address=0, function=record.kind), *frames]


def _allocation_stacks(record: LeakRecord) -> list[list[Frame]]:
    """allocation_stack, and for an aligned allocator the stack valgrind 3.19 shows too."""
    stack = allocation_stack(record)
    heads = _VALGRIND_ALIGNED.get(record.kind or "")
    if heads is None or stack[0].function != record.kind:
        return [stack]
    return [stack, [*(Frame(address=0, function=name) for name in heads), *stack[1:]]]


def api_names(kind: str) -> set[str]:
    """The names an allocation of API `kind` may have at the head of a valgrind stack."""
    return {kind, *_VALGRIND_ALIGNED.get(kind, ())}


@functools.cache
def _resolved(path: str) -> str:
    return os.path.realpath(path)


def inlined_pattern(function: str) -> str:
    """A fun: pattern for an inlined call of `function` that valgrind matches too: its short
    name, any template arguments as `<*>` (valgrind may show them, or `<>`)."""
    names = inlined_names(function)
    if not names:
        return function
    short = min(names, key=len)  # without its template arguments, if it has any
    return short + "<*>" if short + "<>" in names else short


class SuppressionMatcher:
    def __init__(self, suppressions: Sequence[Suppression],
                 linkage_names: LinkageNames | None = None) -> None:
        self.suppressions = list(suppressions)
        self.linkage_names = linkage_names or LinkageNames()
        self._needed = [_needed_names(s) for s in self.suppressions]

    def narrowed(self, records: Iterable[LeakRecord]) -> SuppressionMatcher:
        """The same matcher without the entries that name a function none of `records` has
        (they cannot match): with a million records, most default suppressions are then
        never tried. Which entry matches a record first does not change."""
        names: set[str | None] = set()
        for record in records:
            names.update(api_names(record.kind or ""))
            for frame in record.frames:
                names.update(self.frame_names(frame))
        return self.narrowed_to(names)

    def frame_names(self, frame: Frame) -> set[str]:
        """The names a fun: line may match the frame by (UNKNOWN for none). The other C
        symbols of its function only where the name shown is a reserved one (a leading
        underscore: the C library's own names for what it exports otherwise, __strndup,
        _IO_new_fclose); a public name is the one valgrind shows too, and looking aliases up
        reads every module's symbol table (a tenth of a small report's time)."""
        if frame.inlined and frame.function:
            return {frame.function, *inlined_names(frame.function)}
        if frame.function and frame.function.startswith("_"):
            return {frame.function, *self.linkage_names.c_aliases(frame)}
        return {frame.function or UNKNOWN}

    def narrowed_to(self, names: set[str | None]) -> SuppressionMatcher:
        """narrowed() of records whose API kinds and frames' functions are `names` (None: a
        frame without a function)."""
        if None in names:
            names = names - {None}
            names.add(UNKNOWN)
        present = {name for name in names if name is not None}
        kept = [(s, needed) for s, needed in zip(self.suppressions, self._needed, strict=True)
                if _has_needed_names(needed, present)]
        narrowed = SuppressionMatcher([], self.linkage_names)
        narrowed.suppressions = [s for s, _ in kept]
        narrowed._needed = [needed for _, needed in kept]
        return narrowed

    def needed_names(self) -> list[list[tuple[str, bool]]]:
        """Per suppression: (name, is_prefix) of each function a stack must have for it to
        match (see _needed_names)."""
        return self._needed

    def match_stacks(self, stacks: list[list[Frame]]) -> Suppression | None:
        """The first entry (in file order) that matches one of the stacks, whatever its leak
        kinds (Memcheck:Free entries: suppressions/invalid_frees.py)."""
        names = self._stack_names(stacks)
        for suppression, needed in zip(self.suppressions, self._needed, strict=True):
            if self._matches(suppression, needed, stacks, names):
                return suppression
        return None

    def match(self, record: LeakRecord) -> Suppression | None:
        """The first suppression (in file order) that matches the record, or None."""
        stacks: list[list[Frame]] | None = None
        names: set[str] = set()
        for suppression, needed in zip(self.suppressions, self._needed, strict=True):
            if not _kind_matches(suppression, record.leak_kind):
                continue
            if stacks is None:
                stacks = _allocation_stacks(record)
                names = self._stack_names(stacks)
            if self._matches(suppression, needed, stacks, names):
                return suppression
        return None

    def _stack_names(self, stacks: list[list[Frame]]) -> set[str]:
        return {n for stack in stacks for f in stack for n in self.frame_names(f)}

    def _matches(self, suppression: Suppression, needed: list[tuple[str, bool]],
                 stacks: list[list[Frame]], names: set[str]) -> bool:
        """Whether the entry matches one of the stacks, whose functions' names are `names`."""
        if not _has_needed_names(needed, names):
            return False  # quick no: a function the entry names is nowhere in the stack
        if isinstance(suppression, LsanSuppression):
            return any(_lsan_frame_matches(suppression.pattern, f) for f in stacks[0])
        return any(self._stack_matches(suppression.frames, stack) for stack in stacks)

    def _stack_matches(self, patterns: tuple[FramePattern, ...], stack: list[Frame]) -> bool:
        """Wildcard matching with `...` as the star, the usual two-pointer way: on a
        mismatch, the last `...` takes one more frame and matching resumes after it. Reaching
        the entry's last line is a match (the frames below it do not matter)."""
        p = f = 0
        star_p = star_f = -1  # the last `...` seen, and the frame it was first tried at
        while p < len(patterns):
            pattern = patterns[p]
            if pattern.what == ANY_FRAMES:
                star_p, star_f = p, f
                p += 1
            elif f < len(stack) and self.frame_matches(pattern, stack[f]):
                p += 1
                f += 1
            elif star_p >= 0 and star_f < len(stack):
                star_f += 1
                p, f = star_p + 1, star_f
            else:
                return False
        return True

    def frame_matches(self, pattern: FramePattern, frame: Frame) -> bool:
        if pattern.what == FUN:
            wanted = without_version(pattern.pattern)
            if valgrind_match(wanted, frame.function or UNKNOWN):
                return True
            if wanted == BELOW_MAIN_NAME:
                return frame.function in BELOW_MAIN
            if not wanted.startswith("_Z"):
                return any(valgrind_match(wanted, name) for name in self.frame_names(frame))
            # A mangled pattern: against the symbol, or demangled when it has no wildcard;
            # with the aliases valgrind may have written instead of the symbol shown here.
            symbol = self.linkage_names.of(frame)
            for variant in _same_function_symbols(wanted):
                if symbol is not None and valgrind_match(variant, symbol):
                    return True
                if (not has_wildcards(variant) and frame.function is not None
                        and demangle(variant) == frame.function):
                    return True
            return False
        if pattern.what == OBJ:
            if valgrind_match(pattern.pattern, frame.module or UNKNOWN):
                return True
            return (frame.module is not None and frame.module.startswith("/")
                    and valgrind_match(pattern.pattern, _resolved(frame.module)))
        # src:FILE[:LINE] names the source file as valgrind shows it, without its directory.
        if frame.file is None:
            return False
        if not (valgrind_match(pattern.pattern, os.path.basename(frame.file))
                or valgrind_match(pattern.pattern, frame.file)):
            return False
        return pattern.line is None or pattern.line == frame.line


def _needed_names(suppression: Suppression) -> list[tuple[str, bool]]:
    """(name, is_prefix) for each fun: line of a valgrind entry that can only match a frame
    by that exact demangled name (no wildcard) or name prefix (one trailing `*`). Mangled
    patterns are left out: they may match a symbol instead of the name shown."""
    if isinstance(suppression, LsanSuppression):
        return []
    needed = []
    for line in suppression.frames:
        pattern = without_version(line.pattern)
        if line.what != FUN or pattern.startswith("_Z") or pattern == BELOW_MAIN_NAME:
            continue
        if not has_wildcards(pattern):
            needed.append((pattern, False))
        elif pattern.endswith("*") and not has_wildcards(pattern[:-1]):
            needed.append((pattern[:-1], True))
    return needed


def _has_needed_names(needed: list[tuple[str, bool]], names: set[str]) -> bool:
    for name, is_prefix in needed:
        if is_prefix:
            if not any(n.startswith(name) for n in names):
                return False
        elif name not in names:
            return False
    return True


def _kind_matches(suppression: Suppression, leak_kind: str | None) -> bool:
    if isinstance(suppression, LsanSuppression):
        return True
    if suppression.error != LEAK:
        return False  # an invalid free's entry (suppressions/invalid_frees.py)
    if suppression.leak_kinds is None:
        return True
    if leak_kind is None:
        # No scan ran: the record could be of any kind, so only an entry for every kind is
        # sure to mean it.
        return suppression.leak_kinds == frozenset(LEAK_KINDS)
    return leak_kind in suppression.leak_kinds


def _lsan_frame_matches(pattern: str, frame: Frame) -> bool:
    return (lsan_match(pattern, frame.function) or lsan_match(pattern, frame.file)
            or lsan_match(pattern, frame.module))

