"""When not to trust a projection: checks on the fit range that a backtest cannot make.

A backtest only sees the part of the curve that was measured. A learning curve on a log
fraction axis is sigmoid: slow, then steep, then saturating. Fitted on the steep part, every
family is a guess about where the bend will come, and the backtest errors of the past (made on
the same steep part) say nothing about it. So the projection gets one plain warning when

* too few fractions were measured for the backtest to mean anything (``MIN_FRACTIONS``);
* the curve is not monotone beyond its noise (a drop between neighbouring fractions larger than
  ``NOISE_Z`` standard errors of the difference; with no per-fraction spread, any drop);
* the fit range has not passed the inflection: the last doubling of data gained at least
  ``BENT_SLOPE_FRAC`` of the steepest doubling's gain; or the curve does not saturate yet: the
  last doubling still added at least ``SATURATED_GAIN_FRAC`` of the mAP reached.

Gains per doubling are least-squares slopes of the mean mAP on ``log2(fraction)`` over the
fractions in ``[p/2, p]`` (the last two fractions when that window holds fewer than two).
"""

from __future__ import annotations

import numpy as np

from tal_bench.fits.anchors import Anchors

MIN_FRACTIONS = (
    5  # fit on 3, forecast 2: the smallest backtest with two cuts for 3-parameter curves
)
NOISE_Z = 2.0
BENT_SLOPE_FRAC = 0.75
SATURATED_GAIN_FRAC = 0.2


def gain_per_doubling(anchors: Anchors, end: int) -> tuple[float, float, float]:
    """(slope in mAP per doubling, window start %, window end %) over ``[p/2, p]`` for the
    fraction at index ``end`` (>= 1)."""
    x, y = anchors.fractions[: end + 1], anchors.means[: end + 1]
    window = x >= x[-1] / 2 - 1e-9
    if window.sum() < 2:
        window = np.arange(x.size) >= x.size - 2
    u = np.log2(x[window])
    slope = float(np.polyfit(u, y[window], 1)[0])
    return slope, float(x[window][0]), float(x[-1])


def trust_issues(anchors: Anchors) -> list[str]:
    """Reasons not to trust a projection from ``anchors`` (the fit range); empty if none."""
    issues = []
    n = anchors.fractions.size
    if n < MIN_FRACTIONS:
        issues.append(f"only {n} fractions in the fit range; a backtest needs {MIN_FRACTIONS}")
    issues += _drops(anchors)
    if n >= 2:
        issues += _bend(anchors)
    return issues


def trust_warning(anchors: Anchors) -> str | None:
    """The one plain warning for a projection from ``anchors``, or None."""
    issues = trust_issues(anchors)
    return "do not trust this projection: " + "; ".join(issues) if issues else None


def _drops(anchors: Anchors) -> list[str]:
    sigma = anchors.sigma()
    x, y = anchors.fractions, anchors.means
    out = []
    for i in range(1, x.size):
        drop = y[i - 1] - y[i]
        if drop <= 0:
            continue
        if sigma is None:
            out.append(f"mAP falls from {x[i - 1]:g} % to {x[i]:g} % by {drop:.2f} and no "
                       "per-fraction spread is known to call it noise")  # fmt: skip
            continue
        noise = NOISE_Z * float(np.hypot(sigma[i - 1], sigma[i]))
        if drop > noise:
            out.append(
                f"mAP falls from {x[i - 1]:g} % to {x[i]:g} % by {drop:.2f}, more than "
                f"{NOISE_Z:g} standard errors ({noise:.2f}): not monotone beyond noise"
            )
    return out


def _bend(anchors: Anchors) -> list[str]:
    n = anchors.fractions.size
    last, lo, hi = gain_per_doubling(anchors, n - 1)
    steepest = max(gain_per_doubling(anchors, i)[0] for i in range(1, n))
    level = float(anchors.means[-1])
    where = f"the last doubling of data ({lo:g} to {hi:g} %) added {last:.1f} mAP"
    if last >= BENT_SLOPE_FRAC * steepest:
        return [f"the fit range has not passed the curve's inflection: {where}, "
                f"{last / steepest:.0%} of the steepest doubling's {steepest:.1f}"]  # fmt: skip
    if last >= SATURATED_GAIN_FRAC * level:
        return [f"the curve does not saturate yet: {where}, {last / max(level, 1e-9):.0%} of the "
                f"{level:.1f} mAP reached"]  # fmt: skip
    return []
