"""Live bytes over time for the top backtraces: SVG drawn here (no extra package), PNG with
matplotlib when it is installed. Used by `growth --plot` and `report --plot`."""

from __future__ import annotations

import html
import os

from leaktrace.analyze.growth import TIMELINE_STACKS, GrowthAnalysis, StackGrowth
from leaktrace.errors import LeaktraceError
from leaktrace.render.sizes import human_size

PLOTTED_STACKS = 8
_COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#17becf")
_WIDTH, _HEIGHT, _LEFT, _RIGHT, _TOP, _BOTTOM = 960, 460, 80, 330, 40, 50


def write_growth_plot(path: str, analysis: GrowthAnalysis, top: int | None = None) -> str:
    """Write the plot; returns the path written: a PNG asked for without matplotlib
    installed becomes an SVG beside it (FILE.svg). Raises LeaktraceError for another
    extension or an unwritable file."""
    stacks = analysis.stacks[: min(top or PLOTTED_STACKS, TIMELINE_STACKS)]
    stem, extension = os.path.splitext(path)
    title = _title(analysis)
    if extension.lower() == ".png":
        if _write_png(path, stacks, title):
            return path
        path = stem + ".svg"
    elif extension.lower() != ".svg":
        raise LeaktraceError(f"{path}: the plot must be a .svg or .png file")
    try:
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(render_growth_svg(stacks, title))
    except OSError as e:
        raise LeaktraceError(f"cannot write the plot to {path}: {e.strerror or e}") from None
    return path


def _title(analysis: GrowthAnalysis) -> str:
    program = os.path.basename(analysis.program) if analysis.program else "process"
    return f"live bytes per backtrace: {program} (pid {analysis.pid})"


def _label(stack: StackGrowth) -> str:
    where = next((f.function for f in stack.frames if f.function), None) or "?"
    return f"{stack.stack_id} {where} ({stack.verdict})"


def render_growth_svg(stacks: list[StackGrowth], title: str) -> str:
    points = [p for s in stacks for p in s.timeline]
    t_max = max((t for t, _ in points), default=1.0) or 1.0
    v_max = max((v for _, v in points), default=1) or 1
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM

    def x(t: float) -> float:
        return _LEFT + t / t_max * plot_w

    def y(v: float) -> float:
        return _TOP + plot_h - v / v_max * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{_WIDTH}" height="{_HEIGHT}" fill="white"/>',
        f'<text x="{_LEFT}" y="24" font-size="15">{html.escape(title)}</text>',
        f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_LEFT + plot_w}" y2="{_TOP + plot_h}" '
        'stroke="black"/>',
        f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{_TOP + plot_h}" stroke="black"/>',
        f'<text x="{_LEFT - 6}" y="{_TOP + 4}" text-anchor="end">'
        f"{html.escape(human_size(v_max))}</text>",
        f'<text x="{_LEFT - 6}" y="{_TOP + plot_h + 4}" text-anchor="end">0</text>',
        f'<text x="{_LEFT}" y="{_TOP + plot_h + 18}" text-anchor="middle">0</text>',
        f'<text x="{_LEFT + plot_w}" y="{_TOP + plot_h + 18}" text-anchor="middle">'
        f"{t_max:.1f} s</text>",
    ]
    if not stacks:
        parts.append(f'<text x="{_LEFT + 20}" y="{_TOP + 30}">no backtrace to plot</text>')
    for index, stack in enumerate(stacks):
        color = _COLORS[index % len(_COLORS)]
        coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in stack.timeline)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                     f'points="{coords}"/>')
        parts.append(f'<text x="{_LEFT + plot_w + 12}" y="{_TOP + 14 + 18 * index}" '
                     f'fill="{color}">{html.escape(_label(stack))}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _write_png(path: str, stacks: list[StackGrowth], title: str) -> bool:
    """False when matplotlib is not installed (the caller then draws an SVG)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axes = plt.subplots(figsize=(10, 4.6))
    for index, stack in enumerate(stacks):
        axes.plot([t for t, _ in stack.timeline], [v for _, v in stack.timeline],
                  color=_COLORS[index % len(_COLORS)], label=_label(stack))
    axes.set_xlabel("seconds since the start")
    axes.set_ylabel("live bytes")
    axes.set_title(title)
    if stacks:
        axes.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    try:
        figure.savefig(path)
    except OSError as e:
        raise LeaktraceError(f"cannot write the plot to {path}: {e.strerror or e}") from None
    finally:
        plt.close(figure)
    return True
