"""A tracked block's capture -> the project's report model, with `render()` and the byte
counts a test asserts on.

The tracked process never holds a capture's block addresses longer than it must: a copy left
in its memory (a freed buffer, a numpy temporary) would look like a pointer to whatever block
the allocator puts at that address later, and a later scan would find that block reachable.
So the symbolized report is built in a child process (report_worker.py) and sent back
pickled, and the quick totals read the file into one buffer that is cleared right after."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from leaktrace.errors import LeaktraceError
from leaktrace.leak_kinds import DEFINITELY_LOST, INDIRECTLY_LOST, POSSIBLY_LOST, parse_kind_list
from leaktrace.model import Report

if TYPE_CHECKING:
    from leaktrace.capture.reader import Capture

# What `leaked_bytes` counts: every kind but still reachable, as in valgrind's summary.
LEAKED_KINDS = frozenset({DEFINITELY_LOST, INDIRECTLY_LOST, POSSIBLY_LOST})
T = TypeVar("T")


@dataclass
class TrackReport(Report):
    """model.Report of the blocks allocated inside a tracked block and still live."""

    def render(self, output_format: str = "text", *, kinds: str = "all",
               top: int | None = None) -> str | bytes:
        """Any format of `leaktrace report --format` ("text", "json", "html", "folded",
        "speedscope"; "pprof" is bytes); `kinds` the loss records shown ('definite,possible',
        'all', ...), `top` the largest N only."""
        from leaktrace.render.formats import REPORT_FORMATS, render_as
        from leaktrace.render.options import RenderOptions

        if output_format not in REPORT_FORMATS:
            raise ValueError(f"unknown format {output_format!r}: use {', '.join(REPORT_FORMATS)}")
        return render_as(self, output_format, RenderOptions(top=top,
                                                            leak_kinds=parse_kind_list(kinds)))

    def text(self, *, kinds: str = "all", top: int | None = None) -> str:
        """render("text")."""
        rendered = self.render("text", kinds=kinds, top=top)
        assert isinstance(rendered, str)
        return rendered

    def bytes_of(self, kinds: Iterable[str]) -> int:
        """Own bytes of these leak kinds (LEAK SUMMARY numbers, suppressed records apart)."""
        leaks = self.summary.leaks
        if leaks is None:
            return 0
        return sum(leaks.of(kind).bytes for kind in kinds)

    @property
    def leaked_bytes(self) -> int:
        return self.bytes_of(LEAKED_KINDS)


def build_track_report(path: str, stack_ids: set[int] | None, suppressions: bool) -> TrackReport:
    """The report (in the child process): with `stack_ids`, only those backtraces' blocks."""
    from dataclasses import fields

    import numpy as np

    from leaktrace.analyze.build_report import build_report
    from leaktrace.capture.reader import read_capture

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


def load_track_report(path: str, stack_ids: set[int] | None, suppressions: bool) -> TrackReport:
    """build_track_report, run in a child process (see the module's docstring)."""
    ids = "-" if stack_ids is None else ",".join(str(i) for i in sorted(stack_ids))
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    done = subprocess.run(
        [sys.executable, "-m", "leaktrace.tracking.report_worker", path, ids,
         "1" if suppressions else "0"], capture_output=True, env=env, check=False)
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise LeaktraceError(f"leaktrace: could not build the tracked block's report: "
                             f"{reason[-1] if reason else f'exit code {done.returncode}'}")
    report = pickle.loads(done.stdout)
    assert isinstance(report, TrackReport)
    return report


def _with_capture(path: str, use: Callable[[Capture], T]) -> T:
    """use(capture) on the file read into one buffer, cleared afterwards."""
    from leaktrace.capture.reader import parse_capture

    with open(path, "rb", buffering=0) as f:  # unbuffered: no other copy of the bytes
        data = bytearray(os.fstat(f.fileno()).st_size)
        f.readinto(data)
    try:
        return use(parse_capture(data, path))  # type: ignore[arg-type]  # bytes-like is enough
    finally:
        data[:] = bytes(len(data))


def kind_totals(path: str, stack_ids: set[int] | None) -> dict[str, tuple[int, int]]:
    """{leak kind: (blocks, own bytes)} of a capture, without symbolizing."""
    def totals(capture: Capture) -> dict[str, tuple[int, int]]:
        import numpy as np

        from leaktrace.capture import format as fmt
        from leaktrace.capture.distinct import distinct

        blocks = capture.blocks
        keep = np.ones(len(blocks), dtype=bool)
        if stack_ids is not None:
            keep = np.isin(blocks["stack_id"], np.array(sorted(stack_ids), dtype=np.uint32))
        keep &= ~np.isin(blocks["kind"], np.array(sorted(fmt.MAPPING_KINDS), dtype=np.uint8))
        kinds = blocks["leak_kind"][keep]
        sizes = blocks["size"][keep]
        return {fmt.leak_kind_name(int(k)): (int((kinds == k).sum()), int(sizes[kinds == k].sum()))
                for k in distinct(kinds)}
    return _with_capture(path, totals)


Site = tuple[int, ...]


def live_sites(path: str, interpreter: Iterable[int], neutral: Iterable[int]
               ) -> dict[Site, set[int]]:
    """{site: its backtraces with live blocks} of a capture. A site is a backtrace without the
    frames of the interpreter's own code outside the extension: Python's specializing
    interpreter calls one function of an extension through another path of its eval loop
    once a call site is warm, so one leak of the extension gets a backtrace per path, but
    one site. `interpreter` and `neutral` are addresses inside the modules that are the
    interpreter (the executable, libpython) and those that are neither it nor an extension
    (the C library, the loader): a backtrace without any other module's frame is its own
    site."""
    def sites(capture: Capture) -> dict[Site, set[int]]:
        from leaktrace.analyze.module_map import ModuleMap
        from leaktrace.capture.distinct import distinct

        modules = ModuleMap(capture.modules)
        inside = {modules.find(a) for a in interpreter} - {None}
        other = inside | {modules.find(a) for a in neutral} - {None}
        found: dict[Site, set[int]] = {}
        for stack_id in distinct(capture.blocks["stack_id"]):
            stack = capture.stacks.get(int(stack_id))
            frames = stack.return_addresses if stack is not None else ()
            owners = [modules.find(a) for a in frames]
            first = next((i for i, m in enumerate(owners) if m not in other), None)
            site = tuple(frames) if first is None else tuple(frames[:first + 1]) + tuple(
                a for a, m in zip(frames[first + 1:], owners[first + 1:], strict=True)
                if m not in inside)
            found.setdefault(site, set()).add(int(stack_id))
        return found
    return _with_capture(path, sites)


__all__ = ["LEAKED_KINDS", "TrackReport", "build_track_report", "kind_totals", "live_sites",
           "load_track_report"]
