"""`leaktrace diff --format folded|speedscope|pprof`: the diff for the flame-graph tools.
- folded: `outer;...;inner BEFORE AFTER`, one line per backtrace: the two-column input of
  flamegraph.pl's differential flame graph (what difffolded.pl and inferno-diff-folded make
  from two folded files), from leaktrace's own name matching;
- speedscope: two profiles in one file, BEFORE's bytes and AFTER's, on shared frames;
- pprof: one profile whose values are the change per backtrace (negative where it shrank),
  as `go tool pprof -diff_base` shows a difference."""

from __future__ import annotations

import json
import os
from importlib.metadata import version

from leaktrace.analyze.report_diff import ReportDiff
from leaktrace.model import LeakRecord, Report
from leaktrace.render.folded import folded_frame_name
from leaktrace.render.stack_paths import NO_BACKTRACE, frame_name


def _program(diff: ReportDiff) -> str:
    report = diff.after
    return os.path.basename(report.program) if report.program else report.source


def render_diff_folded(diff: ReportDiff) -> str:
    totals: dict[str, list[int]] = {}
    for change in diff.changes:
        path = ";".join(folded_frame_name(frame_name(f), f.inlined)
                        for f in reversed(change.frames)) or NO_BACKTRACE
        both = totals.setdefault(path, [0, 0])
        both[0] += change.before.bytes
        both[1] += change.after.bytes
    return "".join(f"{path} {before} {after}\n"
                   for path, (before, after) in sorted(totals.items()) if before or after)


def render_diff_speedscope(diff: ReportDiff) -> str:
    from leaktrace.render.speedscope import SCHEMA_URL, frame_table, sampled_profile

    frames, frame_index = frame_table()
    stacks = [[frame_index(f) for f in reversed(c.frames)] or [frame_index(None)]
              for c in diff.changes]
    program = _program(diff)
    document = {
        "$schema": SCHEMA_URL,
        "shared": {"frames": frames},
        "profiles": [
            sampled_profile(f"BEFORE: {_side(diff.before)}", stacks,
                            [c.before.bytes for c in diff.changes]),
            sampled_profile(f"AFTER: {_side(diff.after)}", stacks,
                            [c.after.bytes for c in diff.changes]),
        ],
        "name": f"leaktrace diff: {program}",
        "activeProfileIndex": 1,
        "exporter": f"leaktrace {version('leaktrace')}",
    }
    return json.dumps(document, separators=(",", ":")) + "\n"


def render_diff_pprof(diff: ReportDiff) -> bytes:
    from leaktrace.render.pprof import DiffSample, render_change_pprof

    samples = [DiffSample(LeakRecord(stack_id=(c.stack_ids_after or c.stack_ids_before)[0],
                                     kind=c.kind, bytes=0, blocks=0, frames=c.frames,
                                     leak_kind=c.leak_kind),
                          c.blocks_change, c.bytes_change, c.status)
               for c in diff.changes if c.bytes_change or c.blocks_change]
    return render_change_pprof(diff.after, samples,
                               f"leaktrace diff: {_side(diff.before)} -> {_side(diff.after)}")


def _side(report: Report) -> str:
    where = os.path.basename(report.capture_path) if report.capture_path else report.source
    return where + (f" (pid {report.pid})" if report.pid else "")
