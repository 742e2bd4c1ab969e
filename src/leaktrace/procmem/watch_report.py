"""The verdict `leaktrace watch` prints at the end, as text or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence

from leaktrace.procmem.live_chart import format_rate
from leaktrace.procmem.sampler import METRICS, Sample
from leaktrace.procmem.trend import Trend
from leaktrace.render.sizes import human_size


def render_watch_text(
    pid: int, command: str, samples: Sequence[Sample], interval: float, trend: Trend, metric: str
) -> str:
    if not samples:
        return f"pid {pid} ({command}): no sample taken\n"
    first, last = samples[0], samples[-1]
    lines = [
        f"watched pid {pid} ({command}) for {last.seconds:.1f} s: "
        f"{len(samples)} samples every {interval:g} s",
        "",
        f"  {'':<14} {'first':>10} {'last':>10} {'change':>11}",
    ]
    for name, label in METRICS.items():
        change = last.value(name) - first.value(name)
        sign = "+" if change >= 0 else "-"
        lines.append(
            f"  {label.split(' (')[0]:<14} {human_size(first.value(name)):>10} "
            f"{human_size(last.value(name)):>10} {sign + human_size(abs(change)):>11}"
        )
    lines.append("")
    if trend.verdict == "too few samples":
        lines.append(f"{METRICS[metric]}: too few samples for a trend (need 3)")
    else:
        lines.append(
            f"{METRICS[metric]} trend: {format_rate(trend.bytes_per_minute)} "
            f"(95% CI {format_rate(trend.ci_low)} .. {format_rate(trend.ci_high)}): "
            f"{trend.verdict.upper()}"
        )
    return "\n".join(lines) + "\n"


def render_watch_json(
    pid: int, command: str, samples: Sequence[Sample], interval: float, trend: Trend, metric: str
) -> str:
    def sample_dict(sample: Sample) -> dict[str, float]:
        return {"seconds": sample.seconds, **{name: sample.value(name) for name in METRICS}}

    document = {
        "pid": pid,
        "command": command,
        "interval_seconds": interval,
        "samples": len(samples),
        "duration_seconds": samples[-1].seconds if samples else 0.0,
        "metric": metric,
        "verdict": trend.verdict,
        "bytes_per_minute": trend.bytes_per_minute,
        "ci95_bytes_per_minute": [trend.ci_low, trend.ci_high],
        "fitted_growth_bytes": trend.fitted_growth,
        "first": sample_dict(samples[0]) if samples else None,
        "last": sample_dict(samples[-1]) if samples else None,
    }
    return json.dumps(document, indent=2) + "\n"
