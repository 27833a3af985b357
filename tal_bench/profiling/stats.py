"""Robust summaries of repeated measurements (median and inter-quartile range).

Quantiles use linear interpolation between order statistics (numpy's default, "type 7" in
Hyndman & Fan 1996), the same rule as ``torch.quantile`` that ``torch.utils.benchmark``
uses: for sorted values x_0..x_{n-1} the q-quantile sits at position h = (n - 1) q and is
x_floor(h) + (h - floor(h)) (x_floor(h)+1 - x_floor(h)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Stats:
    """Summary of one series of measurements, in the unit of the inputs."""

    rounds: int
    median: float
    q1: float
    q3: float
    iqr: float
    mean: float
    std: float  # sample standard deviation (n - 1); 0.0 for a single value
    min: float
    max: float

    def as_dict(self) -> dict[str, float | int]:
        """Plain dict of the fields."""
        return asdict(self)


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile of ``values`` by linear interpolation (see module docstring).

    Args:
        values: at least one number.
        q: quantile in [0, 1].

    Returns:
        The interpolated quantile.
    """
    if not values:
        raise ValueError("quantile of an empty series")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    xs = sorted(float(v) for v in values)
    h = (len(xs) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


def summarize(values: Sequence[float]) -> Stats:
    """Median, quartiles, IQR, mean, sample std, min and max of ``values``.

    Args:
        values: one or more measurements (e.g. per-round latencies in ms).

    Returns:
        A :class:`Stats`.
    """
    if not values:
        raise ValueError("cannot summarise an empty series")
    xs = [float(v) for v in values]
    n = len(xs)
    mean = sum(xs) / n
    var = sum((x - mean) ** 2 for x in xs) / (n - 1) if n > 1 else 0.0
    q1, q3 = quantile(xs, 0.25), quantile(xs, 0.75)
    return Stats(
        rounds=n,
        median=quantile(xs, 0.5),
        q1=q1,
        q3=q3,
        iqr=q3 - q1,
        mean=mean,
        std=math.sqrt(var),
        min=min(xs),
        max=max(xs),
    )


def relative_spread(values: Sequence[float]) -> float:
    """(max - min) / median of ``values``: the repeatability figure of repeated runs."""
    s = summarize(values)
    return (s.max - s.min) / s.median if s.median else math.inf
