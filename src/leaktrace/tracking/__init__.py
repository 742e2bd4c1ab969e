"""In-process tracking of native allocations: `leaktrace.track()` (tracker.py) on the shim
loaded into this process (shim_session.py), its report (report.py)."""

from typing import Any

from leaktrace.tracking.tracker import LeakError, Tracker, track


def __getattr__(name: str) -> Any:
    if name == "TrackReport":  # imports numpy: only when asked for
        from leaktrace.tracking.report import TrackReport
        return TrackReport
    raise AttributeError(f"module 'leaktrace.tracking' has no attribute {name!r}")


__all__ = ["LeakError", "TrackReport", "Tracker", "track"]
