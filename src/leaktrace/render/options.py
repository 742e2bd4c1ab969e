"""What the user asked to see; shared by every renderer."""

from __future__ import annotations

from dataclasses import dataclass

from leaktrace.model import LeakRecord, Report


@dataclass
class RenderOptions:
    top: int | None = None  # show only the N largest records (None: all)
    min_bytes: int = 0  # hide records smaller than this
    show_addresses: bool = False  # list every live block's address


def shown_records(report: Report, options: RenderOptions) -> list[LeakRecord]:
    """The records to print, largest first, after --min-bytes then --top."""
    records = sorted(report.records, key=lambda r: (-r.bytes, -r.blocks, r.stack_id))
    records = [r for r in records if r.bytes >= options.min_bytes]
    return records if options.top is None else records[: options.top]
