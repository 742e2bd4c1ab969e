"""valgrind memcheck's leak kinds: their names in reports and in option values, and the
parsing of kind lists shared by --show, --fail-on-kinds and suppression files
(`match-leak-kinds:`), which all take valgrind's spelling."""

from __future__ import annotations

from leaktrace.errors import LeaktraceError

DEFINITELY_LOST = "definitely lost"
INDIRECTLY_LOST = "indirectly lost"
POSSIBLY_LOST = "possibly lost"
STILL_REACHABLE = "still reachable"

# The order of valgrind's LEAK SUMMARY.
LEAK_KINDS = (DEFINITELY_LOST, INDIRECTLY_LOST, POSSIBLY_LOST, STILL_REACHABLE)

# The short names of --show-leak-kinds, --errors-for-leak-kinds and match-leak-kinds.
SHORT_NAMES = {
    "definite": DEFINITELY_LOST,
    "indirect": INDIRECTLY_LOST,
    "possible": POSSIBLY_LOST,
    "reachable": STILL_REACHABLE,
}
SHORT_NAME_OF = {kind: short for short, kind in SHORT_NAMES.items()}

# What valgrind shows and counts as errors by default.
DEFAULT_SHOWN = frozenset({DEFINITELY_LOST, POSSIBLY_LOST})

# JSON and summary field names: "definitely_lost", ...
FIELD_NAMES = {kind: kind.replace(" ", "_") for kind in LEAK_KINDS}


def parse_kind_list(text: str) -> frozenset[str]:
    """'definite,possible', 'all' or 'none' -> the leak kinds. Raises LeaktraceError naming
    the word it does not know."""
    words = [w.strip() for w in text.split(",")]
    if words == ["all"]:
        return frozenset(LEAK_KINDS)
    if words == ["none"]:
        return frozenset()
    kinds = set()
    for word in words:
        if word not in SHORT_NAMES:
            raise LeaktraceError(
                f"unknown leak kind {word!r}: use definite, indirect, possible, reachable "
                "(comma-separated), all or none"
            )
        kinds.add(SHORT_NAMES[word])
    return frozenset(kinds)


def kind_list_text(kinds: frozenset[str]) -> str:
    """The inverse of parse_kind_list, in valgrind's order: 'definite,possible'."""
    if kinds == frozenset(LEAK_KINDS):
        return "all"
    return ",".join(SHORT_NAME_OF[k] for k in LEAK_KINDS if k in kinds) or "none"


def reachedness(kind: str | None) -> int:
    """valgrind's Reachedness value of a kind (Reachable 0, Possible 1, IndirectLeak 2,
    Unreached 3): loss records of equal size sort by it. No kind sorts after every kind."""
    return LEAK_KINDS[::-1].index(kind) if kind in LEAK_KINDS else len(LEAK_KINDS)
