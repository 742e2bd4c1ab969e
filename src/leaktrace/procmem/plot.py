"""What `leaktrace watch` saves: the samples as CSV, and a plot as HTML or SVG (drawn here,
no extra package) or PNG (with matplotlib, when it is installed)."""

from __future__ import annotations

import csv
import html
import os
from collections.abc import Sequence

from leaktrace.errors import LeaktraceError
from leaktrace.procmem.sampler import METRICS, Sample
from leaktrace.procmem.trend import Trend

CSV_COLUMNS = ("seconds", "rss_bytes", "pss_bytes", "private_dirty_bytes", "heap_bytes")
_COLORS = {"rss": "#1f77b4", "pss": "#2ca02c", "private_dirty": "#d62728", "heap": "#9467bd"}
_WIDTH, _HEIGHT, _MARGIN = 900, 420, 70


def write_csv(path: str, samples: Sequence[Sample]) -> None:
    with open(path, "w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for s in samples:
            writer.writerow((f"{s.seconds:.3f}", s.rss, s.pss, s.private_dirty, s.heap))


def write_plot(path: str, samples: Sequence[Sample], trend: Trend, metric: str, title: str) -> None:
    extension = os.path.splitext(path)[1].lower()
    if extension in (".html", ".htm"):
        svg = render_svg(samples, trend, metric, title)
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(
                f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
                f"<title>{html.escape(title)}</title></head>\n<body>\n{svg}\n</body></html>\n"
            )
    elif extension == ".svg":
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(render_svg(samples, trend, metric, title))
    elif extension == ".png":
        _write_png(path, samples, trend, metric, title)
    else:
        raise LeaktraceError(f"{path}: the plot must be a .html, .svg or .png file")


def _trend_line(samples: Sequence[Sample], trend: Trend, metric: str) -> tuple[float, float]:
    """Fitted values at the first and last sample (the line passes through the means)."""
    xs = [s.seconds for s in samples]
    ys = [s.value(metric) for s in samples]
    x_mean, y_mean = sum(xs) / len(xs), sum(ys) / len(ys)
    per_second = trend.bytes_per_minute / 60.0
    return y_mean + per_second * (xs[0] - x_mean), y_mean + per_second * (xs[-1] - x_mean)


def render_svg(samples: Sequence[Sample], trend: Trend, metric: str, title: str) -> str:
    if not samples:
        raise LeaktraceError("no samples to plot")
    t0, t1 = samples[0].seconds, samples[-1].seconds
    values = [s.value(m) for s in samples for m in METRICS]
    low, high = min(values), max(values)
    span_t, span_v = (t1 - t0) or 1.0, (high - low) or 1

    def x(seconds: float) -> float:
        return _MARGIN + (seconds - t0) / span_t * (_WIDTH - 2 * _MARGIN)

    def y(value: float) -> float:
        return _HEIGHT - _MARGIN - (value - low) / span_v * (_HEIGHT - 2 * _MARGIN)

    mib = 1024 * 1024
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{_WIDTH}" height="{_HEIGHT}" fill="white"/>',
        f'<text x="{_MARGIN}" y="24" font-size="15">{html.escape(title)}</text>',
        f'<line x1="{_MARGIN}" y1="{_HEIGHT - _MARGIN}" x2="{_WIDTH - _MARGIN}" '
        f'y2="{_HEIGHT - _MARGIN}" stroke="black"/>',
        f'<line x1="{_MARGIN}" y1="{_MARGIN}" x2="{_MARGIN}" y2="{_HEIGHT - _MARGIN}" '
        'stroke="black"/>',
        f'<text x="{_MARGIN - 6}" y="{y(high) + 4}" text-anchor="end">{high / mib:.1f}</text>',
        f'<text x="{_MARGIN - 6}" y="{y(low) + 4}" text-anchor="end">{low / mib:.1f}</text>',
        f'<text x="14" y="{_HEIGHT / 2}" transform="rotate(-90 14 {_HEIGHT / 2})" '
        'text-anchor="middle">MiB</text>',
        f'<text x="{x(t0)}" y="{_HEIGHT - _MARGIN + 18}" text-anchor="middle">{t0:.0f}</text>',
        f'<text x="{x(t1)}" y="{_HEIGHT - _MARGIN + 18}" text-anchor="middle">{t1:.1f} s</text>',
    ]
    for index, (name, label) in enumerate(METRICS.items()):
        points = " ".join(f"{x(s.seconds):.1f},{y(s.value(name)):.1f}" for s in samples)
        parts.append(
            f'<polyline fill="none" stroke="{_COLORS[name]}" stroke-width="2" points="{points}"/>'
        )
        legend_y = _MARGIN + 16 * index
        parts.append(
            f'<text x="{_WIDTH - _MARGIN + 4}" y="{legend_y}" fill="{_COLORS[name]}" '
            f'font-size="11">{html.escape(label.split(" (")[0])}</text>'
        )
    if trend.samples >= 3:
        start, end = _trend_line(samples, trend, metric)
        parts.append(
            f'<line x1="{x(t0):.1f}" y1="{y(start):.1f}" x2="{x(t1):.1f}" y2="{y(end):.1f}" '
            'stroke="black" stroke-dasharray="6 4"/>'
        )
        parts.append(
            f'<text x="{_MARGIN}" y="{_HEIGHT - 20}">dashed: least-squares trend of '
            f"{html.escape(METRICS[metric])}, {trend.bytes_per_minute / mib:+.3f} MiB/min "
            f"({html.escape(trend.verdict)})</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _write_png(path: str, samples: Sequence[Sample], trend: Trend, metric: str, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise LeaktraceError(
            "PNG plots need matplotlib (pip install matplotlib); "
            "an .html or .svg plot needs nothing extra"
        ) from None
    seconds = [s.seconds for s in samples]
    figure, axes = plt.subplots(figsize=(9, 4.2))
    for name, label in METRICS.items():
        axes.plot(seconds, [s.value(name) / 2**20 for s in samples], label=label)
    if trend.samples >= 3:
        start, end = _trend_line(samples, trend, metric)
        axes.plot([seconds[0], seconds[-1]], [start / 2**20, end / 2**20], "k--", label="trend")
    axes.set_xlabel("seconds")
    axes.set_ylabel("MiB")
    axes.set_title(title)
    axes.legend(loc="best")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
