"""`leaktrace diff --format html`: the HTML report's page for a diff. One row per backtrace
key with its bytes before and after, the status and the change; the icicle graph weighs
the bytes each backtrace gained (switchable to bytes freed, after and before)."""

from __future__ import annotations

import os
from typing import Any

from leaktrace.analyze.report_diff import ReportDiff
from leaktrace.model import LeakRecord, Report
from leaktrace.render.html_report import DiffSide, html_page, page_data
from leaktrace.render.options import RenderOptions


def render_diff_html(diff: ReportDiff) -> str:
    records: list[LeakRecord] = []
    before: dict[int, DiffSide] = {}
    for change in diff.changes:
        record = LeakRecord(
            stack_id=(change.stack_ids_after or change.stack_ids_before)[0], kind=change.kind,
            bytes=change.after.bytes, blocks=change.after.blocks, frames=change.frames,
            leak_kind=change.leak_kind)
        records.append(record)
        before[id(record)] = DiffSide(change.before.bytes, change.before.blocks, change.status)
    data = page_data(diff.after, RenderOptions(), records=records, before=before)
    data["sides"] = {"before": _side(diff.before), "after": _side(diff.after)}
    program = os.path.basename(diff.after.program or diff.after.source)
    return html_page(data, f"diff of {program}")


def _side(report: Report) -> dict[str, Any]:
    return {"capture": report.capture_path, "pid": report.pid, "program": report.program,
            "end": report.end_time}
