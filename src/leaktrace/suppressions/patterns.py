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


# A regex with many `.*` backtracks exponentially on a name it does not match (`*a*a*a*a*ab`
# against a 300-character C++ name ran for minutes): from this many stars on, the glob is
# matched by _glob_match instead, in time bounded by the two lengths' product.
_REGEX_MAX_STARS = 2

_STAR, _ANY = object(), object()


@functools.cache
def _glob_tokens(pattern: str) -> tuple[object, ...]:
    tokens: list[object] = []
    escaped = False
    for char in pattern:
        if escaped:
            tokens.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "*":
            if not tokens or tokens[-1] is not _STAR:  # a run of stars is one star
                tokens.append(_STAR)
        elif char == "?":
            tokens.append(_ANY)
        else:
            tokens.append(char)
    if escaped:
        tokens.append("\\")
    return tuple(tokens)


def _glob_match(tokens: tuple[object, ...], name: str) -> bool:
    """The usual two-pointer wildcard match: on a mismatch the last star takes one more
    character and matching resumes after it."""
    t = n = 0
    star_t, star_n = -1, 0
    while n < len(name):
        if t < len(tokens) and tokens[t] is _STAR:
            star_t, star_n = t, n
            t += 1
        elif t < len(tokens) and (tokens[t] is _ANY or tokens[t] == name[n]):
            t += 1
            n += 1
        elif star_t >= 0:
            star_n += 1
            t, n = star_t + 1, star_n
        else:
            return False
    while t < len(tokens) and tokens[t] is _STAR:
        t += 1
    return t == len(tokens)


def valgrind_match(pattern: str, name: str) -> bool:
    if pattern.count("*") > _REGEX_MAX_STARS:
        return _glob_match(_glob_tokens(pattern), name)
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
