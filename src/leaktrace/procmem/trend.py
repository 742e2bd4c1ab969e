"""Is the process growing? A least-squares line through the samples, with a 95% confidence
interval on its slope (Student's t, n-2 degrees of freedom)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

GROWING, SHRINKING, STABLE, TOO_FEW = "growing", "shrinking", "stable", "too few samples"
MIN_SAMPLES = 3  # a line through two points has no error estimate


@dataclass(frozen=True)
class Trend:
    verdict: str
    samples: int
    bytes_per_minute: float
    ci_low: float  # 95% confidence interval of the slope, bytes per minute
    ci_high: float
    fitted_growth: float  # slope times the watched time, in bytes


def fit_trend(seconds: Sequence[float], values: Sequence[int], *, min_growth_bytes: float) -> Trend:
    """`min_growth_bytes`: growth over the whole watch below this counts as stable even when
    statistically significant (allocator noise on a flat process is real but irrelevant)."""
    n = len(values)
    if n < MIN_SAMPLES or max(seconds) - min(seconds) <= 0:
        return Trend(TOO_FEW, n, 0.0, 0.0, 0.0, 0.0)

    from leaktrace.student_t import t_quantile

    minutes = [s / 60.0 for s in seconds]
    y = [float(v) for v in values]
    x_mean, y_mean = sum(minutes) / n, sum(y) / n
    sxx = sum((x - x_mean) ** 2 for x in minutes)
    slope = sum((x - x_mean) * (v - y_mean) for x, v in zip(minutes, y, strict=True)) / sxx
    variance = sum((v - (y_mean + slope * (x - x_mean))) ** 2
                   for x, v in zip(minutes, y, strict=True)) / (n - 2)
    half_width = t_quantile(0.975, n - 2) * (variance / sxx) ** 0.5
    low, high = slope - half_width, slope + half_width
    growth = slope * (minutes[-1] - minutes[0])

    if low > 0 and growth >= min_growth_bytes:
        verdict = GROWING
    elif high < 0 and -growth >= min_growth_bytes:
        verdict = SHRINKING
    else:
        verdict = STABLE
    return Trend(verdict, n, slope, low, high, growth)
