"""Learning-curve families for mAP (points, 0-100) against training fraction ``x`` (percent).

Families (``CURVES``):

* ``5pl``: five-parameter logistic (Gottschalk & Dunn 2005), the study's best fit
  (seed paper §4.2.2): ``y = d + (a - d) / (1 + (x/c)^b)^g``; ``a`` = mAP as x -> 0, ``d`` = mAP
  as x -> inf, ``c`` a transition fraction (%), ``b`` slope, ``g`` asymmetry (g = 1: 4PL).
* ``exp``: the study's "exponential relationship for log-log normalized data" (§4.2.1). With
  ``u = log2(x)`` and ``v = log2(y)`` the fit is ``v = alpha - beta * 2^(-u / tau)``: the log-gap
  to the asymptote halves every ``tau`` doublings of the data, i.e. a power law with offset in
  log-log space, ``y = 2^alpha * 2^(-beta * x^(-1/tau))``. ``2^alpha`` is the asymptotic mAP,
  ``beta`` the log2-gap at x = 1 %. The printed fit ``mAP = 25.67 - 3.546 / 2^(log2(p)/1.214)``
  has exactly this ``A - B / 2^(u/tau)`` shape, but read in mAP units it cannot give the 48.07 mAP
  at p = 100 % that the text reports (it gives 25.59), so the left-hand side must be a normalised
  axis; we take the natural one (log2 mAP). Fitting in log space also keeps it distinct from
  ``pow3``, which is the same formula in linear mAP space. Residuals of this family are taken in
  ``v`` (log2 mAP), as in the study; all goodness-of-fit numbers are in mAP points.
* LCDB families (Mohr et al. 2022), written for error rates; mirrored here for an increasing
  metric, with positive gap parameters:
  ``pow3``  ``y = a - b x^-c``; ``pow4`` ``y = a - b (x + d)^-c``;
  ``mmf4`` ``y = (a b + c x^d) / (b + x^d)`` (a at x = 0, c at x -> inf);
  ``wbl4`` ``y = c - b exp(-a x^d)``; ``exp3`` ``y = c - a exp(-b x)``.

Positive scale/shape parameters are optimised as logs (``log_params``), so powers like
``(x/c)^b`` stay finite; every formula is evaluated in a numerically stable form.
Bounds come from the metric: levels and asymptotes lie in [0, 100] mAP points.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import product

import numpy as np

MAP_MAX_PCT = 100.0
Array = np.ndarray
Bounds = tuple[list[float], list[float]]


@dataclass(frozen=True)
class Curve:
    """One learning-curve family.

    Attributes:
        name: registry key (``5pl``, ``exp``...).
        formula: human-readable formula (x = fraction %, y = mAP points).
        params: parameter names, in the order ``func`` takes them.
        func: ``func(x, *params) -> y`` in mAP points.
        bounds: ``bounds(x, y) -> (lower, upper)`` in natural (not log) units.
        starts: ``starts(x, y) -> list of parameter vectors`` (deterministic multistart).
        log_params: parameters optimised as ``ln(p)`` (must have lower bound > 0).
        log2_space: residuals in ``log2(y)`` instead of ``y`` (needs y > 0).
        fit_func: ``fit_func(x, *params)`` = prediction in the residual space (defaults to
            ``func``, or ``log2(func)`` when ``log2_space``).
    """

    name: str
    formula: str
    params: tuple[str, ...]
    func: Callable[..., Array]
    bounds: Callable[[Array, Array], Bounds]
    starts: Callable[[Array, Array], list[list[float]]]
    log_params: frozenset[str] = field(default_factory=frozenset)
    log2_space: bool = False
    fit_func: Callable[..., Array] | None = None

    def predict(self, x: Array, params: dict[str, float]) -> Array:
        """mAP points at fractions ``x`` (percent) for a parameter dict."""
        return self.func(np.asarray(x, dtype=float), *(params[p] for p in self.params))


# --------------------------------------------------------------------------- formulas


def five_pl(x: Array, a: float, b: float, c: float, d: float, g: float) -> Array:
    """5PL: ``d + (a - d) / (1 + (x/c)^b)^g``; ``(1 + z)^g`` computed as ``exp(g softplus)``."""
    softplus = np.logaddexp(0.0, b * np.log(x / c))  # ln(1 + (x/c)^b), no overflow
    return d + (a - d) * np.exp(-g * softplus)


def exp_loglog(x: Array, alpha: float, beta: float, tau: float) -> Array:
    """Study's exponential on log-log axes: ``y = 2^(alpha - beta * 2^(-log2(x)/tau))``."""
    return np.exp2(exp_loglog_log2(x, alpha, beta, tau))


def exp_loglog_log2(x: Array, alpha: float, beta: float, tau: float) -> Array:
    """``log2`` of :func:`exp_loglog`: ``alpha - beta * 2^(-log2(x)/tau)``."""
    return alpha - beta * np.exp2(-np.log2(x) / tau)


def pow3(x: Array, a: float, b: float, c: float) -> Array:
    """LCDB pow3 (increasing form): ``a - b x^-c``."""
    return a - b * np.power(x, -c)


def pow4(x: Array, a: float, b: float, c: float, d: float) -> Array:
    """LCDB pow4 (increasing form): ``a - b (x + d)^-c``."""
    return a - b * np.power(x + d, -c)


def mmf4(x: Array, a: float, b: float, c: float, d: float) -> Array:
    """LCDB mmf4: ``(a b + c x^d) / (b + x^d)`` = ``c + (a - c) / (1 + x^d / b)``."""
    z = np.log(b) - d * np.log(x)  # ln(b / x^d)
    return c + (a - c) * np.exp(-np.logaddexp(0.0, -z))  # (a - c) * sigmoid(z)


def wbl4(x: Array, a: float, b: float, c: float, d: float) -> Array:
    """LCDB wbl4 (increasing form): ``c - b exp(-a x^d)``."""
    return c - b * np.exp(-a * np.power(x, d))


def exp3(x: Array, a: float, b: float, c: float) -> Array:
    """LCDB exp3 (increasing form): ``c - a exp(-b x)``."""
    return c - a * np.exp(-b * x)


# --------------------------------------------------------------------------- starts/bounds


def _stats(x: Array, y: Array) -> tuple[float, float, float, float, float]:
    x_min, x_max = float(np.min(x)), float(np.max(x))
    y_lo, y_hi = float(np.min(y)), float(np.max(y))
    x_mid = float(np.exp(np.mean(np.log(x))))  # geometric middle of the anchors
    return x_min, x_max, x_mid, y_lo, y_hi


def _asymptotes(y_hi: float, y_lo: float) -> list[float]:
    """Candidate upper asymptotes: just above the data, further above, halfway to 100."""
    spread = max(y_hi - y_lo, 1e-3)
    cands = [y_hi + 0.05 * spread, y_hi + 0.5 * spread, (y_hi + MAP_MAX_PCT) / 2]
    return [min(c, MAP_MAX_PCT - 1e-6) for c in cands]


def _first_point(x: Array, y: Array) -> tuple[float, float]:
    i = int(np.argmin(x))
    return float(x[i]), float(y[i])


def _five_pl_bounds(x: Array, y: Array) -> Bounds:
    x_min, x_max, *_ = _stats(x, y)
    return [0.0, 0.05, x_min / 100, 0.0, 1e-3], [MAP_MAX_PCT, 100.0, x_max * 100, MAP_MAX_PCT, 1e2]


def _five_pl_starts(x: Array, y: Array) -> list[list[float]]:
    x_min, x_max, x_mid, y_lo, y_hi = _stats(x, y)
    a0 = max(0.0, y_lo - 0.5 * (y_hi - y_lo))
    return [
        [a0, b, c, d, g]
        for d, c, b, g in product(_asymptotes(y_hi, y_lo), (x_min, x_mid), (1.0, 3.0), (1.0, 0.1))
    ]


def _exp_bounds(x: Array, y: Array) -> Bounds:
    y_pos = y[y > 0]
    lo_alpha = float(np.log2(np.min(y_pos))) if y_pos.size else -10.0
    return [lo_alpha, 1e-6, 0.05], [float(np.log2(MAP_MAX_PCT)), 1e3, 100.0]


def _exp_starts(x: Array, y: Array) -> list[list[float]]:
    _, _, _, y_lo, y_hi = _stats(x, y)
    x0, y0 = _first_point(x, y)
    starts = []
    for top, tau in product(_asymptotes(y_hi, y_lo), (0.5, 1.5, 4.0)):
        alpha = float(np.log2(top))
        # beta from the first anchor: alpha - log2(y0) = beta * 2^(-log2(x0)/tau)
        beta = max((alpha - np.log2(max(y0, 1e-6))) * 2 ** (np.log2(x0) / tau), 1e-3)
        starts.append([alpha, min(beta, 1e3 - 1), tau])
    return starts


def _pow3_bounds(x: Array, y: Array) -> Bounds:
    return [0.0, 1e-8, 1e-3], [MAP_MAX_PCT, 1e6, 10.0]


def _pow3_starts(x: Array, y: Array) -> list[list[float]]:
    _, _, _, y_lo, y_hi = _stats(x, y)
    x0, y0 = _first_point(x, y)
    return [
        [a, max((a - y0) * x0**c, 1e-3), c]
        for a, c in product(_asymptotes(y_hi, y_lo), (0.2, 0.5, 1.0))
    ]


def _pow4_bounds(x: Array, y: Array) -> Bounds:
    _, x_max, *_ = _stats(x, y)
    # d beyond the data range turns (x + d)^-c into a flat ridge (exp3 in the limit).
    return [0.0, 1e-8, 1e-3, 1e-6], [MAP_MAX_PCT, 1e6, 10.0, x_max]


def _pow4_starts(x: Array, y: Array) -> list[list[float]]:
    _, _, _, y_lo, y_hi = _stats(x, y)
    x0, y0 = _first_point(x, y)
    return [
        [a, max((a - y0) * (x0 + d) ** c, 1e-3), c, d]
        for a, c, d in product(_asymptotes(y_hi, y_lo), (0.3, 1.0), (0.5,))
    ]


def _mmf4_bounds(x: Array, y: Array) -> Bounds:
    # b is the x^d at which y is halfway between a and c.
    return [0.0, 1e-8, 0.0, 0.05], [MAP_MAX_PCT, 1e8, MAP_MAX_PCT, 10.0]


def _mmf4_starts(x: Array, y: Array) -> list[list[float]]:
    _, _, x_mid, y_lo, y_hi = _stats(x, y)
    a0 = max(0.0, y_lo - 0.5 * (y_hi - y_lo))
    return [[a0, x_mid**d, c, d] for c, d in product(_asymptotes(y_hi, y_lo), (0.5, 1.0, 2.0))]


def _wbl4_bounds(x: Array, y: Array) -> Bounds:
    return [1e-8, 0.0, 0.0, 0.05], [1e3, 2 * MAP_MAX_PCT, MAP_MAX_PCT, 5.0]


def _wbl4_starts(x: Array, y: Array) -> list[list[float]]:
    _, _, x_mid, y_lo, y_hi = _stats(x, y)
    x0, y0 = _first_point(x, y)
    starts = []
    for c, d in product(_asymptotes(y_hi, y_lo), (0.3, 0.7, 1.0)):
        a = np.log(2) / x_mid**d  # half the gap closed at the geometric middle
        b = (c - y0) / np.exp(-a * x0**d)
        starts.append([float(a), float(np.clip(b, 0.0, 2 * MAP_MAX_PCT)), c, d])
    return starts


def _exp3_bounds(x: Array, y: Array) -> Bounds:
    return [0.0, 1e-6, 0.0], [2 * MAP_MAX_PCT, 10.0, MAP_MAX_PCT]


def _exp3_starts(x: Array, y: Array) -> list[list[float]]:
    _, _, x_mid, y_lo, y_hi = _stats(x, y)
    x0, y0 = _first_point(x, y)
    starts = []
    for c, k in product(_asymptotes(y_hi, y_lo), (0.3, 1.0, 3.0)):
        b = np.log(2) / (k * x_mid)
        a = (c - y0) / np.exp(-b * x0)
        starts.append([float(np.clip(a, 0.0, 2 * MAP_MAX_PCT)), float(b), c])
    return starts


CURVES: dict[str, Curve] = {
    c.name: c
    for c in (
        Curve(
            "5pl",
            "d + (a - d) / (1 + (x/c)^b)^g",
            ("a", "b", "c", "d", "g"),
            five_pl,
            _five_pl_bounds,
            _five_pl_starts,
            frozenset({"b", "c", "g"}),
        ),
        Curve(
            "exp",
            "2^(alpha - beta * 2^(-log2(x)/tau))  [fit on log2 y]",
            ("alpha", "beta", "tau"),
            exp_loglog,
            _exp_bounds,
            _exp_starts,
            frozenset({"beta", "tau"}),
            log2_space=True,
            fit_func=exp_loglog_log2,
        ),
        Curve(
            "pow3",
            "a - b x^-c",
            ("a", "b", "c"),
            pow3,
            _pow3_bounds,
            _pow3_starts,
            frozenset({"b", "c"}),
        ),
        Curve(
            "pow4",
            "a - b (x + d)^-c",
            ("a", "b", "c", "d"),
            pow4,
            _pow4_bounds,
            _pow4_starts,
            frozenset({"b", "c", "d"}),
        ),
        Curve(
            "mmf4",
            "(a b + c x^d) / (b + x^d)",
            ("a", "b", "c", "d"),
            mmf4,
            _mmf4_bounds,
            _mmf4_starts,
            frozenset({"b", "d"}),
        ),
        Curve(
            "wbl4",
            "c - b exp(-a x^d)",
            ("a", "b", "c", "d"),
            wbl4,
            _wbl4_bounds,
            _wbl4_starts,
            frozenset({"a", "d"}),
        ),
        Curve(
            "exp3",
            "c - a exp(-b x)",
            ("a", "b", "c"),
            exp3,
            _exp3_bounds,
            _exp3_starts,
            frozenset({"b"}),
        ),
    )  # fmt: skip
}
