"""The two wildcard languages of suppression files.

valgrind (VG_(string_match)): the whole name must match; `*` is any run of characters, `?`
exactly one, and a backslash makes the next character literal.

LeakSanitizer (TemplateMatch in sanitizer_common): the pattern may match anywhere in the name;
`*` is any run of characters, a leading `^` anchors it at the start and `$` at the end. Its
pieces are found left to right, first occurrence first, without backtracking, exactly as LSan
does (so `a*b$` does not match "abab")."""

from __future__ import annotations

import functools
import re


@functools.cache
def _valgrind_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    escaped = False
    for char in pattern:
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    if escaped:
        parts.append(re.escape("\\"))  # a trailing backslash stands for itself
    return re.compile("".join(parts), re.DOTALL)


def valgrind_match(pattern: str, name: str) -> bool:
    return _valgrind_regex(pattern).fullmatch(name) is not None


def has_wildcards(pattern: str) -> bool:
    return any(c in pattern for c in "*?\\")


def lsan_match(template: str, text: str | None) -> bool:
    """LSan's TemplateMatch. An empty or unknown name never matches."""
    if not text:
        return False
    anchored = template.startswith("^")
    if anchored:
        template = template[1:]
    after_star = False
    pos = 0
    while template:
        if template[0] == "*":
            template = template[1:]
            anchored = False
            after_star = True
            continue
        if template[0] == "$":
            return pos == len(text) or after_star
        if pos == len(text):
            return False
        # The next literal piece runs up to the next * or $.
        cut = min((i for i in (template.find("*"), template.find("$")) if i >= 0),
                  default=len(template))
        piece, template = template[:cut], template[cut:]
        found = text.find(piece, pos)
        if found < 0 or (anchored and found != pos):
            return False
        pos = found + len(piece)
        anchored = False
        after_star = False
    return True
