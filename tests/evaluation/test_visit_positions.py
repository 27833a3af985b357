"""Visit-order positions of the predictions that can match (``_wanted_positions``) against the
official per-class ``argsort()[::-1]``: ties, near-equal and non-finite scores, dropped labels,
and 64-bit keys past 2^16 classes; plus whole evaluations that need a redone class."""

from __future__ import annotations

import numpy as np
import pytest
from evalhelpers import annotations, detections, video
from reference import reference_evaluate

from tal_bench.evaluation import evaluate_detections, tiou_preset
from tal_bench.evaluation.map import _wanted_positions


def official_positions(p_cls, scores, num_classes, wanted):
    """Rows and positions of the wanted predictions in the official concatenated order."""
    order = []
    for c in range(num_classes):
        idx = np.flatnonzero(p_cls == c)  # input order
        order.append(idx[scores[idx].argsort()[::-1]])
    order = np.concatenate(order) if order else np.zeros(0, np.int64)
    pick = wanted[order]
    return order[pick], np.flatnonzero(pick)


def random_case(seed: int, num_classes: int, size: int):
    rng = np.random.default_rng(seed)
    p_cls = rng.integers(-1, num_classes, size)
    kind = seed % 4
    if kind == 0:  # continuous scores
        scores = rng.random(size)
    elif kind == 1:  # heavy ties
        scores = rng.integers(0, 5, size) / 4.0
    elif kind == 2:  # distinct but closer than the quantisation step
        scores = 0.5 + rng.integers(0, 3, size) * 1e-12 + rng.random(size) * 1e-3
    else:  # non-finite values and signed zeros
        scores = rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0, 0.3, 0.7], size)
        scores = np.where(rng.random(size) < 0.5, rng.random(size), scores)
    wanted = (rng.random(size) < 0.3) & (p_cls >= 0)
    return p_cls, scores, wanted


@pytest.mark.parametrize("seed", range(24))
@pytest.mark.parametrize("num_classes", [1, 3, 20, 70_000])
def test_wanted_positions_match_the_official_order(seed, num_classes):
    p_cls, scores, wanted = random_case(seed, num_classes, 3000)
    rows, pos, offsets = _wanted_positions(p_cls, scores, num_classes, wanted)
    ref_rows, ref_pos = official_positions(p_cls, scores, num_classes, wanted)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_array_equal(pos, ref_pos)
    counts = np.bincount(p_cls[p_cls >= 0], minlength=num_classes)
    np.testing.assert_array_equal(offsets, np.r_[0, np.cumsum(counts)])


def test_nothing_wanted():
    p_cls = np.array([0, 1, -1, 1])
    rows, pos, offsets = _wanted_positions(p_cls, np.ones(4), 2, np.zeros(4, dtype=bool))
    assert rows.size == 0 and pos.size == 0
    np.testing.assert_array_equal(offsets, [0, 1, 3])


@pytest.mark.parametrize("seed", range(8))
def test_ties_with_unmatchable_predictions_agree_with_reference(seed):
    """Matchable predictions tied with predictions on other videos / with dropped labels."""
    rng = np.random.default_rng(seed)
    videos = [
        video(f"v{v}", "validation", [("AB"[i % 2], 10.0 * i, 10.0 * i + 5) for i in range(4)])
        for v in range(3)
    ]
    gt = annotations(videos)
    rows = []
    for _ in range(300):
        vid = rng.choice(["v0", "v1", "v2", "other"])
        start = rng.uniform(0, 40)
        label = rng.choice(["A", "A", "B", "C"])  # C: no GT, dropped
        rows.append((vid, label, start, start + rng.uniform(1, 6), rng.integers(0, 6) / 5))
    dets = detections(rows)
    thresholds = tiou_preset("thumos")
    ref = reference_evaluate(gt, "validation", dets, thresholds)
    res = evaluate_detections(gt, "validation", dets, thresholds)
    np.testing.assert_allclose(res.ap, ref["ap"], rtol=0, atol=1e-12)
