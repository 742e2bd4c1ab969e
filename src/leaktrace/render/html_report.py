"""`--format html`: one self-contained page (no network at view time) with the LEAK SUMMARY,
a sortable and filterable table of the loss records with their stacks, an icicle graph of
leaked bytes (live bytes, allocated bytes and allocations on a switch) with search and
click-to-zoom, the growth timeline when the capture has snapshots, and the capture's facts.

The page is this module's data (one JSON object) plus html/report.js and html/report.css,
inlined. Backtraces are stored once as a tree of call nodes (callers shared), so 10,000
stacks stay well under 2 MB."""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from leaktrace.analyze.frame_totals import PROCESS_START_FUNCTIONS
from leaktrace.leak_kinds import LEAK_KINDS
from leaktrace.model import Frame, LeakRecord, Report
from leaktrace.render.options import RenderOptions, samples_selection
from leaktrace.render.stack_paths import frame_name, samples_of
from leaktrace.render.text import fatal_signal_lines, invalid_free_lines

TIMELINE_LINES = 8  # backtraces drawn on the growth timeline, best-ranked first


@dataclass
class TimelineLine:
    label: str
    verdict: str  # growing, plateaued, stable
    points: list[tuple[float, int]]


@dataclass
class Timeline:
    """What the growth section draws: the process total and the top backtraces."""

    total: list[tuple[float, int]]
    lines: list[TimelineLine] = field(default_factory=list)


def render_html(report: Report, options: RenderOptions, timeline: Timeline | None = None) -> str:
    return html_page(page_data(report, options, timeline), _program(report))


def html_page(data: dict[str, Any], program: str) -> str:
    """The page around `data` (page_data's layout)."""
    # "</" inside a script element would end it: JSON allows the escaped form.
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    assets = files("leaktrace.render") / "html"
    script = (assets / "report.js").read_text(encoding="utf-8")
    style = (assets / "report.css").read_text(encoding="utf-8")
    title = html.escape(f"leaktrace: {program}")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{title}</title><style>{style}</style></head><body>"
        f"<script id=\"leaktrace-data\" type=\"application/json\">{blob}</script>"
        f"<script>{script}</script></body></html>\n"
    )


def _program(report: Report) -> str:
    return os.path.basename(report.program) if report.program else report.source


@dataclass
class DiffSide:
    """A record's other side in a diff page: what BEFORE had of the same backtrace."""

    bytes: int
    blocks: int
    status: str  # new, gone, grew, shrank, same


def page_data(report: Report, options: RenderOptions, timeline: Timeline | None = None, *,
              records: list[LeakRecord] | None = None,
              before: dict[int, DiffSide] | None = None) -> dict[str, Any]:
    """`records` replaces the report's own (the diff page's one record per backtrace);
    `before`, by id() of those records, makes it a diff page."""
    frames: list[list[Any]] = []
    frame_index: dict[tuple[Any, ...], int] = {}
    nodes: list[int] = []  # flat pairs: parent node (-1 for a root), frame
    node_index: dict[tuple[int, int], int] = {}

    def frame_id(frame: Frame) -> int:
        entry = (frame_name(frame), frame.file or "", frame.line or 0,
                 os.path.basename(frame.module) if frame.module else "", int(frame.inlined))
        if entry not in frame_index:
            frame_index[entry] = len(frames)
            frames.append(list(entry))
        return frame_index[entry]

    def leaf_node(path: list[Frame]) -> int:
        parent = -1
        for frame in path:
            key = (parent, frame_id(frame))
            if key not in node_index:
                node_index[key] = len(nodes) // 2
                nodes.extend(key)
            parent = node_index[key]
        return parent

    kinds = list(LEAK_KINDS)
    apis: list[str] = []
    records_out: list[list[Any]] = []
    chosen = samples_selection(report, options) if records is None else records
    for sample in samples_of(chosen):
        r = sample.record
        if r.kind not in apis:
            apis.append(r.kind)
        records_out.append([
            leaf_node(sample.root_first), apis.index(r.kind),
            kinds.index(r.leak_kind) if r.leak_kind in kinds else -1,
            r.bytes, sample.bytes, r.blocks, sample.alloc_count, sample.alloc_bytes,
            r.loss_record or 0, r.stack_id, r.growth.verdict if r.growth else ""])
        if before is not None:
            side = before[id(r)]
            records_out[-1] += [side.bytes, side.blocks, side.status]
    s = report.summary
    return {
        "facts": _facts(report),
        "summary": {
            "leaks": None if s.leaks is None else [
                [k, s.leaks.of(k).bytes, s.leaks.of(k).blocks] for k in kinds],
            "live": [s.live_bytes, s.live_blocks],
            "suppressed": [s.suppressed.bytes, s.suppressed.blocks],
            "allocated": [s.total_allocations, s.total_allocated_bytes],
            "byApi": [[k, t.bytes, t.blocks] for k, t in s.by_kind.items()],
        },
        "kinds": kinds,
        "shownKinds": None if options.leak_kinds is None else sorted(options.leak_kinds),
        "apis": apis,
        "frames": frames,
        "nodes": nodes,
        "records": records_out,
        "recordsTotal": len(report.records) if records is None else len(records),
        "diff": before is not None,
        "startFrames": sorted(PROCESS_START_FUNCTIONS),
        "timeline": None if timeline is None else {
            "total": timeline.total,
            "lines": [{"label": line.label, "verdict": line.verdict, "points": line.points}
                      for line in timeline.lines]},
    }


def _facts(report: Report) -> dict[str, Any]:
    scan = report.scan
    return {
        "program": report.program, "command": report.command, "pid": report.pid,
        "source": report.source, "capture": report.capture_path,
        "start": report.start_time, "end": report.end_time, "when": report.captured_when,
        "counters": report.counters, "notes": report.notes,
        # How a signal ended the program: the text report's lines, heading included.
        "fatal": [line.strip("= ") if n == 0 else line
                  for n, line in enumerate(fatal_signal_lines(report)[1:])] or None,
        "invalidFrees": [line.strip("= ") if n == 0 else line
                         for n, line in enumerate(invalid_free_lines(report)[1:])] or None,
        "scan": None if scan is None else {
            "seconds": scan.seconds, "bytes scanned": scan.bytes_scanned,
            "threads stopped": scan.threads_stopped,
            "threads not stopped": scan.threads_not_stopped},
        "buildSeconds": report.build_seconds,
    }
