"""Gaussian soft-NMS on hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tal_bench.models.ops.soft_nms import soft_nms_groups

# A = [0, 10] 0.9; B = [5, 15] 0.8 (tIoU(A, B) = 5/15); C = [20, 30] 0.5 (disjoint);
# D = [1, 10] 0.85 (tIoU(A, D) = 9/10, tIoU(B, D) = 5/14).
SEGS = torch.tensor([[0.0, 10.0], [5.0, 15.0], [20.0, 30.0], [1.0, 10.0]])
SCORES = torch.tensor([0.9, 0.8, 0.5, 0.85])


def soft_nms(segs: torch.Tensor, scores: torch.Tensor, **params: float) -> tuple:
    """One group: ``(keep, kept_scores)`` numpy arrays."""
    ((keep, kept),) = soft_nms_groups([(segs.double().numpy(), scores.double().numpy())], **params)
    return keep, kept


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
    assert len(keep) == 0 and len(scores) == 0
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


def _dense_soft_nms(groups, sigma, max_keep, iou_threshold, min_score):
    """The previous loop, kept as the reference: every segment decays at every pick (by exactly
    1 where it does not overlap), the score array masked anew each time."""
    n_groups = len(groups)
    sizes = np.array([len(sc) for _, sc in groups], dtype=np.int64)
    width = int(sizes.max()) if n_groups else 0
    seg, work = np.zeros((n_groups, width, 2)), np.zeros((n_groups, width))
    alive = np.arange(width)[None, :] < sizes[:, None]
    for w, (s_w, sc_w) in enumerate(groups):
        seg[w, : len(sc_w)], work[w, : len(sc_w)] = np.asarray(s_w).reshape(-1, 2), sc_w
    lengths = np.clip(seg[..., 1] - seg[..., 0], 0.0, None)
    rows = np.arange(n_groups)
    picks = np.full((n_groups, min(max_keep, width)), -1, dtype=np.int64)
    picked = np.zeros(picks.shape)
    active = sizes > 0
    for step in range(picks.shape[1]):
        masked = np.where(alive, work, -np.inf)
        best = masked.argmax(axis=1)
        best_score = masked[rows, best]
        active &= alive[rows, best] & (best_score > min_score)
        if not active.any():
            break
        picks[active, step], picked[active, step] = best[active], best_score[active]
        alive[rows[active], best[active]] = False
        b_seg = seg[rows, best]
        inter = np.clip(
            np.minimum(seg[..., 1], b_seg[:, 1:2]) - np.maximum(seg[..., 0], b_seg[:, 0:1]), 0, None
        )
        union = lengths + lengths[rows, best][:, None] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        decay = np.where(iou > iou_threshold, np.exp(-(iou * iou) / sigma), 1.0)
        work *= np.where(active[:, None], decay, 1.0)
    return [(picks[w][picks[w] >= 0], picked[w][picks[w] >= 0]) for w in range(n_groups)]


@pytest.mark.parametrize("params", [(0.3, 100, 0.0, -math.inf), (0.5, 9, 0.2, 0.1)])
def test_sparse_decay_is_bit_identical_to_the_dense_loop(params) -> None:
    # Only overlapping live segments decay now; every kept index and float must be as before,
    # on ETAD-like groups (hundreds of short proposals, continuous scores, some exact ties).
    rng = np.random.default_rng(1)
    groups = []
    for g in range(40):
        n = int(rng.integers(0, 400))
        start = rng.uniform(-0.5, 60, n)
        segs = np.stack([start, start + rng.uniform(0, 17, n)], axis=1)
        segs[: n // 20, 1] = segs[: n // 20, 0]  # empty segments: zero length, tIoU 0
        scores = rng.uniform(0, 1, n) if g % 3 else np.round(rng.uniform(0, 1, n), 2)
        groups.append((segs, scores))
    got = soft_nms_groups(groups, *params)
    for (keep, kept), (ref_keep, ref_kept) in zip(
        got, _dense_soft_nms(groups, *params), strict=True
    ):
        assert np.array_equal(keep, ref_keep) and np.array_equal(kept, ref_kept)
