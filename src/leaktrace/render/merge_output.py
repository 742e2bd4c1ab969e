"""`leaktrace merge` as JSON and text: the common report of the merged records, plus where
they came from. JSON adds `merged_from[]` and `records[].by_process[]` to the JSON report
(docs/exports.md, "merge"); text adds a table of the processes."""

from __future__ import annotations

import json
from typing import Any

from leaktrace.analyze.merge_reports import MergedReport
from leaktrace.leak_kinds import FIELD_NAMES, LEAK_KINDS
from leaktrace.model import Report
from leaktrace.render.json_report import report_to_json
from leaktrace.render.options import RenderOptions, shown_records
from leaktrace.render.sizes import size_with_bytes
from leaktrace.render.text import render_text


def render_merged_json(merged: MergedReport, options: RenderOptions) -> str:
    document = report_to_json(merged.report, options)
    document["merged_from"] = [_source(r) for r in merged.sources]
    for entry, record in zip(document["records"], shown_records(merged.report, options),
                             strict=True):
        entry["by_process"] = [
            {"source": share.source, "pid": merged.sources[share.source].pid,
             "bytes": share.bytes, "blocks": share.blocks,
             "total_allocations": share.allocations,
             "total_allocated_bytes": share.allocated_bytes}
            for share in merged.shares.get(id(record), [])]
    return json.dumps(document, indent=2) + "\n"


def _source(report: Report) -> dict[str, Any]:
    s = report.summary
    out: dict[str, Any] = {"program": report.program, "pid": report.pid,
                           "capture_path": report.capture_path,
                           "live": {"bytes": s.live_bytes, "blocks": s.live_blocks}}
    for kind in LEAK_KINDS:
        total = s.leaks.of(kind) if s.leaks else None
        out[FIELD_NAMES[kind]] = (None if total is None
                                  else {"bytes": total.bytes, "blocks": total.blocks})
    return out


def render_merged_text(merged: MergedReport, options: RenderOptions) -> str:
    lines = ["", "== Processes merged =="]
    for report in merged.sources:
        s = report.summary
        lost = (f"definitely lost {size_with_bytes(s.leaks.definitely_lost.bytes)}"
                if s.leaks else f"live {size_with_bytes(s.live_bytes)}")
        pid = f"pid {report.pid}" if report.pid is not None else "pid ?"
        lines.append(f"  {pid:<10}  {lost}  {report.capture_path or report.program or ''}")
    return render_text(merged.report, options) + "\n".join(lines) + "\n"


def render_merged_html(merged: MergedReport, options: RenderOptions) -> str:
    """The HTML page of the merged report, with the processes in its facts and each record's
    share per process in its expanded row."""
    from leaktrace.render.html_report import html_page, page_data
    from leaktrace.render.options import samples_selection

    data = page_data(merged.report, options)
    data["processes"] = [_source(r) for r in merged.sources]
    data["byProcess"] = {
        str(index): [[merged.sources[s.source].pid, s.bytes, s.blocks]
                     for s in merged.shares.get(id(record), [])]
        for index, record in enumerate(samples_selection(merged.report, options))}
    return html_page(data, f"{len(merged.sources)} processes merged")
