"""Robust, weighted least-squares fit of one learning-curve family, and goodness of fit.

Bounds come from the metric, positive parameters are optimised as logs, several deterministic
data-driven starts are tried (lowest robust cost wins), ``scipy.optimize.least_squares`` with
``loss="soft_l1"`` keeps one bad anchor from dragging the curve, and residuals are divided by the
standard error of each anchor's mean when it is known (``sigma``), so a fraction whose slices
disagree counts less. Parameters sitting on a bound are reported in ``at_bound`` (the data do not
identify them). Bad inputs give ``status="failed"`` with an ``error`` instead of raising.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from tal_bench.errors import TalBenchError
from tal_bench.fits.curves import METHODS, Curve

# soft_l1 scale in mAP points: residuals beyond ~1 point (about the study's slice-to-slice
# standard deviation, 0.6 mAP) are down-weighted, smaller ones are treated as plain squares.
F_SCALE_PCT = 1.0
# The same for residuals divided by their standard errors: beyond ~2 standard errors.
F_SCALE_SIGMA = 2.0
_BOUND_TOL = 1e-4  # fraction of a parameter's (internal) range counted as "on the bound"
_BAD_RESIDUAL = 1e3
# Relative tolerances of scipy's stopping rules; refits from a given start (bootstrap) stop
# earlier: a projection moves by far less than its interval once the cost changes by < 1e-5.
_FIT_TOL = 1e-6
_REFIT_TOL = 1e-5
# Stop the multistart once this many starts reach the same lowest cost (within _SAME_COST,
# relative). A start may stop on its evaluation budget while crawling along a flat ridge toward
# a bound (pow3's ceiling at 100); its cost is then already within _SAME_COST of the end.
_AGREEING_STARTS = 2
_SAME_COST = 1e-3
_NFEV_PER_PARAM = 40
_LM_ITERATIONS = 200  # batched refits: iterations at most (they start at the point fit)
_LM_TOL = 1e-10  # relative cost change that ends a batched refit (ridges creep slowly)
_LOG2_FLOOR_PCT = 1e-3  # a resampled mean of 0 mAP, for families fitted on log2 mAP


@dataclass
class FitResult:
    """Outcome of :func:`fit_curve`; numbers are in mAP points, fractions in percent."""

    family: str
    status: str  # "ok" or "failed"
    params: dict[str, float] = field(default_factory=dict)
    r2: float | None = None
    rmse: float | None = None
    aic: float | None = None
    mean_abs_error: float | None = None
    at_bound: list[str] = field(default_factory=list)
    n_points: int = 0
    n_params: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the fit succeeded."""
        return self.status == "ok"

    def predict(self, x: Any) -> np.ndarray:
        """mAP points at fractions ``x`` (percent); NaN for a failed fit."""
        x = np.asarray(x, dtype=float)
        if not self.ok:
            return np.full(x.shape, np.nan)
        return METHODS[self.family].predict(x, self.params)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the ``families.<name>`` entry of ``fits.json``)."""
        return asdict(self)


def get_curve(family: str) -> Curve:
    """The :class:`Curve` (family or baseline) named ``family``.

    Raises:
        TalBenchError: unknown family (the message lists the known ones).
    """
    try:
        return METHODS[family]
    except KeyError:
        raise TalBenchError(
            f"unknown curve family {family!r}; choose from {', '.join(METHODS)}"
        ) from None


def goodness_of_fit(y: Any, y_hat: Any, n_params: int) -> dict[str, float | None]:
    """R², RMSE, AIC and mean absolute error of predictions ``y_hat`` for data ``y``.

    ``R² = 1 - SSE/SST``; ``RMSE = sqrt(SSE/n)``; ``AIC = n ln(SSE/n) + 2k`` (Gaussian errors,
    constants dropped; None when SSE = 0); ``mean_abs_error = mean |y - y_hat|`` (the study's
    "mean mAP difference").

    Args:
        y: observed values, shape (n,).
        y_hat: predicted values, shape (n,).
        n_params: number of fitted parameters k.
    """
    y, y_hat = np.asarray(y, dtype=float), np.asarray(y_hat, dtype=float)
    resid = y - y_hat
    n = y.size
    sse = float(np.sum(resid**2))
    sst = float(np.sum((y - y.mean()) ** 2))
    return {
        "r2": 1.0 - sse / sst if sst > 0 else None,
        "rmse": math.sqrt(sse / n),
        "aic": n * math.log(sse / n) + 2 * n_params if sse > 0 else None,
        "mean_abs_error": float(np.mean(np.abs(resid))),
    }


def _check_inputs(
    x: np.ndarray, y: np.ndarray, sigma: np.ndarray | None, curve: Curve
) -> str | None:
    k = len(curve.params)
    if x.shape != y.shape or x.ndim != 1:
        return f"x and y must be 1-D of equal length, got {x.shape} and {y.shape}"
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return "x or y contains NaN or infinity"
    if sigma is not None and (sigma.shape != x.shape or not np.all(sigma > 0)):
        return "sigma must be positive, one per point"
    if x.size < k:
        return f"{x.size} points for {k} parameters; {curve.name} needs at least {k}"
    if np.any(x <= 0):
        return "fractions must be > 0 %"
    if np.ptp(y) == 0 and curve.closed_form is None:
        return f"mAP is constant ({y[0]:g}); a learning curve needs varying mAP"
    if curve.log2_space and np.any(y <= 0):
        return f"{curve.name} fits log2(mAP) and needs mAP > 0"
    return None


class _Space:
    """Maps natural parameters <-> optimiser coordinates (logs for positive parameters)."""

    def __init__(self, curve: Curve, lower: Sequence[float], upper: Sequence[float]) -> None:
        self.is_log = np.array([p in curve.log_params for p in curve.params])
        self.lo = self.to_internal(np.asarray(lower, dtype=float))
        self.hi = self.to_internal(np.asarray(upper, dtype=float))

    def to_internal(self, p: np.ndarray) -> np.ndarray:
        return np.where(self.is_log, np.log(np.maximum(p, 1e-300)), p)

    def to_natural(self, theta: np.ndarray) -> np.ndarray:
        return np.where(self.is_log, np.exp(theta), theta)

    def clip_start(self, p: Sequence[float]) -> np.ndarray:
        margin = 1e-6 * (self.hi - self.lo)
        return np.clip(self.to_internal(np.asarray(p, dtype=float)), self.lo + margin,
                       self.hi - margin)  # fmt: skip

    def pinned(self, theta: np.ndarray, active: np.ndarray) -> np.ndarray:
        tol = _BOUND_TOL * (self.hi - self.lo)
        return (active != 0) | (theta - self.lo <= tol) | (self.hi - theta <= tol)


def fit_curve(
    x: Any,
    y: Any,
    family: str,
    *,
    sigma: Any = None,
    starts: Sequence[Sequence[float]] | None = None,
    f_scale: float | None = None,
    max_nfev: int | None = None,
) -> FitResult:
    """Fit one family to (fraction %, mAP points) pairs with a robust multistart least squares.

    Args:
        x: training fractions in percent (> 0), shape (n,).
        y: mAP in points 0-100, shape (n,) (usually the mean over slices per fraction).
        family: a key of ``METHODS`` (a family or a baseline).
        sigma: standard error of each ``y`` in mAP points, shape (n,); residuals are divided by
            it (for families fitted on log2 mAP, by its log2-space equivalent). None: unweighted.
        starts: start vectors (natural units, ``METHODS[family].params`` order); when given,
            only those are tried (bootstrap refits start from the point fit).
        f_scale: soft_l1 scale in the residual space; default 1 mAP point unweighted (for log2
            families the same converted at the median mAP), 2 standard errors weighted.
        max_nfev: function-evaluation budget per start (default 40 per parameter).

    Returns:
        A :class:`FitResult`; ``status="failed"`` with ``error`` for bad inputs or when no
        start converges. Goodness-of-fit numbers are unweighted, in mAP points, for every family.
    """
    curve = get_curve(family)
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    sig = None if sigma is None else np.asarray(sigma, dtype=float).ravel()
    k = len(curve.params)
    base = FitResult(family, "failed", n_points=int(x.size), n_params=k)
    problem = _check_inputs(x, y, sig, curve)
    if problem:
        base.error = problem
        return base
    if curve.closed_form is not None:
        p, pinned = np.asarray(curve.closed_form(x, y), dtype=float), np.zeros(k, dtype=bool)
    else:
        space = _Space(curve, *curve.bounds(x, y))
        theta, active = _multistart(curve, space, x, y, sig, starts, f_scale, max_nfev)
        if theta is None:
            base.error = "no start converged (the data may not follow this family)"
            return base
        p, pinned = space.to_natural(theta), space.pinned(theta, active)
    params = {name: float(v) for name, v in zip(curve.params, p, strict=True)}
    return FitResult(
        family,
        "ok",
        params=params,
        **goodness_of_fit(y, curve.predict(x, params), k),
        at_bound=[name for name, pin in zip(curve.params, pinned, strict=True) if pin],
        n_points=int(x.size),
        n_params=k,
    )


def refit_many(fit: FitResult, x: Any, y: Any, y_many: Any, sigma: Any = None) -> np.ndarray:
    """Refit ``fit``'s family to many data sets at once, each starting at ``fit``.

    A batched Levenberg-Marquardt (Marquardt, J. SIAM 1963: damping scaled by the diagonal of
    J^T J) with the point fit's weights, bounds and soft_l1 loss (as iteratively reweighted
    least squares), vectorised over the data sets: the bootstrap's hundreds of refits cost a few
    dozen array evaluations instead of one scipy call each.

    Args:
        fit: a successful fit on ``(x, y)``.
        x: fractions, shape (n,).
        y: the data of ``fit`` (sets the bounds and the log2 scale of the weights), shape (n,).
        y_many: data sets to refit, mAP points, shape (B, n).
        sigma: standard errors used by ``fit``, shape (n,), or None.

    Returns:
        Natural parameters, shape (B, k) (``CURVES[family].params`` order); NaN rows where the
        refit ended with a non-finite cost.
    """
    curve = get_curve(fit.family)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    y_many = np.atleast_2d(np.asarray(y_many, dtype=float))  # (B, n)
    p0 = np.array([fit.params[p] for p in curve.params])
    if curve.closed_form is not None:
        return np.array([curve.closed_form(x, row) for row in y_many], dtype=float).reshape(
            len(y_many), len(p0)
        )
    space = _Space(curve, *curve.bounds(x, y))
    fit_func = curve.fit_func or curve.func
    sig = None if sigma is None else np.asarray(sigma, dtype=float)
    scale, f_scale = _residual_scale(curve, y, sig, None)
    target = np.log2(np.maximum(y_many, _LOG2_FLOOR_PCT)) if curve.log2_space else y_many

    def residuals(theta: np.ndarray) -> np.ndarray:  # (B, k) -> (B, n)
        p = space.to_natural(theta)
        with np.errstate(all="ignore"):
            r = fit_func(x[None, :], *(p[:, i : i + 1] for i in range(p.shape[1]))) - target
            r = r / scale
        return np.where(np.isfinite(r), r, _BAD_RESIDUAL)

    theta = np.tile(space.clip_start(p0), (y_many.shape[0], 1))
    theta = _batched_lm(residuals, theta, space, f_scale)
    out = space.to_natural(theta)
    cost = _soft_l1(residuals(theta), f_scale).sum(axis=1)
    out[~np.isfinite(cost)] = np.nan
    return out


def _soft_l1(r: np.ndarray, f: float) -> np.ndarray:
    """scipy's soft_l1 loss of residuals ``r``: ``2 f^2 (sqrt(1 + (r/f)^2) - 1)``."""
    return 2 * f * f * (np.sqrt(1 + (r / f) ** 2) - 1)


def _batched_lm(residuals: Any, theta: np.ndarray, space: _Space, f_scale: float) -> np.ndarray:
    """Minimise ``sum soft_l1(residuals(theta))`` for every row of ``theta`` (B, k) at once."""
    b, k = theta.shape
    r = residuals(theta)
    cost = _soft_l1(r, f_scale).sum(axis=1)
    lam = np.full(b, 1e-3)
    active = np.ones(b, dtype=bool)
    for _ in range(_LM_ITERATIONS):
        if not active.any():
            break
        h = 1e-6 * np.maximum(1.0, np.abs(theta))  # (B, k) forward-difference steps
        jac = np.stack([(residuals(theta + np.eye(k)[i] * h[:, i : i + 1]) - r) / h[:, i : i + 1]
                        for i in range(k)], axis=2)  # (B, n, k)  # fmt: skip
        w = 1 / np.sqrt(np.sqrt(1 + (r / f_scale) ** 2))  # sqrt of the IRLS weight of soft_l1
        jw, rw = jac * w[..., None], r * w
        a = np.einsum("bni,bnj->bij", jw, jw)  # (B, k, k)
        g = np.einsum("bni,bn->bi", jw, rw)  # (B, k)
        damp = lam[:, None, None] * (np.eye(k) * np.diagonal(a, axis1=1, axis2=2)[:, None, :])
        with np.errstate(all="ignore"):
            step = -np.linalg.solve(a + damp + 1e-12 * np.eye(k), g[..., None])[..., 0]
        trial = np.clip(theta + np.nan_to_num(step), space.lo, space.hi)
        r_trial = residuals(trial)
        cost_trial = _soft_l1(r_trial, f_scale).sum(axis=1)
        better = active & (cost_trial < cost)
        small = np.abs(cost - cost_trial) <= _LM_TOL * np.maximum(cost, 1e-12)
        theta[better], r[better], cost[better] = trial[better], r_trial[better], cost_trial[better]
        lam = np.where(better, lam / 3, lam * 4)
        active &= ~(small & better) & (lam < 1e10)
    return theta


def _residual_scale(
    curve: Curve, y: np.ndarray, sigma: np.ndarray | None, f_scale: float | None
) -> tuple[np.ndarray | float, float]:
    """(divisor of the raw residuals, soft_l1 scale) in the family's residual space."""
    if sigma is not None:
        # d log2(y) = dy / (y ln 2): a standard error in mAP points, in log2 units.
        scale = sigma / (math.log(2) * y) if curve.log2_space else sigma
        return scale, F_SCALE_SIGMA if f_scale is None else f_scale
    if f_scale is None:
        f_scale = F_SCALE_PCT / (math.log(2) * float(np.median(y))) if curve.log2_space else 1.0
    return 1.0, f_scale


def _multistart(
    curve: Curve,
    space: _Space,
    x: np.ndarray,
    y: np.ndarray,
    sigma: np.ndarray | None,
    starts: Sequence[Sequence[float]] | None,
    f_scale: float | None,
    max_nfev: int | None,
) -> tuple[np.ndarray | None, np.ndarray]:
    fit_func = curve.fit_func or curve.func
    target = np.log2(y) if curve.log2_space else y
    tol = _REFIT_TOL if starts is not None else _FIT_TOL
    scale, f_scale = _residual_scale(curve, y, sigma, f_scale)

    def residuals(theta: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            r = (fit_func(x, *space.to_natural(theta)) - target) / scale
        return np.where(np.isfinite(r), r, _BAD_RESIDUAL)

    if max_nfev is None:
        max_nfev = _NFEV_PER_PARAM * len(curve.params)
    best, best_cost, best_active = None, math.inf, np.zeros(len(curve.params))
    agree = 0  # starts that reached the best cost so far
    for start in list(starts) if starts is not None else curve.starts(x, y):
        if agree >= _AGREEING_STARTS:
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                res = least_squares(
                    residuals, space.clip_start(start), bounds=(space.lo, space.hi),
                    loss="soft_l1", f_scale=f_scale, x_scale="jac", max_nfev=max_nfev,
                    ftol=tol, xtol=tol,
                )  # fmt: skip
            except (ValueError, np.linalg.LinAlgError):
                continue
        if res.status < 0 or not np.isfinite(res.cost):
            continue
        if res.cost < best_cost * (1 - _SAME_COST) - 1e-12:  # clearly better: a new optimum
            agree = 1
        elif res.cost <= best_cost * (1 + _SAME_COST) + 1e-12:  # the same optimum again
            agree += 1
        if res.cost < best_cost:
            best, best_cost, best_active = res.x, res.cost, res.active_mask
    return best, best_active
