"""`--format speedscope`: speedscope's file format (https://www.speedscope.app,
file-format-schema.json), two sampled profiles weighted in bytes: the leaked bytes of the
records shown, and every byte allocated from those backtraces during the run."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from leaktrace.model import Frame, Report
from leaktrace.render.options import RenderOptions
from leaktrace.render.stack_paths import NO_BACKTRACE, frame_name, stack_samples

SCHEMA_URL = "https://www.speedscope.app/file-format-schema.json"


def frame_table() -> tuple[list[dict[str, Any]], Callable[[Frame | None], int]]:
    """speedscope's shared frame list, and the function that gives a frame's index in it
    (None: the `[no backtrace]` frame)."""
    frames: list[dict[str, Any]] = []
    index: dict[tuple[str, str | None, int | None], int] = {}

    def frame_index(frame: Frame | None) -> int:
        name = NO_BACKTRACE if frame is None else frame_name(frame)
        if frame is not None and frame.inlined:
            name += " (inlined)"
        file = frame.file if frame is not None else None
        line = frame.line if frame is not None else None
        key = (name, file, line)
        if key not in index:
            entry: dict[str, Any] = {"name": name}
            if file:
                entry["file"] = file
            if line:
                entry["line"] = line
            index[key] = len(frames)
            frames.append(entry)
        return index[key]

    return frames, frame_index


def render_speedscope(report: Report, options: RenderOptions) -> str:
    frames, frame_index = frame_table()
    samples = stack_samples(report, options)
    stacks = [[frame_index(f) for f in s.root_first] or [frame_index(None)] for s in samples]
    program = os.path.basename(report.program) if report.program else report.source
    profiles = [
        sampled_profile(f"{program}: leaked bytes", stacks, [s.bytes for s in samples]),
        sampled_profile(f"{program}: allocated bytes", stacks, [s.alloc_bytes for s in samples]),
    ]
    document = {
        "$schema": SCHEMA_URL,
        "shared": {"frames": frames},
        "profiles": profiles,
        "name": f"leaktrace: {program}" + (f" (pid {report.pid})" if report.pid else ""),
        "activeProfileIndex": 0,
        "exporter": f"leaktrace {version('leaktrace')}",
    }
    return json.dumps(document, separators=(",", ":")) + "\n"


def sampled_profile(name: str, stacks: list[list[int]], weights: list[int]) -> dict[str, Any]:
    kept = [(s, w) for s, w in zip(stacks, weights, strict=True) if w > 0]
    return {"type": "sampled", "name": name, "unit": "bytes", "startValue": 0,
            "endValue": sum(w for _, w in kept), "samples": [s for s, _ in kept],
            "weights": [w for _, w in kept]}
