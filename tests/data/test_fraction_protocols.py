"""Protocol options of the fraction draw: nested draws and class-stratified draws."""

from __future__ import annotations

import numpy as np
import pytest

from tal_bench.data.fractions import primary_class, sample_fraction, stratified_order
from tal_bench.errors import TalBenchError
from tal_bench.types import Annotations, VideoRecord


def _ann(labels_per_video: list[list[str]]) -> Annotations:
    recs = [
        VideoRecord(f"vid{i:03d}", "val", "Validation", 10.0, 30.0, np.zeros((len(ls), 2)), ls)
        for i, ls in enumerate(labels_per_video)
    ]
    classes = sorted({lab for r in recs for lab in r.labels})
    return Annotations({r.video_id: r for r in recs}, classes, "synthetic")


# 60 videos: primary class A in 10, B in 20, C in 30 (C videos also hold one A segment)
VIDEOS = [["A"]] * 10 + [["B", "B"]] * 20 + [["C", "C", "A"]] * 30


def _primary(ann: Annotations, ids: list[str]) -> list[str]:
    return [primary_class(ann.videos[v].labels) for v in ids]


def test_primary_class_by_hand() -> None:
    assert primary_class(["C", "C", "A"]) == "C"
    assert primary_class(["B", "A"]) == "A"  # tie: first in sorted order
    assert primary_class([]) == ""


@pytest.mark.parametrize("draw", ["uniform", "stratified"])
def test_nested_draws_contain_every_smaller_draw(draw: str) -> None:
    ann = _ann(VIDEOS)
    for slice_idx in (0, 1):
        sets = [set(sample_fraction(ann, "val", p, slice_idx, 3, draw=draw, nested=True)
                    .video_ids) for p in (5, 10, 20, 50, 70, 100)]  # fmt: skip
        assert all(a < b for a, b in zip(sets, sets[1:], strict=False))
        assert [len(s) for s in sets] == [3, 6, 12, 30, 42, 60]  # round(p * 60)
    a = sample_fraction(ann, "val", 20, 0, 3, draw=draw, nested=True)
    b = sample_fraction(ann, "val", 20, 1, 3, draw=draw, nested=True)
    assert a.video_ids != b.video_ids  # slices stay independent draws
    assert a == sample_fraction(ann, "val", 20, 0, 3, draw=draw, nested=True)  # deterministic


def test_independent_draws_are_not_nested() -> None:
    ann = _ann(VIDEOS)
    small = set(sample_fraction(ann, "val", 20, 0, 0).video_ids)
    large = set(sample_fraction(ann, "val", 50, 0, 0).video_ids)
    assert not small <= large  # the study's draws are independent per fraction


def test_stratified_draw_keeps_class_shares() -> None:
    ann = _ann(VIDEOS)
    # 50 % of 10 / 20 / 30 videos is exactly 5 / 10 / 15 per primary class.
    d = sample_fraction(ann, "val", 50, 0, 0, draw="stratified")
    prim = _primary(ann, d.video_ids)
    assert [prim.count(c) for c in "ABC"] == [5, 10, 15]
    # Every prefix of the order is within one video of the exact shares n * N_c / N.
    order = stratified_order(_primary(ann, sorted(ann.videos)), np.random.default_rng(0))
    assert sorted(order) == list(range(60))
    names = _primary(ann, sorted(ann.videos))
    for n in range(1, 61):
        taken = [sum(names[i] == c for i in order[:n]) for c in "ABC"]
        assert all(abs(t - n * size / 60) < 1 for t, size in zip(taken, (10, 20, 30), strict=True))


def test_unknown_draw_is_one_line() -> None:
    with pytest.raises(TalBenchError, match="data.draw must be one of uniform, stratified"):
        sample_fraction(_ann(VIDEOS), "val", 10, draw="balanced")
