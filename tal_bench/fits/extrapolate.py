"""Extrapolating a learning curve: fit range, bootstrap intervals, family selection.

The study (seed paper §4.2) fits mAP against the training fraction on the first anchors and
reads the curve at p = 100 %. Here that becomes:

* :class:`Anchors`: the mAP of every slice at every fraction (slices = independent subsets);
  curves are fitted to the per-fraction means;
* :func:`fit_range`: anchors with ``p <= upto`` or the first ``k`` fractions (default: all below
  the target);
* :func:`extrapolate`: fit, project at the target, and a percentile bootstrap interval that
  resamples slices within each fraction (or, with one slice per fraction, the fit residuals);
* :func:`select_family`: leave the last anchors of the fit range out, fit the rest, and score
  each family by its mean absolute error on the held-out anchors, which is the error that
  matters for extrapolation (AIC only breaks ties or decides when too few anchors remain).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tal_bench.errors import TalBenchError
from tal_bench.fits.fit import FitResult, fit_curve, get_curve


@dataclass(frozen=True)
class Anchors:
    """mAP samples per training fraction.

    Attributes:
        fractions: distinct fractions in percent, ascending, shape (F,).
        samples: for each fraction, the mAP (points) of every slice, F arrays.
    """

    fractions: np.ndarray
    samples: tuple[np.ndarray, ...]

    @classmethod
    def from_pairs(cls, fraction_pct: Iterable[float], map_pct: Iterable[float]) -> Anchors:
        """Group (fraction %, mAP points) pairs by fraction."""
        x = np.asarray(list(fraction_pct), dtype=float)
        y = np.asarray(list(map_pct), dtype=float)
        fractions = np.unique(x)
        return cls(fractions, tuple(y[x == f] for f in fractions))

    @property
    def means(self) -> np.ndarray:
        """Mean mAP per fraction, shape (F,)."""
        return np.array([s.mean() for s in self.samples])

    @property
    def stds(self) -> np.ndarray:
        """Sample standard deviation per fraction (0 with one slice), shape (F,)."""
        return np.array([s.std(ddof=1) if s.size > 1 else 0.0 for s in self.samples])

    @property
    def counts(self) -> np.ndarray:
        """Slices per fraction, shape (F,)."""
        return np.array([s.size for s in self.samples])

    def select(self, keep: np.ndarray) -> Anchors:
        """The anchors where the boolean mask ``keep`` (shape (F,)) is true."""
        kept = tuple(s for s, k in zip(self.samples, keep, strict=True) if k)
        return Anchors(self.fractions[keep], kept)

    def value_at(self, fraction_pct: float) -> tuple[float | None, float | None]:
        """(mean, std) at a fraction present in the grid, else (None, None)."""
        hit = np.isclose(self.fractions, fraction_pct)
        if not hit.any():
            return None, None
        i = int(np.argmax(hit))
        return float(self.means[i]), float(self.stds[i])


def fit_range(
    anchors: Anchors,
    target_pct: float,
    upto_pct: float | None = None,
    first_k: int | None = None,
) -> Anchors:
    """Anchors used to extrapolate to ``target_pct``.

    Args:
        anchors: all anchors.
        target_pct: fraction to project to (percent).
        upto_pct: keep fractions ``<= upto_pct``.
        first_k: keep the ``first_k`` smallest distinct fractions.

    Raises:
        TalBenchError: both limits given, or a limit that keeps nothing.
    """
    if upto_pct is not None and first_k is not None:
        raise TalBenchError("give either --upto or --first-k, not both")
    if first_k is not None:
        if first_k < 1:
            raise TalBenchError(f"--first-k must be >= 1, got {first_k}")
        keep = np.arange(anchors.fractions.size) < first_k
    elif upto_pct is not None:
        keep = anchors.fractions <= upto_pct + 1e-9
    else:
        keep = anchors.fractions < target_pct - 1e-9
    if not keep.any():
        raise TalBenchError(
            f"no fractions in the fit range (smallest fraction is {anchors.fractions.min():g} %); "
            "raise --upto / --first-k"
        )
    return anchors.select(keep)


def _family_seed(seed: int, family: str) -> int:
    # Stable across processes (unlike hash()), different per family.
    return seed * 1_000_003 + zlib.crc32(family.encode())


def bootstrap_projections(
    anchors: Anchors,
    fit: FitResult,
    target_pct: float,
    n_boot: int = 200,
    seed: int = 0,
) -> tuple[np.ndarray, str]:
    """Projections at ``target_pct`` of refits on bootstrap resamples.

    Slices are resampled with replacement within each fraction; when every fraction has a
    single slice, residuals of ``fit`` are resampled instead. Each refit starts from ``fit``.

    Returns:
        (projections of the successful refits, shape (<= n_boot,), method name).
    """
    rng = np.random.default_rng(_family_seed(seed, fit.family))
    start = [[fit.params[p] for p in get_curve(fit.family).params]]
    by_slices = bool(np.any(anchors.counts > 1))
    fitted = fit.predict(anchors.fractions)
    resid = anchors.means - fitted
    out = []
    for _ in range(n_boot):
        if by_slices:
            y = np.array([rng.choice(s, size=s.size).mean() for s in anchors.samples])
        else:
            y = fitted + rng.choice(resid, size=resid.size)
        refit = fit_curve(anchors.fractions, y, fit.family, starts=start)
        if refit.ok:
            out.append(float(refit.predict(np.array([target_pct]))[0]))
    return np.array(out), "slices" if by_slices else "residuals"


def extrapolate(
    anchors: Anchors,
    family: str,
    target_pct: float,
    *,
    actual: float | None = None,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
    fit: FitResult | None = None,
) -> dict[str, Any]:
    """Fit ``family`` on ``anchors`` and project mAP at ``target_pct`` with an interval.

    Args:
        anchors: the fit range (see :func:`fit_range`).
        family: a key of ``CURVES``.
        target_pct: fraction to project to, percent.
        actual: measured mean mAP at the target, if the grid has it.
        n_boot: bootstrap resamples (0: no interval).
        level: interval coverage (percentile interval).
        seed: bootstrap seed (deterministic; offset per family).
        fit: an existing fit of ``family`` on ``anchors`` (saves refitting).

    Returns:
        ``status``, ``params``, ``at_bound``, ``projected``, ``interval`` ([lo, hi] or None),
        ``interval_method``, ``n_boot_ok``, ``actual``, ``error`` (projected - actual),
        ``abs_error``, and ``message`` when the fit failed. mAP in points.
    """
    if fit is None:
        fit = fit_curve(anchors.fractions, anchors.means, family)
    out: dict[str, Any] = {"status": fit.status, "params": fit.params, "at_bound": fit.at_bound}
    if not fit.ok:
        return {**out, "message": fit.error, "projected": None, "interval": None,
                "actual": actual, "error": None, "abs_error": None}  # fmt: skip
    projected = float(fit.predict(np.array([target_pct]))[0])
    interval, method, n_ok = None, None, 0
    if n_boot > 0:
        proj, method = bootstrap_projections(anchors, fit, target_pct, n_boot, seed)
        n_ok = int(proj.size)
        if n_ok >= 2:
            tail = (1 - level) / 2 * 100
            interval = [float(v) for v in np.percentile(proj, [tail, 100 - tail])]
    err = None if actual is None else projected - actual
    return {
        **out,
        "projected": projected,
        "interval": interval,
        "interval_method": method,
        "n_boot_ok": n_ok,
        "actual": actual,
        "error": err,
        "abs_error": None if err is None else abs(err),
    }


def select_family(
    anchors: Anchors,
    families: Sequence[str],
    n_holdout: int = 2,
    fits: dict[str, FitResult] | None = None,
) -> dict[str, Any]:
    """Pick the family that best predicts the last anchors of the fit range from the others.

    The last ``n_holdout`` fractions are held out (fewer when fewer than 3 anchors would remain
    to fit); each family is fitted on the rest and scored by mean |prediction - mean mAP| on the
    held-out fractions. Lowest score wins; ties go to the lower AIC of ``fits``. When no family
    can be scored (too few anchors), the lowest AIC of ``fits`` (fits on the whole range) wins.

    Args:
        anchors: the fit range.
        families: candidate families.
        n_holdout: anchors to hold out.
        fits: fits of each family on all of ``anchors`` (computed if missing).

    Returns:
        ``selected`` (None if every family failed), ``method`` (``holdout`` or ``aic``),
        ``holdout_fractions``, and ``scores`` (family -> held-out mean |error| or None).
    """
    if fits is None:
        fits = {f: fit_curve(anchors.fractions, anchors.means, f) for f in families}
    n = anchors.fractions.size
    h = max(0, min(n_holdout, n - 3))
    scores: dict[str, float | None] = dict.fromkeys(families)
    held = anchors.fractions[n - h :] if h else np.array([])
    if h:
        train = anchors.select(np.arange(n) < n - h)
        truth = anchors.means[n - h :]
        for fam in families:
            part = fit_curve(train.fractions, train.means, fam)
            if part.ok:
                scores[fam] = float(np.mean(np.abs(part.predict(held) - truth)))
    aic = {f: fits[f].aic if fits[f].ok and fits[f].aic is not None else math.inf for f in families}
    scored = [f for f in families if scores[f] is not None]
    if scored:
        selected, method = min(scored, key=lambda f: (scores[f], aic[f])), "holdout"
    else:
        ok = [f for f in families if fits[f].ok]
        selected, method = (min(ok, key=lambda f: aic[f]) if ok else None), "aic"
    return {
        "selected": selected,
        "method": method,
        "holdout_fractions": [float(v) for v in held],
        "scores": scores,
    }
