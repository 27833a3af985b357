"""Forecasts with bootstrap intervals, backtests, the family ensemble and the selection rule.

The study (seed paper §4.2) judged a fit by its error on the points it was fitted to, which says
nothing about forecasting. Here every method is judged the way it will be used:

* **Backtest.** For each cut ``p`` in the fit range, fit on the fractions ``<= p`` and forecast
  every larger fraction of the range; a method's score is its mean absolute forecast error over
  all (cut, fraction) pairs, and its interval coverage is how often its interval held the
  measured mean. Every method is scored on the same pairs: the first cut has ``K`` fractions,
  ``K = max(2, min(most parameters among the families, n - 2))`` for ``n`` fractions in the range
  (so there are two cuts when the range allows); families with more than ``K`` parameters are
  fitted but not backtested. This is LCDB's protocol (fit on the first anchors, score on the
  rest; fmohr/lcdb, publications/2022-ecml/analysis/fit_database.py) repeated over cuts.
* **Intervals.** Each fit weights its points by the standard error of their mean
  (:meth:`~tal_bench.fits.anchors.Anchors.sigma`); the interval is the percentile interval of
  refits on bootstrap resamples: slices resampled within each fraction, or, for a published
  mean/std curve, each mean redrawn from its normal sampling distribution, or, with one slice per
  fraction and no spread known, the fit's residuals resampled.
* **Ensemble.** The families averaged with weights ``1 / MSE`` of their backtest forecasts
  (Bates & Granger, Oper. Res. Q. 1969); its interval is the same mixture of the families'
  bootstrap distributions, so it carries the doubt about which family is right. In the backtest
  the ensemble at cut ``p`` is weighted only by pairs known at ``p`` (equal weights at the first).
* **Selection.** The method (family, baseline or ensemble) with the lowest backtest error among
  those that forecast every pair; ties go to fewer parameters.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import t as student_t

from tal_bench.fits.anchors import Anchors
from tal_bench.fits.curves import BASELINES, MAP_MAX_PCT
from tal_bench.fits.fit import FitResult, fit_curve, get_curve, refit_many

ENSEMBLE = "ensemble"
_MSE_FLOOR = 1e-6
# Function evaluations per bootstrap refit: it starts at the point fit, and a refit crawling
# along a ridge (5PL, exp4) for hundreds of evaluations barely moves the projection.
_REFIT_NFEV = 60  # keeps 1/MSE finite for a family that forecast every pair exactly


@dataclass
class Forecast:
    """A method fitted on some anchors and its forecasts at larger fractions.

    Attributes:
        method: family, baseline or ``ensemble``.
        fractions: where it forecasts, percent, shape (m,).
        point: forecasts (NaN where the fit failed), mAP points, shape (m,).
        draws: bootstrap forecasts, shape (B, m); B = 0 without an interval.
        fit: the fit (None for the ensemble).
        weights: ensemble member weights (ensemble only).
    """

    method: str
    fractions: np.ndarray
    point: np.ndarray
    draws: np.ndarray
    fit: FitResult | None = None
    weights: dict[str, float] = field(default_factory=dict)
    draw_weights: np.ndarray | None = None  # per-draw mixture weights (ensemble only)

    @property
    def ok(self) -> bool:
        """True when there is a forecast."""
        return bool(np.all(np.isfinite(self.point)))

    def interval(self, level: float) -> np.ndarray | None:
        """Percentile interval, shape (2, m) (rows lo, hi); None with fewer than 2 draws."""
        if self.draws.shape[0] < 2:
            return None
        tail = (1 - level) / 2
        return np.stack([
            weighted_quantile(self.draws[:, j], self.draw_weights, [tail, 1 - tail])
            for j in range(self.fractions.size)
        ], axis=1)  # fmt: skip


def weighted_quantile(values: np.ndarray, weights: np.ndarray | None, qs: Sequence[float]) -> Any:
    """Quantiles ``qs`` of ``values`` (shape (B,)) under ``weights`` (None: equal), by linear
    interpolation between the midpoints of each value's probability mass."""
    order = np.argsort(values, kind="stable")
    v = values[order]
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=float)[order]
    cdf = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(qs, cdf, v)


def _rng(seed: int, *keys: object) -> np.random.Generator:
    # Stable across processes (unlike hash()): one stream per (seed, keys).
    return np.random.default_rng([seed, *(zlib.crc32(str(k).encode()) for k in keys)])


def resampled_means(anchors: Anchors, n_boot: int, rng: np.random.Generator) -> np.ndarray | None:
    """Bootstrap replicates of the per-fraction means, shape (n_boot, F); None when the curve
    carries no spread (one slice everywhere, no std): then residuals are resampled instead.

    Fractions with several slices resample their slices; fractions known only by mean and std
    (or with one slice among others that have more) draw their mean from ``N(mean, sigma)``.
    """
    sigma = anchors.sigma()
    if sigma is None:
        return None
    out = anchors.means + rng.standard_normal((n_boot, anchors.fractions.size)) * sigma
    out = np.clip(out, 0.0, MAP_MAX_PCT)  # a mean mAP lies in [0, 100]
    if anchors.samples is not None:
        for j, s in enumerate(anchors.samples):
            if s.size > 1:
                out[:, j] = rng.choice(s, size=(n_boot, s.size)).mean(axis=1)
    return out


def forecast(
    anchors: Anchors,
    method: str,
    fractions: np.ndarray,
    n_boot: int,
    seed: int,
    means_boot: np.ndarray | None = None,
) -> Forecast:
    """Fit ``method`` on ``anchors`` and forecast at ``fractions``, with bootstrap draws.

    Args:
        anchors: the points fitted.
        method: a family or baseline name.
        fractions: fractions to forecast (percent), shape (m,).
        n_boot: bootstrap refits (0: no interval).
        seed: bootstrap seed.
        means_boot: replicates of the means from :func:`resampled_means` (shared by all methods
            at one cut so that their intervals see the same resamples); None: residuals.
    """
    sigma = anchors.sigma()
    fit = fit_curve(anchors.fractions, anchors.means, method, sigma=sigma)
    nan = np.full(fractions.size, np.nan)
    if not fit.ok:
        return Forecast(method, fractions, nan, np.empty((0, fractions.size)), fit)
    point = fit.predict(fractions)
    if n_boot <= 0:
        return Forecast(method, fractions, point, np.empty((0, fractions.size)), fit)
    if means_boot is None:
        rng = _rng(seed, method, anchors.fractions.size)
        resid = anchors.means - fit.predict(anchors.fractions)
        means_boot = fit.predict(anchors.fractions) + rng.choice(resid, (n_boot, resid.size))
    params = refit_many(fit, anchors.fractions, anchors.means, means_boot[:n_boot], sigma)
    curve = get_curve(method)
    draws = curve.predict(
        fractions[None, :], {p: params[:, [i]] for i, p in enumerate(curve.params)}
    )
    draws = draws[np.all(np.isfinite(draws), axis=1)]  # (B_ok, m)
    return Forecast(method, fractions, point, draws, fit)


def ensemble(
    members: dict[str, Forecast], weights: dict[str, float], fractions: np.ndarray | None = None
) -> Forecast:
    """Weighted average of the members' forecasts; the draws are the members' draws pooled,
    each member's draws carrying its weight (a mixture distribution). With no members (no
    family has few enough parameters for the cut) it forecasts nothing at ``fractions``."""
    ok = {m: f for m, f in members.items() if f.ok and weights.get(m, 0) > 0}
    if fractions is None:
        fractions = next(iter(members.values())).fractions
    if not ok:
        return Forecast(ENSEMBLE, fractions, np.full(fractions.size, np.nan),
                        np.empty((0, fractions.size)))  # fmt: skip
    total = sum(weights[m] for m in ok)
    w = {m: weights[m] / total for m in ok}
    point = sum(w[m] * f.point for m, f in ok.items())
    with_draws = {m: f for m, f in ok.items() if f.draws.shape[0] > 0}
    draws = np.empty((0, fractions.size))
    draw_w = None
    if len(with_draws) == len(ok):
        draws = np.concatenate([f.draws for f in with_draws.values()])
        draw_w = np.concatenate(
            [np.full(f.draws.shape[0], w[m] / f.draws.shape[0]) for m, f in with_draws.items()]
        )
    return Forecast(ENSEMBLE, fractions, np.asarray(point), draws, None, w, draw_w)


def inverse_mse_weights(errors: dict[str, list[float]]) -> dict[str, float]:
    """``1 / MSE`` of each member's forecast errors (equal weights when there are none)."""
    if not errors or not any(errors.values()):
        return dict.fromkeys(errors, 1.0)
    return {m: 1.0 / (float(np.mean(np.square(e))) + _MSE_FLOOR) for m, e in errors.items() if e}


def backtest_min_points(n_fractions: int, families: Sequence[str]) -> int:
    """Fractions in the first backtest cut: ``max(2, min(most family parameters, n - 2))``."""
    k_max = max((len(get_curve(f).params) for f in families), default=2)
    return max(2, min(k_max, n_fractions - 2))


def horizon(fraction_pct: Any, fitted_upto_pct: float) -> Any:
    """Doublings of data between the last fitted fraction and the forecast one."""
    return np.log2(np.asarray(fraction_pct, dtype=float) / fitted_upto_pct)


def calibrated(
    cast: Forecast, level: float, fitted_upto_pct: float, past_errors: Sequence[float]
) -> np.ndarray | None:
    """Interval that adds the method's own past forecast error to its bootstrap interval.

    ``past_errors`` are the method's backtest errors per doubling of horizon (forecast minus
    measured, divided by :func:`horizon`) known when it forecasts. Treating them as zero-mean
    normal with unknown scale, a new error per doubling over ``s = RMS(past)`` follows Student's
    t with ``n`` degrees of freedom, so the error half-width at horizon ``h`` is
    ``t_n s h``; it is added in quadrature to each side of the bootstrap interval (the slice
    spread). None without past errors. Shape (2, m), clipped to [0, 100] mAP.
    """
    if not len(past_errors) or not cast.ok:
        return None
    s = float(np.sqrt(np.mean(np.square(past_errors))))
    half = (
        student_t.ppf((1 + level) / 2, len(past_errors))
        * s
        * horizon(cast.fractions, fitted_upto_pct)
    )
    boot = cast.interval(level)
    lo_d, hi_d = (0.0, 0.0) if boot is None else (cast.point - boot[0], boot[1] - cast.point)
    lo = cast.point - np.hypot(np.maximum(lo_d, 0.0), half)
    hi = cast.point + np.hypot(np.maximum(hi_d, 0.0), half)
    return np.clip(np.stack([lo, hi]), 0.0, MAP_MAX_PCT)


@dataclass
class Backtest:
    """Outcome of :func:`run_backtest`.

    Attributes:
        min_points: fractions in the first cut (``K``).
        cuts: the largest fraction fitted at each cut, percent.
        pairs: one dict per (cut, forecast fraction): ``cut_pct``, ``fraction_pct``,
            ``measured``, and ``forecasts`` (method -> ``forecast``, ``interval`` (calibrated),
            ``interval_bootstrap``; None where missing).
        scored: methods backtested.
        weights: ensemble weights from all pairs.
        errors: each scored method's errors per doubling of horizon over all pairs.
    """

    min_points: int
    cuts: list[float]
    pairs: list[dict[str, Any]]
    scored: list[str]
    weights: dict[str, float]
    errors: dict[str, list[float]]


def run_backtest(
    anchors: Anchors, families: Sequence[str], n_boot: int, level: float, seed: int
) -> Backtest:
    """Backtest ``families``, the baselines and the ensemble on ``anchors`` (the fit range)."""
    n = anchors.fractions.size
    k_min = backtest_min_points(n, families)
    members = [f for f in families if len(get_curve(f).params) <= k_min]
    methods = [*members, *BASELINES, ENSEMBLE]
    pairs: list[dict[str, Any]] = []
    known_at: list[int] = []  # cut from which each pair's measured value is known
    raw: dict[str, list[float]] = {m: [] for m in methods}  # forecast - measured, per pair
    for c in range(k_min, n):
        head, future, upto = anchors.head(c), anchors.fractions[c:], anchors.fractions[c - 1]
        boot = resampled_means(head, n_boot, _rng(seed, "cut", c)) if n_boot > 0 else None
        casts = {m: forecast(head, m, future, n_boot, seed, boot) for m in methods[:-1]}
        seen = [i for i, k in enumerate(known_at) if k <= c]
        past = {m: [raw[m][i] / _pair_horizon(pairs[i]) for i in seen
                    if np.isfinite(raw[m][i])] for m in methods}  # fmt: skip
        casts[ENSEMBLE] = ensemble(
            {m: casts[m] for m in members},
            inverse_mse_weights({m: past[m] for m in members}),
            future,
        )
        for j, frac in enumerate(future):
            measured = float(anchors.means[c + j])
            entries = {m: _pair_entry(cast, j, level, upto, past[m]) for m, cast in casts.items()}
            for m, e in entries.items():
                raw[m].append(np.nan if e["forecast"] is None else e["forecast"] - measured)
            pairs.append({"cut_pct": float(upto), "fraction_pct": float(frac),
                          "measured": measured, "forecasts": entries})  # fmt: skip
            known_at.append(c + j + 1)
    per_doubling = {m: [e / _pair_horizon(p) for e, p in zip(raw[m], pairs, strict=True)]
                    for m in methods}  # fmt: skip
    complete = {m: per_doubling[m] for m in members if np.all(np.isfinite(per_doubling[m]))}
    return Backtest(k_min, [float(anchors.fractions[c - 1]) for c in range(k_min, n)], pairs,
                    methods, inverse_mse_weights(complete) if complete else {},
                    per_doubling)  # fmt: skip


def _pair_horizon(pair: dict[str, Any]) -> float:
    return float(horizon(pair["fraction_pct"], pair["cut_pct"]))


def _pair_entry(
    cast: Forecast, j: int, level: float, upto: float, past: Sequence[float]
) -> dict[str, Any]:
    if not np.isfinite(cast.point[j]):
        return {"forecast": None, "interval": None, "interval_bootstrap": None}
    boot, cal = cast.interval(level), calibrated(cast, level, upto, past)
    return {
        "forecast": float(cast.point[j]),
        "interval": None if cal is None else [float(cal[0, j]), float(cal[1, j])],
        "interval_bootstrap": None if boot is None else [float(boot[0, j]), float(boot[1, j])],
    }


def score(bt: Backtest, method: str) -> dict[str, Any]:
    """Backtest numbers of one method: ``mae`` (mean |forecast - measured|), ``max_abs_error``,
    ``n_forecasts`` of ``n_pairs``, and for each interval kind the ``coverage`` (share of the
    pairs with that interval whose interval held the measured mean) and its count; None where the
    method was not backtested."""
    out: dict[str, Any] = {"mae": None, "max_abs_error": None, "n_forecasts": 0,
                           "n_pairs": len(bt.pairs)}  # fmt: skip
    entries = [
        (p["forecasts"][method], p["measured"])
        for p in bt.pairs
        if method in p["forecasts"] and p["forecasts"][method]["forecast"] is not None
    ]
    errs = [abs(e["forecast"] - m) for e, m in entries]
    if errs:
        out.update(mae=float(np.mean(errs)), max_abs_error=float(np.max(errs)),
                   n_forecasts=len(errs))  # fmt: skip
    for kind, key in (("interval", "coverage"), ("interval_bootstrap", "coverage_bootstrap")):
        held = [e[kind][0] <= m <= e[kind][1] for e, m in entries if e[kind] is not None]
        out[key] = float(np.mean(held)) if held else None
        out[f"n_{kind}"] = len(held)
    return out


def select(scores: dict[str, dict[str, Any]]) -> str | None:
    """The complete backtested method with the lowest mean absolute error (ties: fewer
    parameters, the ensemble counting as the most)."""
    complete = [m for m, s in scores.items()
                if s["mae"] is not None and s["n_forecasts"] == s["n_pairs"] > 0]  # fmt: skip

    def key(m: str) -> tuple[float, float]:
        return (scores[m]["mae"], math.inf if m == ENSEMBLE else len(get_curve(m).params))

    return min(complete, key=key) if complete else None


def project(
    anchors: Anchors,
    families: Sequence[str],
    target_pct: float,
    *,
    n_boot: int = 200,
    n_boot_backtest: int = 100,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Backtest every method on ``anchors`` (the fit range), select one, and project each to
    ``target_pct`` with its intervals.

    Returns:
        ``methods`` (name -> ``kind``, ``formula``, fit, ``projected``, ``interval``
        (calibrated), ``interval_bootstrap``, ``n_boot_ok``, ``backtest`` scores; the ensemble
        also ``weights``), ``backtest`` (``min_points``, ``cuts``, ``pairs``), ``selected``.
    """
    bt = run_backtest(anchors, families, n_boot_backtest, level, seed)
    target = np.array([float(target_pct)])
    upto = float(anchors.fractions[-1])
    boot = resampled_means(anchors, n_boot, _rng(seed, "target")) if n_boot > 0 else None
    casts: dict[str, Forecast | None] = {
        m: forecast(anchors, m, target, n_boot, seed, boot) for m in [*families, *BASELINES]
    }
    members = {m: casts[m] for m in bt.weights}
    casts[ENSEMBLE] = ensemble(members, bt.weights) if members else None  # type: ignore[arg-type]
    methods = {}
    for m, cast in casts.items():
        past = [e for e in bt.errors.get(m, []) if np.isfinite(e)]
        methods[m] = _method_entry(m, cast, score(bt, m), level, upto, past)
    return {
        "methods": methods,
        "backtest": {"min_points": bt.min_points, "cuts": bt.cuts, "pairs": bt.pairs},
        "selected": select({m: e["backtest"] for m, e in methods.items()}),
    }


def _method_entry(
    method: str, cast: Forecast | None, scores: dict[str, Any], level: float, upto: float,
    past: Sequence[float],
) -> dict[str, Any]:  # fmt: skip
    kind = "ensemble" if method == ENSEMBLE else "baseline" if method in BASELINES else "family"
    entry: dict[str, Any] = {"kind": kind}
    if method != ENSEMBLE:
        curve = get_curve(method)
        entry.update(formula=curve.formula, n_params=len(curve.params))
    if cast is None:
        return {**entry, "status": "failed", "projected": None, "interval": None,
                "interval_bootstrap": None, "n_boot_ok": 0, "backtest": scores,
                "message": "no family was backtested on every pair"}  # fmt: skip
    if cast.fit is not None:
        fit = cast.fit.to_dict()
        entry.update(status=fit["status"], params=fit["params"], at_bound=fit["at_bound"],
                     message=fit["error"])  # fmt: skip
    else:
        entry.update(status="ok" if cast.ok else "failed", weights=cast.weights)
    at_target = _pair_entry(cast, 0, level, upto, past)
    entry["projected"] = at_target.pop("forecast")
    return {**entry, **at_target, "n_boot_ok": int(cast.draws.shape[0]), "backtest": scores}
