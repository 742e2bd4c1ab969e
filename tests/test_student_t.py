"""The t quantiles that replace scipy's, against published values (scipy.stats.t.ppf)."""

from __future__ import annotations

import pytest

from leaktrace.student_t import central_probability, t_quantile

# (p, degrees of freedom, scipy.stats.t.ppf(p, df))
KNOWN = [
    (0.975, 1, 12.706204736174698),
    (0.975, 2, 4.302652729749464),
    (0.975, 3, 3.182446305284263),
    (0.975, 10, 2.228138851986274),
    (0.975, 30, 2.0422724563012373),
    (0.975, 1000, 1.9623390808264074),
    (0.995, 5, 4.032142983557536),
    (0.95, 7, 1.894578605061305),
]


@pytest.mark.parametrize(("p", "df", "expected"), KNOWN)
def test_t_quantile_matches_scipy(p: float, df: int, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, rel=1e-9)


def test_closed_form_and_expansion_agree_where_they_meet() -> None:
    assert t_quantile(0.975, 400) == pytest.approx(t_quantile(0.975, 401), rel=1e-4)
    assert central_probability(t_quantile(0.975, 400), 400) == pytest.approx(0.95, abs=1e-9)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        t_quantile(0.975, 0)
    with pytest.raises(ValueError):
        t_quantile(1.0, 5)
