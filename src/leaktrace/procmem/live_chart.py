"""The live terminal chart of `leaktrace watch`, drawn with rich on stderr (so stdout keeps
only the final verdict) and only when stderr is a terminal."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from types import TracebackType

from leaktrace.procmem.sampler import METRICS, Sample
from leaktrace.procmem.trend import Trend
from leaktrace.render.sizes import human_size

_BLOCKS = " ▁▂▃▄▅▆▇█"
_ROWS = 10


def chart_lines(values: Sequence[int], width: int, rows: int = _ROWS) -> list[str]:
    """A bar chart of the last `width` values, `rows` characters high, lowest value at the
    bottom row's baseline (the range, not zero, is what shows growth)."""
    shown = list(values[-width:])
    if not shown:
        return [""] * rows
    low, high = min(shown), max(shown)
    span = high - low or 1
    eighths = [round((v - low) / span * (rows * 8 - 1)) + 1 for v in shown]
    lines = []
    for row in range(rows - 1, -1, -1):
        floor = row * 8
        lines.append("".join(_BLOCKS[max(0, min(8, e - floor))] for e in eighths))
    return lines


class LiveChart:
    def __init__(self, title: str, metric: str, enabled: bool | None = None) -> None:
        self.title = title
        self.metric = metric
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._live: object | None = None

    def __enter__(self) -> LiveChart:
        if self.enabled:
            from rich.console import Console
            from rich.live import Live

            self._console = Console(stderr=True)
            self._live = Live(console=self._console, refresh_per_second=4, transient=True)
            self._live.__enter__()  # type: ignore[attr-defined]
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(kind, error, traceback)  # type: ignore[attr-defined]

    def update(self, samples: Sequence[Sample], trend: Trend | None) -> None:
        if self._live is None:
            return
        from rich.panel import Panel
        from rich.text import Text

        width = max(10, self._console.width - 16)
        values = [s.value(self.metric) for s in samples]
        text = Text()
        lines = chart_lines(values, width)
        high, low = human_size(max(values[-width:])), human_size(min(values[-width:]))
        for index, line in enumerate(lines):
            label = high if index == 0 else low if index == len(lines) - 1 else ""
            text.append(f"{label:>10} ", style="dim")
            text.append(line + "\n", style="cyan")
        last = samples[-1]
        text.append(
            f"{last.seconds:8.1f} s  RSS {human_size(last.rss)}  Pss {human_size(last.pss)}  "
            f"private dirty {human_size(last.private_dirty)}  heap {human_size(last.heap)}\n"
        )
        if trend is not None and trend.samples >= 3:
            text.append(
                f"trend of {METRICS[self.metric]}: {format_rate(trend.bytes_per_minute)} "
                f"({trend.verdict} so far)",
                style="bold red" if trend.verdict == "growing" else "bold green",
            )
        self._live.update(Panel(text, title=self.title))  # type: ignore[attr-defined]


def format_rate(bytes_per_minute: float) -> str:
    sign = "+" if bytes_per_minute >= 0 else "-"
    return f"{sign}{human_size(int(abs(bytes_per_minute)))}/min"
