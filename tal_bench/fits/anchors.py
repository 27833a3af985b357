"""The measured points of a learning curve: mAP per training fraction, over slices.

A slice is one independent training subset (the study draws 5 per fraction). A curve comes
either as the mAP of every slice (:meth:`Anchors.from_pairs`) or, as published curves are, as
mean, standard deviation and number of slices per fraction (:meth:`Anchors.from_summary`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from tal_bench.errors import TalBenchError

# Prior degrees of freedom of the pooled variance when moderating per-fraction variances.
PRIOR_DOF = 2.0
MIN_FIT_FRACTIONS = 3  # fit on 2, forecast 1: the smallest backtest


@dataclass(frozen=True)
class Anchors:
    """mAP per training fraction.

    Attributes:
        fractions: distinct fractions in percent, ascending, shape (F,).
        means: mean mAP (points) over slices, shape (F,).
        stds: sample standard deviation over slices (ddof = 1), NaN for one slice, shape (F,).
        counts: slices per fraction, shape (F,).
        samples: the mAP of every slice per fraction (F arrays), or None for a summary.
    """

    fractions: np.ndarray
    means: np.ndarray
    stds: np.ndarray
    counts: np.ndarray
    samples: tuple[np.ndarray, ...] | None = None

    @classmethod
    def from_pairs(cls, fraction_pct: Iterable[float], map_pct: Iterable[float]) -> Anchors:
        """Group (fraction %, mAP points) pairs, one per slice, by fraction."""
        x = np.asarray(list(fraction_pct), dtype=float)
        y = np.asarray(list(map_pct), dtype=float)
        fractions = np.unique(x)
        samples = tuple(y[x == f] for f in fractions)
        return cls(
            fractions,
            np.array([s.mean() for s in samples]),
            np.array([s.std(ddof=1) if s.size > 1 else np.nan for s in samples]),
            np.array([s.size for s in samples]),
            samples,
        )

    @classmethod
    def from_summary(
        cls, fraction_pct: Iterable[float], mean_pct: Iterable[float],
        std_pct: Iterable[float], n_slices: Iterable[int],
    ) -> Anchors:  # fmt: skip
        """Anchors from per-fraction mean, std and slice count (a published curve)."""
        x = np.asarray(list(fraction_pct), dtype=float)
        order = np.argsort(x, kind="stable")
        counts = np.asarray(list(n_slices), dtype=int)[order]
        stds = np.asarray(list(std_pct), dtype=float)[order]
        stds = np.where(counts > 1, stds, np.nan)
        return cls(x[order], np.asarray(list(mean_pct), dtype=float)[order], stds, counts)

    def select(self, keep: np.ndarray) -> Anchors:
        """The anchors where the boolean mask ``keep`` (shape (F,)) is true."""
        samples = None
        if self.samples is not None:
            samples = tuple(s for s, k in zip(self.samples, keep, strict=True) if k)
        return Anchors(self.fractions[keep], self.means[keep], self.stds[keep],
                       self.counts[keep], samples)  # fmt: skip

    def head(self, n: int) -> Anchors:
        """The ``n`` smallest fractions."""
        return self.select(np.arange(self.fractions.size) < n)

    def value_at(self, fraction_pct: float) -> tuple[float | None, float | None]:
        """(mean, std) at a fraction present in the grid, else (None, None); std None for one
        slice."""
        hit = np.isclose(self.fractions, fraction_pct)
        if not hit.any():
            return None, None
        i = int(np.argmax(hit))
        std = float(self.stds[i])
        return float(self.means[i]), None if np.isnan(std) else std

    def sigma(self) -> np.ndarray | None:
        """Standard error of each fraction's mean (points), or None when no fraction has two
        slices.

        Per-fraction variances from 2-5 slices are themselves noisy (one lucky pair of slices
        gives a near-zero variance and an enormous weight), so each is shrunk toward the pooled
        variance with ``PRIOR_DOF`` prior degrees of freedom, as limma's moderated variance
        (Smyth, Stat. Appl. Genet. Mol. Biol. 2004): ``s2 = ((n-1) s_i^2 + d0 s_pool^2) /
        (n - 1 + d0)``; a fraction with one slice gets ``s_pool^2``. Shape (F,).
        """
        dof = np.maximum(self.counts - 1, 0).astype(float)
        dof = np.where(np.isfinite(self.stds), dof, 0.0)  # spread known only with a std
        if not (dof > 0).any():
            return None
        var = np.where(dof > 0, np.nan_to_num(self.stds) ** 2, 0.0)
        pooled = float(np.sum(dof * var) / np.sum(dof))
        if pooled <= 0:
            return None
        moderated = (dof * var + PRIOR_DOF * pooled) / (dof + PRIOR_DOF)
        return np.sqrt(moderated / self.counts)

    def to_table(self) -> list[dict[str, float | int | None]]:
        """One JSON-ready dict per fraction (the ``anchors`` entry of ``fits.json``)."""
        return [
            {"fraction_pct": float(f), "n_slices": int(n), "map_mean_pct": float(m),
             "map_std_pct": None if np.isnan(s) else float(s)}
            for f, n, m, s in zip(self.fractions, self.counts, self.means, self.stds, strict=True)
        ]  # fmt: skip


def fit_range(
    anchors: Anchors,
    target_pct: float,
    upto_pct: float | None = None,
    first_k: int | None = None,
) -> Anchors:
    """Anchors used to project to ``target_pct``: ``p <= upto_pct``, the first ``k`` fractions,
    or (default) every fraction below the target.

    Raises:
        TalBenchError: both limits given, or fewer than ``MIN_FIT_FRACTIONS`` fractions kept.
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
    kept = anchors.fractions[keep]
    if kept.size < MIN_FIT_FRACTIONS:
        have = ", ".join(f"{v:g}" for v in kept) or "none"
        raise TalBenchError(
            f"the fit range holds {kept.size} fraction(s) ({have} %); a projection needs at "
            f"least {MIN_FIT_FRACTIONS} to be checked by backtest: raise --upto / --first-k"
        )
    return anchors.select(keep)
