"""The error raised for any capture file leaktrace cannot read."""

from leaktrace.errors import LeaktraceError


class CaptureError(LeaktraceError):
    """Missing, foreign, newer, truncated or corrupt capture file (one-line message)."""
