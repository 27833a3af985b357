"""Gaussian soft-NMS on hand-worked cases."""

from __future__ import annotations

import math

import pytest
import torch

from tal_bench.models.ops.soft_nms import segment_iou, soft_nms

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
