"""Deterministic training subsets for the data-scaling study (baselines.md section 1.1).

The TU Delft 2023 protocol: draw round(p * N) videos uniformly without replacement from the
training subset, and re-draw until every class of that subset appears at least once. Here the
random generator is seeded from (seed, p, slice) alone, so a draw never depends on call order or
on the machine. When full class coverage is impossible or unlikely (few videos), the draw with the
best coverage after ``max_attempts`` is kept, and the record says so (``all_classes_covered``).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from tal_bench.data.annotations import normalize_subset
from tal_bench.errors import TalBenchError
from tal_bench.types import Annotations

MAX_ATTEMPTS = 1000


@dataclass(frozen=True)
class FractionDraw:
    """One training subset.

    Attributes:
        video_ids: the drawn ids, sorted.
        n_total: videos in the subset (N).
        n_drawn: round(p * N), at least 1.
        classes_covered: classes of the subset present in the draw.
        classes_total: classes present in the whole subset.
        attempts: draws made (1 when the first draw covered every class).
        ids_hash: sha256 (first 16 hex) of the sorted ids joined by newlines.
    """

    video_ids: list[str]
    n_total: int
    n_drawn: int
    classes_covered: int
    classes_total: int
    attempts: int
    ids_hash: str

    @property
    def all_classes_covered(self) -> bool:
        """Whether the protocol's "every class appears" condition was met."""
        return self.classes_covered == self.classes_total


def ids_hash(video_ids: list[str]) -> str:
    """Stable short hash of a set of video ids (order-independent)."""
    return hashlib.sha256("\n".join(sorted(video_ids)).encode()).hexdigest()[:16]


def fraction_size(fraction_pct: float, n_total: int) -> int:
    """round(p * N) with halves rounded up, at least 1 (p in percent)."""
    return max(1, min(n_total, math.floor(fraction_pct / 100.0 * n_total + 0.5)))


def _rng(seed: int, fraction_pct: float, slice_idx: int) -> np.random.Generator:
    """A generator that depends only on (seed, p, slice); p is keyed to 1e-6 %."""
    key = f"tal-bench-fraction|{int(seed)}|{fraction_pct:.6f}|{int(slice_idx)}"
    digest = hashlib.sha256(key.encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def _check_args(fraction_pct: float, slice_idx: int) -> None:
    if not (isinstance(fraction_pct, int | float) and 1.0 <= fraction_pct <= 100.0):
        raise TalBenchError(
            f"data.fraction must be a percentage in [1, 100], got {fraction_pct!r} "
            "(e.g. data.fraction=10 for 10 % of the training videos)"
        )
    if slice_idx < 0:
        raise TalBenchError(f"data.slice must be >= 0, got {slice_idx}")


def sample_fraction(
    ann: Annotations,
    subset: str,
    fraction_pct: float,
    slice_idx: int = 0,
    seed: int = 0,
    max_attempts: int = MAX_ATTEMPTS,
) -> FractionDraw:
    """Draw the training videos for fraction ``fraction_pct`` %, slice ``slice_idx``.

    Args:
        ann: the annotations.
        subset: subset to draw from ("val" or "Validation" for THUMOS training).
        fraction_pct: percentage of the subset's videos, 1-100.
        slice_idx: which independent draw of this fraction (0, 1, 2, ...).
        seed: study seed; with (fraction_pct, slice_idx) it fixes the draw.
        max_attempts: re-draws allowed before settling for the best coverage.

    Returns:
        The ``FractionDraw``.
    """
    _check_args(fraction_pct, slice_idx)
    records = sorted(ann.subset(normalize_subset(subset)), key=lambda r: r.video_id)
    if not records:
        raise TalBenchError(
            f"cannot draw from subset {subset!r}: it has no videos; "
            f"available subsets: {', '.join(ann.subsets())}"
        )
    ids = [r.video_id for r in records]
    class_sets = [set(r.labels) for r in records]
    all_classes = set().union(*class_sets)
    n_drawn = fraction_size(fraction_pct, len(ids))
    rng = _rng(seed, fraction_pct, slice_idx)
    best: tuple[int, np.ndarray] | None = None
    attempts = 0
    while attempts < max(1, max_attempts):
        attempts += 1
        pick = np.sort(rng.choice(len(ids), size=n_drawn, replace=False))
        covered = len(set().union(*(class_sets[i] for i in pick)))
        if best is None or covered > best[0]:
            best = (covered, pick)
        if covered == len(all_classes):
            break
    covered, pick = best
    chosen = [ids[i] for i in pick]
    return FractionDraw(
        video_ids=chosen,
        n_total=len(ids),
        n_drawn=n_drawn,
        classes_covered=covered,
        classes_total=len(all_classes),
        attempts=attempts,
        ids_hash=ids_hash(chosen),
    )
