"""The study's fraction sampler: sizes, determinism, class coverage, hash stability."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest

from tal_bench.data.fractions import fraction_size, ids_hash, sample_fraction
from tal_bench.errors import TalBenchError
from tal_bench.types import Annotations, VideoRecord


def _ann(labels_per_video: list[list[str]], order_seed: int | None = None) -> Annotations:
    recs = [
        VideoRecord(f"vid{i:03d}", "val", "Validation", 10.0, 30.0, np.zeros((len(ls), 2)), ls)
        for i, ls in enumerate(labels_per_video)
    ]
    recs.append(VideoRecord("t0", "test", "Test", 10.0, 30.0, np.zeros((1, 2)), ["A"]))
    if order_seed is not None:
        random.Random(order_seed).shuffle(recs)
    classes = sorted({lab for r in recs for lab in r.labels})
    return Annotations({r.video_id: r for r in recs}, classes, "synthetic")


# 40 videos: classes A/B/C each in 13 videos, D in one video only
SKEWED = [["A"], ["B"], ["C"]] * 13 + [["D"]]


@pytest.mark.parametrize(
    ("pct", "n", "expected"),
    [(10, 200, 20), (1, 200, 2), (100, 200, 200), (10, 7, 1), (10, 5, 1), (10, 15, 2), (1, 3, 1)],
)
def test_fraction_size(pct: float, n: int, expected: int) -> None:
    # round(p * N) with halves up (15 * 0.1 = 1.5 -> 2), never below one video
    assert fraction_size(pct, n) == expected


def test_draw_size_sorted_and_deterministic() -> None:
    ann = _ann([["A"], ["B"]] * 100)
    draw = sample_fraction(ann, "val", 10, slice_idx=0, seed=0)
    assert draw.n_total == 200 and draw.n_drawn == 20 and len(draw.video_ids) == 20
    assert draw.video_ids == sorted(draw.video_ids)
    assert all(v.startswith("vid") for v in draw.video_ids)  # never a test video
    assert sample_fraction(ann, "val", 10, 0, 0) == draw
    assert sample_fraction(ann, "Validation", 10, 0, 0) == draw  # raw subset names work too
    # the draw does not depend on the order the videos were read in
    assert sample_fraction(_ann([["A"], ["B"]] * 100, order_seed=5), "val", 10, 0, 0) == draw
    others = {tuple(sample_fraction(ann, "val", 10, s, 0).video_ids) for s in range(1, 5)}
    others.add(tuple(sample_fraction(ann, "val", 10, 0, seed=1).video_ids))
    assert tuple(draw.video_ids) not in others and len(others) == 5


def test_every_class_is_covered_by_redrawing() -> None:
    ann = _ann(SKEWED)
    for slice_idx in range(5):
        draw = sample_fraction(ann, "val", 10, slice_idx, seed=0)  # 4 of 40 videos
        assert draw.n_drawn == 4 and draw.classes_total == 4
        assert draw.classes_covered == 4 and draw.all_classes_covered
        assert "vid039" in draw.video_ids  # the only video with class D
        labels = {SKEWED[int(v[3:])][0] for v in draw.video_ids}
        assert labels == {"A", "B", "C", "D"}
    # P(a uniform 4-of-40 draw holds vid039) = 1/10, so several draws needed on average
    attempts = [sample_fraction(ann, "val", 10, s, seed=0).attempts for s in range(20)]
    assert max(attempts) > 1


def test_impossible_coverage_keeps_best_draw() -> None:
    ann = _ann(SKEWED)
    draw = sample_fraction(ann, "val", 5, 0, seed=0, max_attempts=50)  # 2 videos, 4 classes
    assert draw.n_drawn == 2 and draw.attempts == 50
    assert draw.classes_covered == 2 and not draw.all_classes_covered


def test_full_fraction_takes_everything_in_one_attempt() -> None:
    draw = sample_fraction(_ann(SKEWED), "val", 100, 3, seed=9)
    assert draw.video_ids == [f"vid{i:03d}" for i in range(40)] and draw.attempts == 1


def test_ids_hash_is_sha256_of_sorted_ids_and_stable() -> None:
    ids = ["b", "a", "c"]
    assert ids_hash(ids) == hashlib.sha256(b"a\nb\nc").hexdigest()[:16]
    draw = sample_fraction(_ann([["A"], ["B"]] * 100), "val", 10, 2, seed=7)
    assert draw.ids_hash == ids_hash(draw.video_ids)
    # golden: this exact draw must never change, or every recorded study row loses its meaning
    assert draw.ids_hash == GOLDEN_HASH


GOLDEN_HASH = "cdbe1e1308b42726"  # recorded from the first implementation (numpy PCG64)


@pytest.mark.parametrize("pct", [0, 0.5, 100.5, -10, float("nan")])
def test_out_of_range_fraction(pct: float) -> None:
    with pytest.raises(TalBenchError, match=r"data.fraction must be a percentage in \[1, 100\]"):
        sample_fraction(_ann(SKEWED), "val", pct, 0, 0)


def test_bad_slice_and_empty_subset() -> None:
    with pytest.raises(TalBenchError, match="data.slice"):
        sample_fraction(_ann(SKEWED), "val", 10, -1, 0)
    with pytest.raises(TalBenchError, match="available subsets: test, val"):
        sample_fraction(_ann(SKEWED), "train", 10, 0, 0)
