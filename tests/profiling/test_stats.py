"""Median / quartiles / IQR against hand-computed values and numpy's percentile."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tal_bench.profiling.stats import quantile, relative_spread, summarize


def test_odd_count_by_hand() -> None:
    s = summarize([10.0, 1.0, 3.0, 2.0, 4.0])  # sorted 1 2 3 4 10
    # positions (n-1)q = 4q: median x_2 = 3, q1 x_1 = 2, q3 x_3 = 4
    assert (s.median, s.q1, s.q3, s.iqr) == (3.0, 2.0, 4.0, 2.0)
    assert (s.min, s.max, s.rounds) == (1.0, 10.0, 5)
    assert s.mean == pytest.approx(4.0)


def test_even_count_interpolates() -> None:
    s = summarize([4.0, 1.0, 3.0, 2.0])  # sorted 1 2 3 4; positions 3q
    assert s.median == pytest.approx(2.5)  # h = 1.5
    assert s.q1 == pytest.approx(1.75)  # h = 0.75: 1 + 0.75 * (2 - 1)
    assert s.q3 == pytest.approx(3.25)  # h = 2.25: 3 + 0.25 * (4 - 3)
    assert s.iqr == pytest.approx(1.5)


def test_sample_std_by_hand() -> None:
    s = summarize([2, 4, 4, 4, 5, 5, 7, 9])  # mean 5, squared deviations sum to 32
    assert s.std == pytest.approx(math.sqrt(32 / 7))


def test_single_value() -> None:
    s = summarize([7.5])
    assert (s.median, s.iqr, s.std, s.rounds) == (7.5, 0.0, 0.0, 1)


@pytest.mark.parametrize("q", [0.0, 0.1, 0.25, 0.5, 0.9, 1.0])
def test_quantile_matches_numpy_linear(q: float) -> None:
    values = [0.3, 9.1, 2.2, 5.0, 5.0, 7.7, 1.4]
    assert quantile(values, q) == pytest.approx(float(np.percentile(values, 100 * q)))


def test_relative_spread() -> None:
    assert relative_spread([100.0, 102.0, 101.0]) == pytest.approx(0.02 / 1.01)


def test_empty_and_bad_q_raise() -> None:
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        quantile([1.0], 1.5)
