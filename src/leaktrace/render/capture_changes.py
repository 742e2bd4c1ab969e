"""One line per numbered capture (on-demand or mtrace()) for the end of `leaktrace run`:
when and why it was written, and what changed since the capture before it."""

from __future__ import annotations

from leaktrace.analyze.since_previous import (
    Change,
    Comparison,
    compare_with_previous,
)
from leaktrace.capture.errors import CaptureError
from leaktrace.capture.reader import read_capture
from leaktrace.capture_names import parse_capture_name


def change_text(change: Change) -> str:
    return f"{change.bytes:+,} bytes, {change.blocks:+,} blocks"


def comparison_text(comparison: Comparison) -> str:
    if comparison.previous_path is None:
        return (f"{comparison.total.bytes:,} bytes in {comparison.total.blocks:,} blocks "
                f"allocated since {comparison.against} and still live")
    return f"{change_text(comparison.total)} since {comparison.against}"


def numbered_capture_line(path: str) -> str:
    name = parse_capture_name(path).short
    try:
        capture = read_capture(path)
    except CaptureError as e:
        return f"{name}: unreadable ({e})"
    when = f"at {capture.header.run_seconds:.2f} s"
    why = capture.session.reason_name if capture.session else "on demand"
    comparison = compare_with_previous(path, capture)
    change = comparison_text(comparison) if comparison else "the first capture"
    from leaktrace.invocation import report_hint

    return f"{name} ({why} {when}): {change}: {report_hint(path)}"
