"""Learning-curve families for mAP (points, 0-100) against training fraction ``x`` (percent).

A family is a formula, its data-driven starting guesses and its bounds (:class:`Curve`).

* ``5pl``: five-parameter logistic (Gottschalk & Dunn 2005), the study's best fit
  (seed paper §4.2.2): ``y = d + (a - d) / (1 + (x/c)^b)^g``; ``a`` = mAP as x -> 0, ``d`` = mAP
  as x -> inf, ``c`` a transition fraction (%), ``b`` slope, ``g`` asymmetry (g = 1: 4PL).
* ``exp``: the study's "exponential relationship for log-log normalized data" (§4.2.1). With
  ``u = log2(x)`` and ``v = log2(y)`` the fit is ``v = alpha - beta * 2^(-u / tau)``: the log-gap
  to the asymptote halves every ``tau`` doublings of the data. ``2^alpha`` is the asymptotic mAP.
  The printed fit ``mAP = 25.67 - 3.546 / 2^(log2(p)/1.214)`` has this ``A - B / 2^(u/tau)`` shape
  but, read in mAP units, gives 25.59 at p = 100 % instead of the 48.07 the text reports, so its
  left side must be a normalised axis; we take log2 mAP. Residuals are taken in ``v``.
* The LCDB families (Mohr, Viering, Loog & van Rijn, "LCDB 1.0: An Extensive Learning Curves
  Database for Classification Tasks", ECML PKDD 2022; formulas as in fmohr/lcdb,
  publications/2022-ecml/analysis/fit_database.py): pow2-4, exp2-4, expp3, expd3, log2, ilog2,
  vap3, logpower3, mmf4, wbl4. LCDB writes them for an error rate, which falls with more data;
  here the error is ``e = 100 - mAP``, so ``mAP = 100 - e(x)`` and every family rises. LCDB's
  parameters are free in sign; ours are signed so that the curve rises, and a family whose error
  has no offset (pow2, exp2, vap3, logpower3) tends to 100 mAP. Families with an offset keep it
  as a ceiling in [0, 100]; families without any ceiling (log2, expp3) are clipped at 100 when
  they forecast (:meth:`Curve.predict`).
* ``janoschek``: Janoschek's growth curve, one of the eleven of Domhan, Springenberg & Hutter
  (IJCAI 2015; automl/pybnn, pybnn/lc_extrapolation/curvefunctions.py):
  ``a - (a - b) exp(-c x^d)``. It is ``wbl4`` reparametrised so that ``b`` is the mAP at x = 0,
  which its bounds keep in [0, 100].

Two naive baselines sit beside the families (``BASELINES``): ``last``, the last observed mean
(what you would say without any fit), and ``loglog``, a straight line on log-log axes.

Positive scale/shape parameters are optimised as logs (``log_params``), so powers like
``(x/c)^b`` stay finite; every formula is evaluated in a numerically stable form.
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
    """One learning-curve family (or naive baseline).

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
        closed_form: ``closed_form(x, y) -> params`` instead of a least-squares fit.
        baseline: a naive baseline, not a fitted family.
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
    closed_form: Callable[[Array, Array], list[float]] | None = None
    baseline: bool = False

    def predict(self, x: Array, params: dict[str, float]) -> Array:
        """mAP points at fractions ``x`` (percent), clipped to the metric's range [0, 100]."""
        with np.errstate(all="ignore"):
            y = self.func(np.asarray(x, dtype=float), *(params[p] for p in self.params))
        return np.clip(y, 0.0, MAP_MAX_PCT)


# --------------------------------------------------------------------------- formulas


def _sigmoid_ln(z: Array) -> Array:
    """``ln(1 / (1 + e^z))`` without overflow."""
    return -np.logaddexp(0.0, z)


def five_pl(x: Array, a: float, b: float, c: float, d: float, g: float) -> Array:
    """5PL: ``d + (a - d) / (1 + (x/c)^b)^g``; ``(1 + z)^g`` computed as ``exp(g softplus)``."""
    return d + (a - d) * np.exp(g * _sigmoid_ln(b * np.log(x / c)))


def exp_loglog(x: Array, alpha: float, beta: float, tau: float) -> Array:
    """Study's exponential on log-log axes: ``y = 2^(alpha - beta * 2^(-log2(x)/tau))``."""
    return np.exp2(exp_loglog_log2(x, alpha, beta, tau))


def exp_loglog_log2(x: Array, alpha: float, beta: float, tau: float) -> Array:
    """``log2`` of :func:`exp_loglog`: ``alpha - beta * 2^(-log2(x)/tau)``."""
    return alpha - beta * np.exp2(-np.log2(x) / tau)


def pow2(x: Array, a: float, b: float) -> Array:
    """LCDB pow2 on the error: ``100 - a x^-b``."""
    return MAP_MAX_PCT - a * np.power(x, -b)


def pow3(x: Array, a: float, b: float, c: float) -> Array:
    """LCDB pow3: ``a - b x^-c``."""
    return a - b * np.power(x, -c)


def pow4(x: Array, a: float, b: float, c: float, d: float) -> Array:
    """LCDB pow4: ``a - b (x + d)^-c``."""
    return a - b * np.power(x + d, -c)


def exp2(x: Array, a: float, b: float) -> Array:
    """LCDB exp2 on the error: ``100 - a exp(-b x)``."""
    return MAP_MAX_PCT - a * np.exp(-b * x)


def exp3(x: Array, a: float, b: float, c: float) -> Array:
    """LCDB exp3: ``c - a exp(-b x)``."""
    return c - a * np.exp(-b * x)


def exp4(x: Array, a: float, b: float, c: float, d: float) -> Array:
    """LCDB exp4: ``c - exp(b - a x^d)``."""
    return c - np.exp(b - a * np.power(x, d))


def expp3(x: Array, a: float, b: float, c: float) -> Array:
    """LCDB expp3 on the error (``e = c' - exp((x - b)^a)``): ``c + exp((x - b)^a)``."""
    return c + np.exp(np.power(x - b, a))


def expd3(x: Array, a: float, b: float, c: float) -> Array:
    """LCDB expd3: ``c - (c - a) exp(-b x)``; ``a`` at x = 0, ``c`` as x -> inf."""
    return c - (c - a) * np.exp(-b * x)


def log2_curve(x: Array, a: float, b: float) -> Array:
    """LCDB log2: ``b + a ln x``."""
    return b + a * np.log(x)


def ilog2(x: Array, a: float, b: float) -> Array:
    """LCDB ilog2 with ``ln(1 + x)`` for ``ln x``: ``b - a / ln(1 + x)``.

    LCDB's x counts training samples (at least 16, so ln x > 2.7); ours is a percentage, and
    ln x vanishes at the usual first fraction of 1 %.
    """
    return b - a / np.log1p(x)


def vap3(x: Array, a: float, b: float, c: float) -> Array:
    """LCDB vap3 (vapour pressure) on the error: ``100 - exp(a + b/x + c ln x)``."""
    return MAP_MAX_PCT - np.exp(a + b / x + c * np.log(x))


def logpower3(x: Array, a: float, b: float, c: float) -> Array:
    """LCDB logpower3 on the error: ``100 - a / (1 + (x / e^b)^c)``."""
    return MAP_MAX_PCT - a * np.exp(_sigmoid_ln(c * (np.log(x) - b)))


def mmf4(x: Array, a: float, b: float, c: float, d: float) -> Array:
    """LCDB mmf4: ``(a b + c x^d) / (b + x^d)`` = ``c + (a - c) / (1 + x^d / b)``."""
    return c + (a - c) * np.exp(_sigmoid_ln(d * np.log(x) - np.log(b)))


def wbl4(x: Array, a: float, b: float, c: float, d: float) -> Array:
    """LCDB wbl4: ``c - b exp(-a x^d)``."""
    return c - b * np.exp(-a * np.power(x, d))


def janoschek(x: Array, a: float, b: float, c: float, d: float) -> Array:
    """Janoschek: ``a - (a - b) exp(-c x^d)``; ``b`` at x = 0, ``a`` as x -> inf."""
    return a - (a - b) * np.exp(-c * np.power(x, d))


def last_value(x: Array, a: float) -> Array:
    """Baseline: the last observed mean, ``a``, at every fraction."""
    return np.zeros_like(x, dtype=float) + a


def loglog_line(x: Array, a: float, b: float) -> Array:
    """Baseline: a straight line on log-log axes, ``log2 y = a + b log2 x``."""
    return np.exp2(loglog_line_log2(x, a, b))


def loglog_line_log2(x: Array, a: float, b: float) -> Array:
    """``log2`` of :func:`loglog_line`."""
    return a + b * np.log2(x)


# --------------------------------------------------------------------------- starts/bounds


def _stats(x: Array, y: Array) -> tuple[float, float, float, float, float]:
    x_min, x_max = float(np.min(x)), float(np.max(x))
    y_lo, y_hi = float(np.min(y)), float(np.max(y))
    x_mid = float(np.exp(np.mean(np.log(x))))  # geometric middle of the anchors
    return x_min, x_max, x_mid, y_lo, y_hi


def _ceilings(y_hi: float, y_lo: float) -> list[float]:
    """Candidate upper asymptotes: just above the data, further above, halfway to 100, and
    at 100 (where a curve still rising steadily puts it)."""
    spread = max(y_hi - y_lo, 1e-3)
    cands = [y_hi + 0.05 * spread, y_hi + 0.5 * spread, (y_hi + MAP_MAX_PCT) / 2, MAP_MAX_PCT]
    return [min(c, MAP_MAX_PCT - 1e-6) for c in cands]


def _ends(x: Array, y: Array) -> tuple[float, float, float, float]:
    """(x, y) of the smallest and the largest fraction."""
    i, j = int(np.argmin(x)), int(np.argmax(x))
    return float(x[i]), float(y[i]), float(x[j]), float(y[j])


def _gaps(x: Array, y: Array) -> tuple[float, float, float, float]:
    """Error ``100 - y`` at both ends (at least 1e-3), with their fractions."""
    x0, y0, x1, y1 = _ends(x, y)
    return x0, max(MAP_MAX_PCT - y0, 1e-3), x1, max(MAP_MAX_PCT - y1, 1e-3)


def _linear_start(columns: list[Array], target: Array) -> list[float]:
    """Least-squares coefficients of ``target`` on ``columns`` (a start for near-linear forms)."""
    design = np.stack(columns, axis=1)
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    return [float(c) for c in coef]


def _five_pl_bounds(x: Array, y: Array) -> Bounds:
    x_min, x_max, *_ = _stats(x, y)
    return [0.0, 0.05, x_min / 100, 0.0, 1e-3], [MAP_MAX_PCT, 100.0, x_max * 100, MAP_MAX_PCT, 1e2]


def _five_pl_starts(x: Array, y: Array) -> list[list[float]]:
    x_min, x_max, x_mid, y_lo, y_hi = _stats(x, y)
    a0 = max(0.0, y_lo - 0.5 * (y_hi - y_lo))
    return [
        [a0, b, c, d, g]
        for d, c, b, g in product(_ceilings(y_hi, y_lo), (x_min, x_mid), (1.0, 3.0), (1.0, 0.1))
    ]


def _exp_bounds(x: Array, y: Array) -> Bounds:
    y_pos = y[y > 0]
    lo_alpha = float(np.log2(np.min(y_pos))) if y_pos.size else -10.0
    return [lo_alpha, 1e-6, 0.05], [float(np.log2(MAP_MAX_PCT)), 1e3, 100.0]


def _exp_starts(x: Array, y: Array) -> list[list[float]]:
    _, _, _, y_lo, y_hi = _stats(x, y)
    x0, y0, *_ = _ends(x, y)
    starts = []
    for top, tau in product(_ceilings(y_hi, y_lo), (0.5, 1.5, 4.0)):
        alpha = float(np.log2(top))
        # beta from the first anchor: alpha - log2(y0) = beta * 2^(-log2(x0)/tau)
        beta = max((alpha - np.log2(max(y0, 1e-6))) * 2 ** (np.log2(x0) / tau), 1e-3)
        starts.append([alpha, min(beta, 1e3 - 1), tau])
    return starts


def _pow2_bounds(x: Array, y: Array) -> Bounds:
    return [1e-6, 1e-4], [1e4, 10.0]


def _pow2_starts(x: Array, y: Array) -> list[list[float]]:
    x0, e0, x1, e1 = _gaps(x, y)
    b_ends = np.log(e0 / e1) / np.log(x1 / x0) if x1 > x0 else 0.1
    return [[e0 * x0**b, b] for b in (float(np.clip(b_ends, 1e-3, 5.0)), 0.1, 0.5)]


def _pow3_bounds(x: Array, y: Array) -> Bounds:
    return [0.0, 1e-8, 1e-3], [MAP_MAX_PCT, 1e6, 10.0]


def _pow3_starts(x: Array, y: Array) -> list[list[float]]:
    _, _, _, y_lo, y_hi = _stats(x, y)
    x0, y0, *_ = _ends(x, y)
    return [
        [a, max((a - y0) * x0**c, 1e-3), c]
        for a, c in product(_ceilings(y_hi, y_lo), (0.2, 0.5, 1.0))
    ]


def _pow4_bounds(x: Array, y: Array) -> Bounds:
    _, x_max, *_ = _stats(x, y)
    # d beyond the data range turns (x + d)^-c into a flat ridge (exp3 in the limit).
    return [0.0, 1e-8, 1e-3, 1e-6], [MAP_MAX_PCT, 1e6, 10.0, x_max]


def _pow4_starts(x: Array, y: Array) -> list[list[float]]:
    _, _, _, y_lo, y_hi = _stats(x, y)
    x0, y0, *_ = _ends(x, y)
    return [
        [a, max((a - y0) * (x0 + d) ** c, 1e-3), c, d]
        for a, c, d in product(_ceilings(y_hi, y_lo), (0.3, 1.0), (0.5,))
    ]


def _exp2_bounds(x: Array, y: Array) -> Bounds:
    # a = 100 - mAP at x = 0, so at most 100.
    return [1e-6, 1e-6], [MAP_MAX_PCT, 10.0]


def _exp2_starts(x: Array, y: Array) -> list[list[float]]:
    x0, e0, x1, e1 = _gaps(x, y)
    _, _, x_mid, *_ = _stats(x, y)
    b_ends = np.log(e0 / e1) / (x1 - x0) if x1 > x0 else 0.01
    starts = []
    for b in (float(np.clip(b_ends, 1e-5, 5.0)), np.log(2) / x_mid):
        starts.append([float(min(e0 * np.exp(b * x0), MAP_MAX_PCT)), float(b)])
    return starts


def _exp3_bounds(x: Array, y: Array) -> Bounds:
    return [0.0, 1e-6, 0.0], [2 * MAP_MAX_PCT, 10.0, MAP_MAX_PCT]


def _exp3_starts(x: Array, y: Array) -> list[list[float]]:
    _, _, x_mid, y_lo, y_hi = _stats(x, y)
    x0, y0, *_ = _ends(x, y)
    starts = []
    for c, k in product(_ceilings(y_hi, y_lo), (0.3, 1.0, 3.0)):
        b = np.log(2) / (k * x_mid)
        a = (c - y0) / np.exp(-b * x0)
        starts.append([float(np.clip(a, 0.0, 2 * MAP_MAX_PCT)), float(b), c])
    return starts


def _exp4_bounds(x: Array, y: Array) -> Bounds:
    # exp(b) is the gap to the ceiling c at x = 0: at most 200 (c <= 100, mAP(0) >= -100).
    return [1e-8, -30.0, 0.0, 0.05], [1e3, float(np.log(2 * MAP_MAX_PCT)), MAP_MAX_PCT, 5.0]


def _exp4_starts(x: Array, y: Array) -> list[list[float]]:
    # exp4 is wbl4 with b_wbl = exp(b).
    return [[a, float(np.log(max(b, 1e-12))), c, d] for a, b, c, d in _wbl4_starts(x, y)]


def _expp3_bounds(x: Array, y: Array) -> Bounds:
    x_min, x_max, *_ = _stats(x, y)
    # (x - b)^a needs x > b at every fraction it is fitted to or forecasts (all >= x_min).
    return [1e-3, -10 * x_max, -MAP_MAX_PCT], [1.0, x_min * (1 - 1e-3), MAP_MAX_PCT]


def _expp3_starts(x: Array, y: Array) -> list[list[float]]:
    x_min, _, _, y_lo, _ = _stats(x, y)
    x0, y0, x1, y1 = _ends(x, y)
    starts = []
    for c, b in product((y_lo - 2.0, y_lo - 10.0), (0.0, -x_min)):
        # ln ln(y - c) = a ln(x - b): a from the two end points.
        ll0, ll1 = np.log(np.log(y0 - c)), np.log(np.log(y1 - c))
        a = (ll1 - ll0) / np.log((x1 - b) / (x0 - b)) if x1 > x0 else 0.3
        starts.append([float(np.clip(a, 0.01, 0.99)), b, c])
    return starts


def _expd3_bounds(x: Array, y: Array) -> Bounds:
    return [0.0, 1e-6, 0.0], [MAP_MAX_PCT, 10.0, MAP_MAX_PCT]


def _expd3_starts(x: Array, y: Array) -> list[list[float]]:
    # expd3 is exp3 with a_exp3 = c - a.
    return [[float(np.clip(c - a, 0.0, MAP_MAX_PCT)), b, c] for a, b, c in _exp3_starts(x, y)]


def _log2_bounds(x: Array, y: Array) -> Bounds:
    return [0.0, -10 * MAP_MAX_PCT], [10 * MAP_MAX_PCT, 10 * MAP_MAX_PCT]


def _log2_starts(x: Array, y: Array) -> list[list[float]]:
    a, b = _linear_start([np.log(x), np.ones_like(x)], y)
    return [[max(a, 1e-3), b]]


def _ilog2_bounds(x: Array, y: Array) -> Bounds:
    return [1e-6, 0.0], [1e4, MAP_MAX_PCT]


def _ilog2_starts(x: Array, y: Array) -> list[list[float]]:
    slope, b = _linear_start([1 / np.log1p(x), np.ones_like(x)], y)
    _, _, _, y_lo, y_hi = _stats(x, y)
    starts = [[max(-slope, 1e-3), float(np.clip(b, 0.0, MAP_MAX_PCT - 1e-6))]]
    x0, y0, *_ = _ends(x, y)
    starts += [[max((c - y0) * np.log1p(x0), 1e-3), c] for c in _ceilings(y_hi, y_lo)]
    return starts


def _vap3_bounds(x: Array, y: Array) -> Bounds:
    return [-50.0, -100.0, -10.0], [50.0, 100.0, 10.0]


def _vap3_starts(x: Array, y: Array) -> list[list[float]]:
    # ln(100 - y) = a + b/x + c ln x is linear in (a, b, c).
    gap = np.log(np.maximum(MAP_MAX_PCT - y, 1e-3))
    full = _linear_start([np.ones_like(x), 1 / x, np.log(x)], gap) if x.size >= 3 else None
    a, c = _linear_start([np.ones_like(x), np.log(x)], gap)
    starts = [[a, 0.0, c]]
    if full is not None:
        starts.insert(0, [float(np.clip(v, lo + 1e-6, hi - 1e-6)) for v, lo, hi in
                          zip(full, *_vap3_bounds(x, y), strict=True)])  # fmt: skip
    return starts


def _logpower3_bounds(x: Array, y: Array) -> Bounds:
    x_min, x_max, *_ = _stats(x, y)
    # a = 100 - mAP at x = 0; e^b is the fraction where half of that gap is closed.
    return [1e-6, float(np.log(x_min / 100)), 1e-2], [MAP_MAX_PCT, float(np.log(x_max * 100)), 20.0]


def _logpower3_starts(x: Array, y: Array) -> list[list[float]]:
    _, x_max, x_mid, y_lo, _ = _stats(x, y)
    starts = []
    for a in (MAP_MAX_PCT, MAP_MAX_PCT - 0.5 * y_lo):
        # With a fixed, ln(a / (100 - y) - 1) = c ln x - c b is a line in ln x.
        z = np.log(np.maximum(a / np.maximum(MAP_MAX_PCT - y, 1e-6) - 1, 1e-9))
        c, intercept = _linear_start([np.log(x), np.ones_like(x)], z)
        if c > 0:
            starts.append([a, -intercept / c, c])
    starts += [
        [MAP_MAX_PCT, float(np.log(xb)), c] for xb, c in product((x_mid, 4 * x_max), (0.5, 2.0))
    ]
    return starts


def _mmf4_bounds(x: Array, y: Array) -> Bounds:
    # b is the x^d at which y is halfway between a and c.
    return [0.0, 1e-8, 0.0, 0.05], [MAP_MAX_PCT, 1e8, MAP_MAX_PCT, 10.0]


def _mmf4_starts(x: Array, y: Array) -> list[list[float]]:
    _, _, x_mid, y_lo, y_hi = _stats(x, y)
    a0 = max(0.0, y_lo - 0.5 * (y_hi - y_lo))
    return [[a0, x_mid**d, c, d] for c, d in product(_ceilings(y_hi, y_lo), (0.5, 1.0, 2.0))]


def _wbl4_bounds(x: Array, y: Array) -> Bounds:
    return [1e-8, 0.0, 0.0, 0.05], [1e3, 2 * MAP_MAX_PCT, MAP_MAX_PCT, 5.0]


def _wbl4_starts(x: Array, y: Array) -> list[list[float]]:
    _, _, x_mid, y_lo, y_hi = _stats(x, y)
    x0, y0, *_ = _ends(x, y)
    starts = []
    for c, d in product(_ceilings(y_hi, y_lo), (0.3, 0.7, 1.0)):
        a = np.log(2) / x_mid**d  # half the gap closed at the geometric middle
        b = (c - y0) / np.exp(-a * x0**d)
        starts.append([float(a), float(np.clip(b, 0.0, 2 * MAP_MAX_PCT)), c, d])
    return starts


def _janoschek_bounds(x: Array, y: Array) -> Bounds:
    return [0.0, 0.0, 1e-8, 0.05], [MAP_MAX_PCT, MAP_MAX_PCT, 1e3, 5.0]


def _janoschek_starts(x: Array, y: Array) -> list[list[float]]:
    # janoschek is wbl4 with a_j = c, b_j = c - b, c_j = a.
    return [[c, float(np.clip(c - b, 0.0, MAP_MAX_PCT)), a, d] for a, b, c, d in _wbl4_starts(x, y)]


def _last_closed_form(x: Array, y: Array) -> list[float]:
    return [float(y[int(np.argmax(x))])]


def _loglog_bounds(x: Array, y: Array) -> Bounds:
    return [-30.0, -10.0], [30.0, 10.0]


def _loglog_starts(x: Array, y: Array) -> list[list[float]]:
    b, a = _linear_start([np.log2(x), np.ones_like(x)], np.log2(np.maximum(y, 1e-6)))
    return [[a, float(np.clip(b, -10.0, 10.0))]]


def _no_bounds(x: Array, y: Array) -> Bounds:
    return [0.0], [MAP_MAX_PCT]


def _family(name: str, formula: str, params: str, func: Callable[..., Array], log: str = "",
            **kw: object) -> Curve:  # fmt: skip
    """A :class:`Curve` whose bounds/starts are ``_<name>_bounds`` / ``_<name>_starts``."""
    key = name.replace("5pl", "five_pl")
    return Curve(name, formula, tuple(params.split()), func, globals()[f"_{key}_bounds"],
                 globals()[f"_{key}_starts"], frozenset(log.split()), **kw)  # type: ignore[arg-type]  # fmt: skip


CURVES: dict[str, Curve] = {
    c.name: c
    for c in (
        _family("5pl", "d + (a - d) / (1 + (x/c)^b)^g", "a b c d g", five_pl, "b c g"),
        _family(
            "exp",
            "2^(alpha - beta * 2^(-log2(x)/tau))  [fit on log2 y]",
            "alpha beta tau",
            exp_loglog,
            "beta tau",
            log2_space=True,
            fit_func=exp_loglog_log2,
        ),
        _family("pow2", "100 - a x^-b", "a b", pow2, "a b"),
        _family("pow3", "a - b x^-c", "a b c", pow3, "b c"),
        _family("pow4", "a - b (x + d)^-c", "a b c d", pow4, "b c d"),
        _family("exp2", "100 - a exp(-b x)", "a b", exp2, "a b"),
        _family("exp3", "c - a exp(-b x)", "a b c", exp3, "b"),
        _family("exp4", "c - exp(b - a x^d)", "a b c d", exp4, "a d"),
        _family("expp3", "c + exp((x - b)^a)", "a b c", expp3, "a"),
        _family("expd3", "c - (c - a) exp(-b x)", "a b c", expd3, "b"),
        _family("log2", "b + a ln x", "a b", log2_curve),
        _family("ilog2", "b - a / ln(1 + x)", "a b", ilog2, "a"),
        _family("vap3", "100 - exp(a + b/x + c ln x)", "a b c", vap3),
        _family("logpower3", "100 - a / (1 + (x / e^b)^c)", "a b c", logpower3, "a c"),
        _family("mmf4", "(a b + c x^d) / (b + x^d)", "a b c d", mmf4, "b d"),
        _family("wbl4", "c - b exp(-a x^d)", "a b c d", wbl4, "a d"),
        _family("janoschek", "a - (a - b) exp(-c x^d)", "a b c d", janoschek, "c d"),
    )  # fmt: skip
}

BASELINES: dict[str, Curve] = {
    "last": Curve("last", "last observed mean", ("a",), last_value, _no_bounds,
                  lambda x, y: [_last_closed_form(x, y)], closed_form=_last_closed_form,
                  baseline=True),
    "loglog": Curve("loglog", "2^(a + b log2 x)  [straight line on log-log axes]", ("a", "b"),
                    loglog_line, _loglog_bounds, _loglog_starts, log2_space=True,
                    fit_func=loglog_line_log2, baseline=True),
}  # fmt: skip

METHODS: dict[str, Curve] = {**CURVES, **BASELINES}
