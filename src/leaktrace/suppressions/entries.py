"""What a suppression file holds, once parsed: valgrind entries (a frame pattern per line) and
LeakSanitizer `leak:` lines (one pattern against any frame)."""

from __future__ import annotations

from dataclasses import dataclass

# The kinds of line in a valgrind entry's stack.
FUN = "fun"  # function name (valgrind writes C++ names mangled; leaktrace also takes them
#              demangled)
OBJ = "obj"  # the executable or shared library, full path
SRC = "src"  # source file name, optionally :line
ANY_FRAMES = "..."  # zero or more frames


@dataclass(frozen=True)
class FramePattern:
    what: str  # FUN, OBJ, SRC or ANY_FRAMES
    pattern: str = ""  # with valgrind's wildcards: * any characters, ? one character
    line: int | None = None  # SRC only: the line, when given as src:file.c:42


# valgrind's kinds of Memcheck error a suppression may name that leaktrace reports.
LEAK = "Leak"
FREE = "Free"  # an invalid free, delete, delete[] or realloc


@dataclass(frozen=True)
class ValgrindSuppression:
    """`{ name / Memcheck:Leak / [match-leak-kinds: ...] / frames... }`, or Memcheck:Free
    (no match-leak-kinds line) for invalid frees."""

    name: str
    origin: str  # FILE:LINE of its opening brace
    leak_kinds: frozenset[str] | None  # None: no match-leak-kinds line, every kind matches
    frames: tuple[FramePattern, ...]
    error: str = LEAK  # LEAK or FREE


@dataclass(frozen=True)
class LsanSuppression:
    """`leak:PATTERN`: matches when any frame's function, source file or module contains
    PATTERN (`*` any characters, `^`/`$` anchor it at the start/end), whatever the leak kind."""

    pattern: str
    origin: str  # FILE:LINE

    @property
    def name(self) -> str:
        return f"leak:{self.pattern}"


Suppression = ValgrindSuppression | LsanSuppression
