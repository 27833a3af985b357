"""Gaussian soft-NMS on hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tal_bench.models.ops.soft_nms import segment_iou, soft_nms, soft_nms_groups

# A = [0, 10] 0.9; B = [5, 15] 0.8 (tIoU(A, B) = 5/15); C = [20, 30] 0.5 (disjoint);
# D = [1, 10] 0.85 (tIoU(A, D) = 9/10, tIoU(B, D) = 5/14).
SEGS = torch.tensor([[0.0, 10.0], [5.0, 15.0], [20.0, 30.0], [1.0, 10.0]])
SCORES = torch.tensor([0.9, 0.8, 0.5, 0.85])


def test_segment_iou() -> None:
    got = segment_iou(SEGS[0], SEGS)
    assert got.tolist() == pytest.approx([1.0, 1 / 3, 0.0, 0.9])


def test_hand_worked_gaussian_decay() -> None:
    sigma = 0.5
    keep, scores = soft_nms(SEGS, SCORES, sigma=sigma, max_keep=10)
    b_after_a = 0.8 * math.exp(-((1 / 3) ** 2) / sigma)  # 0.6406
    d_after_a = 0.85 * math.exp(-(0.9**2) / sigma)  # 0.1682
    d_after_b = d_after_a * math.exp(-((5 / 14) ** 2) / sigma)  # 0.1303
    assert keep.tolist() == [0, 1, 2, 3]
    assert scores.tolist() == pytest.approx([0.9, b_after_a, 0.5, d_after_b], rel=1e-6)


def test_max_keep_and_threshold() -> None:
    keep, scores = soft_nms(SEGS, SCORES, sigma=0.5, max_keep=2)
    assert keep.tolist() == [0, 1]
    # Only overlaps above 0.5 decay: B (1/3) keeps 0.8, D (0.9) decays.
    keep, scores = soft_nms(SEGS, SCORES, sigma=0.5, max_keep=4, iou_threshold=0.5)
    assert keep.tolist() == [0, 1, 2, 3]
    assert scores[1].item() == pytest.approx(0.8)
    assert scores[3].item() == pytest.approx(0.85 * math.exp(-(0.81) / 0.5), rel=1e-6)


def test_empty_and_min_score() -> None:
    keep, scores = soft_nms(torch.zeros(0, 2), torch.zeros(0), sigma=0.3, max_keep=5)
    assert keep.numel() == 0 and scores.numel() == 0
    keep, _ = soft_nms(SEGS, SCORES, sigma=0.5, max_keep=10, min_score=0.55)
    assert keep.tolist() == [0, 1]
    with pytest.raises(ValueError, match="sigma"):
        soft_nms(SEGS, SCORES, sigma=0.0, max_keep=1)


def _plain_soft_nms(segs, scores, sigma, max_keep, iou_threshold, min_score):
    """Pick-by-pick reference in plain Python floats (independent of the numpy loop)."""
    work = [float(s) for s in scores]
    alive = [True] * len(work)
    keep, kept = [], []
    for _ in range(min(max_keep, len(work))):
        cands = [i for i in range(len(work)) if alive[i]]
        if not cands:
            break
        best = max(cands, key=lambda i: (work[i], -i))  # highest score, first index on ties
        if work[best] <= min_score:
            break
        keep.append(best)
        kept.append(work[best])
        alive[best] = False
        s0, e0 = segs[best]
        for i in range(len(work)):
            s1, e1 = segs[i]
            inter = max(0.0, min(e0, e1) - max(s0, s1))
            union = max(0.0, e0 - s0) + max(0.0, e1 - s1) - inter
            iou = inter / union if union > 0 else 0.0
            if iou > iou_threshold:
                work[i] *= math.exp(-(iou * iou) / sigma)
    return keep, kept


def test_groups_equal_each_group_alone() -> None:
    # Groups of very different sizes (empty, one, ties, > GROUP_CHUNK groups) run side by side
    # must each give exactly the picks of the plain reference.
    rng = np.random.default_rng(0)
    groups, params = [], (0.4, 7, 0.1, 0.05)
    for g in range(150):
        n = int(rng.integers(0, 40)) if g % 10 else 0
        start = rng.uniform(0, 50, n)
        segs = np.stack([start, start + rng.uniform(0, 8, n)], axis=1)
        scores = np.round(rng.uniform(0, 1, n), 1)  # coarse: many exact ties
        groups.append((segs, scores))
    got = soft_nms_groups(groups, *params)
    for (segs, scores), (keep, kept) in zip(groups, got, strict=True):
        ref_keep, ref_kept = _plain_soft_nms(segs.tolist(), scores.tolist(), *params)
        assert keep.tolist() == ref_keep
        assert kept.tolist() == pytest.approx(ref_kept, rel=1e-12, abs=1e-15)
