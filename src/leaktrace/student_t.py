"""Student's t quantiles without scipy: the two-sided central probability P(|T| <= t) has a
closed form for whole degrees of freedom (Abramowitz & Stegun 26.7.3-4), inverted here by
bisection; past a few hundred degrees of freedom the Cornish-Fisher expansion around the
normal quantile is exact to far more digits than a confidence interval needs."""

from __future__ import annotations

import math
from statistics import NormalDist

_CLOSED_FORM_MAX_DF = 400  # the closed form sums df/2 terms per evaluation


def central_probability(t: float, df: int) -> float:
    """P(|T| <= t) for T ~ Student's t with df degrees of freedom (t >= 0, df >= 1)."""
    theta = math.atan(t / math.sqrt(df))
    sin, cos = math.sin(theta), math.cos(theta)
    c2 = cos * cos
    if df % 2 == 0:
        term = total = 1.0
        for k in range(1, df // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        return sin * total
    if df == 1:
        return 2 * theta / math.pi
    term = total = 1.0
    for k in range(1, (df - 1) // 2):
        term *= c2 * (2 * k) / (2 * k + 1)
        total += term
    return 2 / math.pi * (theta + sin * cos * total)


def t_quantile(p: float, df: int) -> float:
    """The p quantile of Student's t with df degrees of freedom, for 0.5 <= p < 1
    (e.g. 0.975 for a two-sided 95% interval)."""
    if df < 1:
        raise ValueError("degrees of freedom must be at least 1")
    if not 0.5 <= p < 1:
        raise ValueError("p must be in [0.5, 1)")
    z = NormalDist().inv_cdf(p)
    if df > _CLOSED_FORM_MAX_DF:
        return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
                + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))
    central = 2 * p - 1
    low, high = 0.0, 1.0
    while central_probability(high, df) < central:
        high *= 2
    for _ in range(200):
        mid = (low + high) / 2
        if central_probability(mid, df) < central:
            low = mid
        else:
            high = mid
        if high - low <= 1e-12 * high:
            break
    return (low + high) / 2
