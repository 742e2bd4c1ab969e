"""Read suppression files: valgrind's format (the same files `valgrind --suppressions` takes)
or LeakSanitizer's (`leak:PATTERN` lines, as in LSAN_OPTIONS=suppressions=FILE).

valgrind's rules, as its m_errormgr.c applies them: blank lines and lines starting with `#`
are skipped, every line is trimmed; an entry is `{`, a name, `TOOL[,TOOL...]:KIND`, for
Memcheck:Leak an optional `match-leak-kinds:` line, then stack lines (`fun:`, `obj:`, `src:`
or `...`, at least one that is not `...`), then `}`. Memcheck:Free entries (invalid frees) have
the stack lines alone. Entries for other tools or other kinds (Memcheck:Cond, Helgrind:Race,
...) are read and ignored. Anything else is an error naming
the file and line."""

from __future__ import annotations

import os
from collections.abc import Iterator

from leaktrace.errors import LeaktraceError
from leaktrace.input_files import read_regular
from leaktrace.leak_kinds import parse_kind_list
from leaktrace.suppressions.entries import (
    ANY_FRAMES,
    FREE,
    FUN,
    LEAK,
    OBJ,
    SRC,
    FramePattern,
    LsanSuppression,
    Suppression,
    ValgrindSuppression,
)

# LeakSanitizer suppression types that are not about leaks (other sanitizers share the
# syntax): skipped, as LSan itself does.
_LSAN_LEAK_TYPE = "leak"
# The other sanitizers' types (AddressSanitizer's, ThreadSanitizer's, UndefinedBehavior-
# Sanitizer's checks): a file shared between them is read; any other type is a typo LSan
# refuses too ("leek:" suppressed nothing, silently).
_OTHER_SANITIZER_TYPES = frozenset({
    "interceptor_name", "interceptor_via_fun", "interceptor_via_lib", "odr_violation",
    "race", "race_top", "mutex", "thread", "signal", "called_from_lib", "deadlock",
    "vptr_check", "alignment", "bool", "bounds", "builtin", "enum", "float-cast-overflow",
    "float-divide-by-zero", "function", "implicit-integer-sign-change",
    "implicit-signed-integer-truncation", "implicit-unsigned-integer-truncation",
    "integer-divide-by-zero", "invalid-builtin-use", "nonnull-attribute", "null",
    "nullability-arg", "nullability-assign", "nullability-return", "object-size",
    "pointer-overflow", "return", "returns-nonnull-attribute", "shift", "shift-base",
    "shift-exponent", "signed-integer-overflow", "unreachable", "unsigned-integer-overflow",
    "vla-bound", "vptr",
})
# valgrind's own default.supp is 50 KB; a file a thousand times larger is not a list of
# suppressions, and reading it would only take the memory.
MAX_FILE_BYTES = 64 << 20


class SuppressionFileError(LeaktraceError):
    """A suppression file that cannot be read or parsed (one line: FILE:LINE: what)."""


def load_suppression_file(path: str | os.PathLike[str]) -> list[Suppression]:
    name = os.fspath(path)
    data = read_regular(name, "suppression file", limit=MAX_FILE_BYTES, error=SuppressionFileError)
    return parse_suppressions(data.decode("utf-8", errors="replace"), name)


def parse_suppressions(text: str, name: str = "<suppressions>") -> list[Suppression]:
    """Either format, told apart by the first line that is not blank or a comment."""
    lines = list(_content_lines(text.removeprefix("\ufeff")))  # an editor's byte order mark
    if not lines:
        return []
    if lines[0][1] == "{":
        return _parse_valgrind(lines, name)
    return _parse_lsan(lines, name)


def _content_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, trimmed text) of every line that is not blank or a # comment."""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield number, line


def _parse_lsan(lines: list[tuple[int, str]], name: str) -> list[Suppression]:
    entries: list[Suppression] = []
    for number, line in lines:
        kind, colon, pattern = line.partition(":")
        if not colon or not kind or " " in kind:
            raise SuppressionFileError(
                f"{name}:{number}: expected '{{' (a valgrind entry) or TYPE:PATTERN such as "
                f"leak:my_function (LeakSanitizer), got {line!r}")
        if kind in _OTHER_SANITIZER_TYPES:
            continue  # interceptor_via_fun:, race:, ...: other sanitizers' suppressions
        if kind != _LSAN_LEAK_TYPE:
            raise SuppressionFileError(
                f"{name}:{number}: unknown suppression type {kind!r} (LeakSanitizer's is "
                "leak:PATTERN)")
        if not pattern.strip():
            raise SuppressionFileError(f"{name}:{number}: leak: needs a pattern")
        entries.append(LsanSuppression(pattern.strip(), f"{name}:{number}"))
    return entries


class _Lines:
    """The content lines of a valgrind file, consumed in order, with error helpers."""

    def __init__(self, lines: list[tuple[int, str]], name: str) -> None:
        self.lines = lines
        self.pos = 0
        self.name = name

    def done(self) -> bool:
        return self.pos >= len(self.lines)

    def next(self, expecting: str) -> tuple[int, str]:
        if self.done():
            last = self.lines[-1][0] if self.lines else 0
            raise SuppressionFileError(f"{self.name}:{last}: unexpected end of file: "
                                       f"expected {expecting}")
        item = self.lines[self.pos]
        self.pos += 1
        return item

    def error(self, number: int, message: str) -> SuppressionFileError:
        return SuppressionFileError(f"{self.name}:{number}: {message}")


def _parse_valgrind(lines: list[tuple[int, str]], name: str) -> list[Suppression]:
    reader = _Lines(lines, name)
    entries: list[Suppression] = []
    while not reader.done():
        start, line = reader.next("'{'")
        if line != "{":
            raise reader.error(start, f"expected '{{' to start a suppression, got {line!r}")
        name_at, entry_name = reader.next("the suppression's name")
        if entry_name == "}":
            raise reader.error(start, "the suppression has no name")
        kind_at, tool_kind = reader.next("TOOL:KIND, e.g. Memcheck:Leak")
        tools, colon, kind = tool_kind.partition(":")
        if not colon or tool_kind == "}":
            raise reader.error(kind_at, f"expected TOOL:KIND such as Memcheck:Leak, got "
                                        f"{tool_kind!r}")
        if "Memcheck" not in tools.split(",") or kind.strip() not in (LEAK, FREE):
            _skip_entry(reader)  # an error leaktrace does not report: valgrind's only
            continue
        # Where valgrind's used_suppression lines point: the entry's name.
        entry = _parse_leak_entry(reader, entry_name, f"{name}:{name_at}", kind.strip())
        entries.append(entry)
    return entries


def _skip_entry(reader: _Lines) -> None:
    while True:
        _, line = reader.next("'}' to end the suppression")
        if line == "}":
            return


def _parse_leak_entry(reader: _Lines, entry_name: str, origin: str,
                      error: str) -> ValgrindSuppression:
    leak_kinds = None
    frames: list[FramePattern] = []
    first = True
    while True:
        number, line = reader.next("a stack line or '}'")
        if line == "}":
            break
        if first and line.startswith("match-leak-kinds:"):
            if error != LEAK:
                raise reader.error(number, f"match-leak-kinds: is for Memcheck:Leak entries, "
                                           f"not Memcheck:{error}")
            try:
                leak_kinds = parse_kind_list(line.removeprefix("match-leak-kinds:").strip())
            except LeaktraceError as e:
                raise reader.error(number, str(e)) from None
            first = False
            continue
        first = False
        frames.append(_frame_pattern(reader, number, line))
    if not frames:
        raise reader.error(number, f"suppression {entry_name!r} has no stack lines")
    if all(f.what == ANY_FRAMES for f in frames):
        raise reader.error(number, f"suppression {entry_name!r} must have a stack line that "
                                   "is not '...'")
    return ValgrindSuppression(entry_name, origin, leak_kinds, tuple(frames), error)


def _frame_pattern(reader: _Lines, number: int, line: str) -> FramePattern:
    if line == ANY_FRAMES:
        return FramePattern(ANY_FRAMES)
    what, colon, pattern = line.partition(":")
    if not colon or what not in (FUN, OBJ, SRC):
        raise reader.error(number, f"a stack line is '...' or starts with fun:, obj: or src:, "
                                   f"got {line!r}")
    if what == SRC:
        file, colon, line_text = pattern.rpartition(":")
        if colon and line_text.isdigit():
            return FramePattern(SRC, file, int(line_text))
    return FramePattern(what, pattern)
