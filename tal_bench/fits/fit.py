"""Robust least-squares fit of one learning-curve family, and goodness-of-fit numbers.

Practice from ``/work/shared/research/ecosystem.md`` §4.3: bounds from the metric, positive
parameters optimised as logs, several deterministic data-driven starts (lowest robust cost
wins), ``scipy.optimize.least_squares(loss="soft_l1")`` so one bad anchor cannot drag the curve,
and parameters sitting on a bound reported in ``at_bound`` (their value is not identified by the
data). Bad inputs give ``status="failed"`` with an ``error`` instead of raising.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tal_bench.errors import TalBenchError
from tal_bench.fits.curves import CURVES, Curve

# soft_l1 scale in mAP points: residuals beyond ~1 point (about the study's slice-to-slice
# standard deviation, 0.6 mAP) are down-weighted, smaller ones are treated as plain squares.
F_SCALE_PCT = 1.0
_BOUND_TOL = 1e-4  # fraction of a parameter's (internal) range counted as "on the bound"
_BAD_RESIDUAL = 1e3
# Stop the multistart once this many converged starts reach the same lowest cost.
_AGREEING_STARTS = 3


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
        return CURVES[self.family].predict(x, self.params)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the ``families.<name>`` entry of ``fits.json``)."""
        return asdict(self)


def get_curve(family: str) -> Curve:
    """The :class:`Curve` named ``family``.

    Raises:
        TalBenchError: unknown family (the message lists the known ones).
    """
    try:
        return CURVES[family]
    except KeyError:
        raise TalBenchError(
            f"unknown curve family {family!r}; choose from {', '.join(CURVES)}"
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


def _check_inputs(x: np.ndarray, y: np.ndarray, curve: Curve) -> str | None:
    k = len(curve.params)
    if x.shape != y.shape or x.ndim != 1:
        return f"x and y must be 1-D of equal length, got {x.shape} and {y.shape}"
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return "x or y contains NaN or infinity"
    if x.size < k:
        return f"{x.size} points for {k} parameters; {curve.name} needs at least {k}"
    if np.any(x <= 0):
        return "fractions must be > 0 %"
    if np.ptp(y) == 0:
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
    starts: Sequence[Sequence[float]] | None = None,
    f_scale: float | None = None,
    max_nfev: int | None = None,
) -> FitResult:
    """Fit one family to (fraction %, mAP points) pairs with a robust multistart least squares.

    Args:
        x: training fractions in percent (> 0), shape (n,).
        y: mAP in points 0-100, shape (n,) (usually the mean over slices per fraction).
        family: a key of ``CURVES``.
        starts: extra start vectors (natural units, ``CURVES[family].params`` order), tried
            before the built-in data-driven ones; with ``starts`` given only those are tried.
        f_scale: soft_l1 scale in the residual space; default 1 mAP point (for ``exp``, the
            same converted to log2 units at the median mAP).
        max_nfev: function-evaluation budget per start (default: scipy's, 100 per parameter).

    Returns:
        A :class:`FitResult`; ``status="failed"`` with ``error`` for bad inputs or when no
        start converges. Goodness-of-fit numbers are in mAP points for every family.
    """
    curve = get_curve(family)
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    k = len(curve.params)
    base = FitResult(family, "failed", n_points=int(x.size), n_params=k)
    problem = _check_inputs(x, y, curve)
    if problem:
        base.error = problem
        return base
    theta, active = _multistart(curve, x, y, starts, f_scale, max_nfev)
    if theta is None:
        base.error = "no start converged (the data may not follow this family)"
        return base
    space = _Space(curve, *curve.bounds(x, y))
    p = space.to_natural(theta)
    params = {name: float(v) for name, v in zip(curve.params, p, strict=True)}
    y_hat = curve.func(x, *p)
    pinned = space.pinned(theta, active)
    return FitResult(
        family,
        "ok",
        params=params,
        **goodness_of_fit(y, y_hat, k),
        at_bound=[name for name, pin in zip(curve.params, pinned, strict=True) if pin],
        n_points=int(x.size),
        n_params=k,
    )


def _multistart(
    curve: Curve,
    x: np.ndarray,
    y: np.ndarray,
    starts: Sequence[Sequence[float]] | None,
    f_scale: float | None,
    max_nfev: int,
) -> tuple[np.ndarray | None, np.ndarray]:
    space = _Space(curve, *curve.bounds(x, y))
    fit_func = curve.fit_func or curve.func
    target = np.log2(y) if curve.log2_space else y
    if f_scale is None:
        f_scale = F_SCALE_PCT / (math.log(2) * float(np.median(y))) if curve.log2_space else 1.0

    def residuals(theta: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            r = fit_func(x, *space.to_natural(theta)) - target
        return np.where(np.isfinite(r), r, _BAD_RESIDUAL)

    from scipy.optimize import least_squares  # here, not at import: `talbench --help` is fast

    best, best_cost, best_active = None, math.inf, np.zeros(len(curve.params))
    agree = 0  # converged starts that reached the best cost so far
    for start in list(starts) if starts is not None else curve.starts(x, y):
        if agree >= _AGREEING_STARTS:
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                res = least_squares(
                    residuals, space.clip_start(start), bounds=(space.lo, space.hi),
                    loss="soft_l1", f_scale=f_scale, x_scale="jac", max_nfev=max_nfev,
                )  # fmt: skip
            except (ValueError, np.linalg.LinAlgError):
                continue
        if res.status < 0 or not np.isfinite(res.cost):
            continue
        converged = int(res.status > 0)
        if res.cost < best_cost * (1 - 1e-6) - 1e-12:  # clearly better: a new optimum
            agree = converged
        elif res.cost <= best_cost * (1 + 1e-6) + 1e-12:  # the same optimum again
            agree += converged
        if res.cost < best_cost:
            best, best_cost, best_active = res.x, res.cost, res.active_mask
    return best, best_active
