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

    import numpy as np
    from scipy import stats

    minutes = np.asarray(seconds, dtype=float) / 60.0
    y = np.asarray(values, dtype=float)
    x_mean, y_mean = minutes.mean(), y.mean()
    sxx = float(((minutes - x_mean) ** 2).sum())
    slope = float(((minutes - x_mean) * (y - y_mean)).sum() / sxx)
    residuals = y - (y_mean + slope * (minutes - x_mean))
    variance = float((residuals**2).sum()) / (n - 2)
    half_width = float(stats.t.ppf(0.975, n - 2)) * (variance / sxx) ** 0.5
    low, high = slope - half_width, slope + half_width
    growth = slope * float(minutes[-1] - minutes[0])

    if low > 0 and growth >= min_growth_bytes:
        verdict = GROWING
    elif high < 0 and -growth >= min_growth_bytes:
        verdict = SHRINKING
    else:
        verdict = STABLE
    return Trend(verdict, n, slope, low, high, growth)
