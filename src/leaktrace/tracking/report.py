"""A tracked block's capture -> the project's report model, with `render()` for convenience
and the byte counts a test asserts on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

import numpy as np

from leaktrace.capture.reader import Capture, read_capture
from leaktrace.leak_kinds import (
    DEFINITELY_LOST,
    INDIRECTLY_LOST,
    LEAK_KINDS,
    POSSIBLY_LOST,
    parse_kind_list,
)
from leaktrace.model import Report

# What `leaked_bytes` counts: every kind but still reachable, as in valgrind's summary.
LEAKED_KINDS = frozenset({DEFINITELY_LOST, INDIRECTLY_LOST, POSSIBLY_LOST})


@dataclass
class TrackReport(Report):
    """model.Report of the blocks allocated inside a tracked block and still live."""

    def render(self, output_format: str = "text", *, kinds: str = "all",
               top: int | None = None) -> str:
        """"text" or "json", as `leaktrace report` prints them; `kinds` the loss records
        shown ('definite,possible', 'all', ...)."""
        from leaktrace.render.options import RenderOptions

        options = RenderOptions(top=top, leak_kinds=parse_kind_list(kinds))
        if output_format == "text":
            from leaktrace.render.text import render_text
            return render_text(self, options)
        if output_format == "json":
            from leaktrace.render.json_report import render_json
            return render_json(self, options)
        raise ValueError(f"unknown format {output_format!r}: use text or json")

    def bytes_of(self, kinds: Iterable[str]) -> int:
        """Own bytes of these leak kinds (LEAK SUMMARY numbers, suppressed records apart)."""
        leaks = self.summary.leaks
        if leaks is None:
            return 0
        return sum(leaks.of(kind).bytes for kind in kinds)

    @property
    def leaked_bytes(self) -> int:
        return self.bytes_of(LEAKED_KINDS)


def load_track_report(path: str, stack_ids: set[int] | None = None, *,
                      suppressions: bool = True) -> TrackReport:
    """The report of a track capture; with `stack_ids`, only blocks from those backtraces."""
    from leaktrace.analyze.build_report import build_report

    capture = read_capture(path)
    if stack_ids is not None:
        capture.blocks = capture.blocks[np.isin(capture.blocks["stack_id"],
                                                np.array(sorted(stack_ids), dtype=np.uint32))]
    report = build_report(capture)
    if suppressions:
        from leaktrace.suppressions import default_suppressions
        from leaktrace.suppressions.apply import apply_suppressions
        apply_suppressions(report, default_suppressions())
    return TrackReport(**{f.name: getattr(report, f.name) for f in fields(report)})


def live_stack_ids(path: str) -> set[int]:
    """Backtraces with at least one live block in a capture (no symbolization)."""
    capture: Capture = read_capture(path)
    return {int(s) for s in np.unique(capture.blocks["stack_id"])}


__all__ = ["LEAKED_KINDS", "LEAK_KINDS", "TrackReport", "live_stack_ids", "load_track_report"]
