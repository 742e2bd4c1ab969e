"""Memcheck:Free suppressions: an invalid or mismatched free a suppression matches leaves the
report's lists and every gate, and is counted apart, as valgrind counts suppressed errors.

The stack matched is the one valgrind shows for the error: the freeing function first, then
the callers. leaktrace's backtrace starts at the caller of the API, which the capture names
(free, realloc, reallocarray, operator delete or delete[]: any of their variants, which
valgrind names by symbol, `_ZdlPvm`); a delete the shim's hook did not see reached it as a
free, so an entry headed by one of the operators matches a free too."""

from __future__ import annotations

from collections.abc import Sequence

from leaktrace.model import Frame, InvalidFree, Report, SuppressionUse
from leaktrace.suppressions.entries import FREE, Suppression, ValgrindSuppression
from leaktrace.suppressions.matcher import SuppressionMatcher

# The variants of operator delete (l) and delete[] (a), by the symbol and the name valgrind may
# head an invalid free's stack with.
_VARIANTS = (("", ""), ("m", ", unsigned long"), ("St11align_val_t", ", std::align_val_t"),
             ("mSt11align_val_t", ", unsigned long, std::align_val_t"),
             ("RKSt9nothrow_t", ", std::nothrow_t const&"),
             ("St11align_val_tRKSt9nothrow_t", ", std::align_val_t, std::nothrow_t const&"))
_DELETE_HEADS = {
    api: tuple(name for suffix, arguments in _VARIANTS
               for name in (f"_Zd{letter}Pv{suffix}", f"{api}(void*{arguments})"))
    for api, letter in (("operator delete", "l"), ("operator delete[]", "a"))}


def free_entries(suppressions: Sequence[Suppression]) -> list[ValgrindSuppression]:
    return [s for s in suppressions if isinstance(s, ValgrindSuppression) and s.error == FREE]


def free_stacks(invalid: InvalidFree) -> list[list[Frame]]:
    """The stacks valgrind may show for this call: the API first (a delete by each variant's
    symbol and name); for a free, each delete's too (a delete the shim did not enter)."""
    if invalid.api in _DELETE_HEADS:
        heads = _DELETE_HEADS[invalid.api]
    elif invalid.api == "free":
        heads = ("free", *(h for names in _DELETE_HEADS.values() for h in names))
    else:
        heads = (invalid.api,)
    return [[Frame(address=0, function=head), *invalid.frames] for head in heads]


def apply_free_suppressions(report: Report, entries: Sequence[ValgrindSuppression]) -> None:
    """Drops the invalid frees an entry matches from report.invalid_frees, adds their calls
    to report.invalid_frees_suppressed and each entry's use to report.suppressions_used."""
    if not report.invalid_frees or not entries:
        return
    matcher = SuppressionMatcher(entries)
    kept: list[InvalidFree] = []
    uses: dict[int, SuppressionUse] = {}
    for invalid in report.invalid_frees:
        entry = matcher.match_stacks(free_stacks(invalid)) if invalid.frames else None
        if entry is None:
            kept.append(invalid)
            continue
        use = uses.setdefault(id(entry), SuppressionUse(entry.name, entry.origin))
        use.records += 1
        use.invalid_free_calls += invalid.calls
        report.invalid_frees_suppressed += invalid.calls
    report.invalid_frees = kept
    report.suppressions_used = sorted([*report.suppressions_used, *uses.values()],
                                      key=lambda u: (-u.bytes, -u.invalid_free_calls, u.name))
