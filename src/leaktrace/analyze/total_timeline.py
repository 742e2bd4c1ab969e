"""The process's live heap bytes at every snapshot of a capture's series (the sum over its
backtraces), and at the capture itself: the "process total" line of the HTML report's
growth timeline."""

from __future__ import annotations

from leaktrace.capture.reader import Capture


def total_live_timeline(capture: Capture, live_bytes_at_capture: int) -> list[tuple[float, int]]:
    series = capture.series
    if series is None or len(series) == 0:
        return []
    live: dict[int, int] = {}
    points: list[tuple[float, int]] = [(0.0, 0)]
    order = series.snapshot.argsort(kind="stable")
    entries, snapshots = series.entries[order], series.snapshot[order]
    at = 0
    for index, time_ns in enumerate(series.times_ns.tolist()):
        while at < len(entries) and snapshots[at] == index:
            live[int(entries[at]["stack_id"])] = int(entries[at]["live_bytes"])
            at += 1
        points.append((time_ns / 1e9, sum(live.values())))
    run_ns = capture.header.capture_monotonic_ns - capture.header.start_monotonic_ns
    points.append((max(run_ns / 1e9, points[-1][0]), live_bytes_at_capture))
    return points
