"""Deterministic training subsets for the data-scaling study.

The TU Delft 2023 protocol (the default, ``draw="uniform"``): draw round(p * N) videos uniformly
without replacement from the training subset, and re-draw until every class of that subset
appears at least once. The random generator is seeded from (seed, p, slice) alone, so a draw
never depends on call order or on the machine. When full class coverage is impossible or unlikely
(few videos), the draw with the best coverage after ``max_attempts`` is kept, and the record says
so (``all_classes_covered``).

Two options make small fractions easier to compare (protocol options of ``data-scaling``):

* ``nested``: one random order of the videos per (seed, slice); the p % draw is its first
  round(p * N) videos, so it holds every smaller draw of the slice and a curve's points differ
  only by the videos added. (No re-draw for coverage: it would break the nesting.)
* ``draw="stratified"``: each video counts for its primary class (the label with most of its
  segments); the draw keeps every class's share of the training videos. The order interleaves
  the classes by Webster's apportionment (the class with the lowest ``(taken + 1/2) / N_c`` goes
  next), so every prefix of it, and hence every fraction, is proportional within one video per
  class.
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
DRAWS = ("uniform", "stratified")


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


def _order_rng(seed: int, fraction_pct: float, slice_idx: int, nested: bool) -> np.random.Generator:
    """The generator of a draw's video order: nested draws share one per (seed, slice)."""
    if not nested:
        return _rng(seed, fraction_pct, slice_idx)
    key = f"tal-bench-fraction-nested|{int(seed)}|{int(slice_idx)}"
    return np.random.default_rng(
        int.from_bytes(hashlib.sha256(key.encode()).digest()[:16], "little")
    )


def primary_class(labels: list[str]) -> str:
    """The label with most segments in a video (ties: the first in sorted order); "" if none."""
    if not labels:
        return ""
    counts: dict[str, int] = {}
    for name in labels:
        counts[name] = counts.get(name, 0) + 1
    return min(counts, key=lambda name: (-counts[name], name))


def stratified_order(primary: list[str], rng: np.random.Generator) -> list[int]:
    """Indices of all videos, classes interleaved so that every prefix keeps class shares.

    Within a class the order is random; between classes the next pick goes to the class with
    the lowest ``(taken + 0.5) / size`` (Webster / Sainte-Lague apportionment), ties broken by a
    random class priority.
    """
    classes = sorted(set(primary))
    members = {c: [i for i, p in enumerate(primary) if p == c] for c in classes}
    queues = {c: list(rng.permutation(members[c])) for c in classes}
    priority = {c: r for c, r in zip(classes, rng.permutation(len(classes)), strict=True)}
    taken = dict.fromkeys(classes, 0)
    order: list[int] = []
    for _ in range(len(primary)):
        c = min((c for c in classes if queues[c]),
                key=lambda c: ((taken[c] + 0.5) / len(members[c]), priority[c]))  # fmt: skip
        order.append(int(queues[c].pop(0)))
        taken[c] += 1
    return order


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
    draw: str = "uniform",
    nested: bool = False,
) -> FractionDraw:
    """Draw the training videos for fraction ``fraction_pct`` %, slice ``slice_idx``.

    Args:
        ann: the annotations.
        subset: subset to draw from ("val" or "Validation" for THUMOS training).
        fraction_pct: percentage of the subset's videos, 1-100.
        slice_idx: which independent draw of this fraction (0, 1, 2, ...).
        seed: study seed; with (fraction_pct, slice_idx) it fixes the draw.
        max_attempts: re-draws allowed before settling for the best coverage (the study's
            uniform, non-nested draw only).
        draw: "uniform" or "stratified" (module docstring).
        nested: take the draw as a prefix of one order per (seed, slice).

    Returns:
        The ``FractionDraw``.
    """
    _check_args(fraction_pct, slice_idx)
    if draw not in DRAWS:
        raise TalBenchError(f"data.draw must be one of {', '.join(DRAWS)}, got {draw!r}")
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
    if draw != "uniform" or nested:
        rng = _order_rng(seed, fraction_pct, slice_idx, nested)
        if draw == "stratified":
            order = stratified_order([primary_class(r.labels) for r in records], rng)
        else:
            order = [int(i) for i in rng.permutation(len(ids))]
        pick = np.sort(order[:n_drawn])
        return _result(ids, class_sets, all_classes, pick, 1)
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
    return _result(ids, class_sets, all_classes, best[1], attempts)


def _result(
    ids: list[str], class_sets: list[set[str]], all_classes: set[str], pick: np.ndarray,
    attempts: int,
) -> FractionDraw:  # fmt: skip
    chosen = [ids[i] for i in pick]
    return FractionDraw(
        video_ids=chosen,
        n_total=len(ids),
        n_drawn=len(chosen),
        classes_covered=len(set().union(*(class_sets[i] for i in pick))),
        classes_total=len(all_classes),
        attempts=attempts,
        ids_hash=ids_hash(chosen),
    )
