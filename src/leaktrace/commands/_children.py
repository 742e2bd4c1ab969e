"""The traced children of `run --follow-children`: one line each with its leaks, a total, and
their reports for --fail-on-leak, with the suppressions the program's own report gets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from leaktrace.leak_kinds import DEFINITELY_LOST, INDIRECTLY_LOST, POSSIBLY_LOST, STILL_REACHABLE
from leaktrace.model import Report

if TYPE_CHECKING:
    from leaktrace.suppressions import Suppression
    from leaktrace.symbolize import Symbolizer

LOST_KINDS = (DEFINITELY_LOST, INDIRECTLY_LOST, POSSIBLY_LOST)


@dataclass
class ChildLeaks:
    """{leak kind: (bytes, blocks)} of one child, suppressed blocks left out; its report
    when one had to be built (None: nothing of the counted kinds, nothing unscanned, no
    invalid free); its invalid frees (calls)."""

    totals: dict[str, tuple[int, int]]
    report: Report | None
    invalid_frees: int = 0


def child_leaks(path: str, counted_kinds: frozenset[str],
                build_report: Callable[[str], Report]) -> ChildLeaks:
    """Most children (a shell, sed, cc1) leave nothing lost: their capture's scan verdicts
    say so without symbolizing anything. A child with blocks of a shown or counted kind, or
    not scanned, gets its report built as `leaktrace report` builds it (`build_report`, with
    the suppressions), so that a block a suppression matches (a thread's TLS vector, glibc's
    and libstdc++'s own) neither shows nor counts, as in that report."""
    from leaktrace.analyze.leak_totals import capture_leak_totals
    from leaktrace.capture.reader import read_capture
    from leaktrace.commands._leak_gate import invalid_free_calls

    capture = read_capture(path)
    raw = capture_leak_totals(capture)
    invalid = sum(row.calls for row in capture.invalid_frees or ()) + \
        capture.invalid_frees_unrecorded
    kinds = set(LOST_KINDS) | set(counted_kinds)
    if not any(raw.get(kind, (0, 0))[1] for kind in kinds) and \
            not raw.get("unscanned", (0, 0))[1] and not invalid:
        return ChildLeaks({kind: raw.get(kind, (0, 0)) for kind in (*LOST_KINDS, STILL_REACHABLE)},
                          None)
    del capture  # its arrays: the report reads the file again, with its own
    report = build_report(path)
    invalid = invalid_free_calls(report)  # a Memcheck:Free entry's calls are not counted
    leaks = report.summary.leaks
    if leaks is None:  # not scanned: every live byte not suppressed is of no known kind
        return ChildLeaks({kind: (0, 0) for kind in (*LOST_KINDS, STILL_REACHABLE)}, report,
                          invalid)
    return ChildLeaks({kind: (leaks.of(kind).bytes, leaks.of(kind).blocks)
                       for kind in (*LOST_KINDS, STILL_REACHABLE)}, report, invalid)


class ChildReports:
    """Builds children's reports as `leaktrace report` does, suppressions applied, with
    symbolizers shared among them: a build's children run the same programs and libraries
    (cc1, as, ld, libc), whose frames are then resolved once. Children share a symbolizer
    only while their modules' build ids agree (a library rebuilt between two children gets
    one of its own)."""

    def __init__(self, suppressions: Sequence[Suppression]) -> None:
        self._suppressions = suppressions
        self._symbolizers: list[Symbolizer] = []

    def _symbolizer_for(self, build_ids: dict[str, bytes]) -> Symbolizer:
        for symbolizer in self._symbolizers:
            known = symbolizer.expected_build_ids
            if all(known.get(path, build_id) == build_id for path, build_id in build_ids.items()):
                known.update(build_ids)
                return symbolizer
        from leaktrace.symbolize import Symbolizer

        self._symbolizers.append(Symbolizer(expected_build_ids=dict(build_ids)))
        return self._symbolizers[-1]

    def __call__(self, path: str) -> Report:
        from leaktrace.analyze.build_report import build_report
        from leaktrace.capture.reader import read_capture
        from leaktrace.suppressions.apply import apply_suppressions

        capture = read_capture(path)
        build_ids = {m.path: m.build_id for m in capture.modules if m.build_id}
        report = build_report(capture, self._symbolizer_for(build_ids), with_addresses=False)
        apply_suppressions(report, self._suppressions)
        return report
