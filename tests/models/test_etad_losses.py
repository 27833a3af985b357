"""ETAD targets and losses on hand-built cases (values from the formulas of
sming256/ETAD lib/loss/model_loss.py)."""

from __future__ import annotations

import math

import pytest
import torch

from tal_bench.models.etad_losses import (
    EPS,
    assign_gt,
    balanced_bce,
    boundary_targets,
    iou_regression_loss,
    regression_targets,
    sampled_bce,
    stage_loss,
    tem_targets,
)
from tal_bench.models.etad_modules import refine_anchors


def _nll(p: float) -> float:
    return -math.log(p + EPS)


def _smooth_l1(x: float) -> float:
    return 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5


def test_tem_targets_ioa() -> None:
    # GT [2.0, 6.2] in edge units: start region [0.5, 3.5], end region [4.7, 7.7].
    tgt = tem_targets([torch.tensor([[2.0, 6.2]])], 10)
    assert tgt[0, 0].tolist() == pytest.approx([0.5, 1, 1, 0.5, 0, 0, 0, 0, 0, 0], abs=1e-6)
    assert tgt[0, 1].tolist() == pytest.approx([0, 0, 0, 0, 0.3, 1, 1, 0.7, 0, 0], abs=1e-6)
    # The max over GT, and an empty video gives zeros.
    two = tem_targets([torch.tensor([[2.0, 6.2], [2.4, 9.0]]), torch.zeros(0, 2)], 10)
    assert two[0, 0, 3].item() == pytest.approx(0.9)  # [3, 4] ∩ [0.9, 3.9]
    assert two[1].abs().sum() == 0


def test_balanced_bce() -> None:
    p = torch.tensor([0.8, 0.6, 0.3, 0.1])
    tgt = torch.tensor([1.0, 0.7, 0.2, 0.0])
    want = 0.5 * (_nll(0.8) + _nll(0.6)) / 2 + 0.5 * (_nll(0.7) + _nll(0.9)) / 2
    assert balanced_bce(p, tgt).item() == pytest.approx(want, rel=1e-6)
    no_pos = (_nll(0.7) + _nll(0.9)) / 2
    assert balanced_bce(p[2:], tgt[2:]).item() == pytest.approx(no_pos, rel=1e-6)


def test_sampled_bce_balanced_case_keeps_everything() -> None:
    p = torch.tensor([0.9, 0.7, 0.2, 0.4])
    pos = torch.tensor([True, True, False, False])  # N_pos = N_neg -> keep prob 1
    want = (_nll(0.9) + _nll(0.7) + _nll(0.8) + _nll(0.6)) / 4
    assert sampled_bce(p, pos).item() == pytest.approx(want, rel=1e-6)
    none = torch.zeros(4, dtype=torch.bool)
    want_none = (_nll(0.1) + _nll(0.3) + _nll(0.8) + _nll(0.6)) / 4
    assert sampled_bce(p, none).item() == pytest.approx(want_none, rel=1e-6)


def test_sampled_bce_keeps_about_one_negative_per_positive() -> None:
    # With p = 0.5 everywhere every kept term is log 2, so the loss is log 2 whatever is kept;
    # recover the kept count from a loss on distinct values instead.
    pos = torch.zeros(1000, dtype=torch.bool)
    pos[:100] = True
    p = torch.full((1000,), 0.5)
    p[100:] = 1.0 - math.exp(-1.0)  # every kept negative contributes exactly 1 (up to EPS)
    gen = torch.Generator().manual_seed(0)
    loss = sampled_bce(p, pos, gen).item()
    # loss = (100 log 2 + k) / (100 + k)  ->  k = 100 (loss - log 2) / (1 - loss)
    kept = 100 * (loss - math.log(2)) / (1 - loss)
    assert 60 < kept < 140  # Binomial(900, 1/9): mean 100, sd 9.4


def test_iou_regression_bands() -> None:
    giou = torch.tensor([0.9, 0.8, 0.5, 0.4, 0.1, 0.05])  # 2 high, 2 mid, 2 low: keep all
    p = torch.tensor([0.7, 0.7, 0.7, 0.7, 0.7, 0.7])
    want = sum((0.7 - g) ** 2 for g in giou.tolist()) / 6
    assert iou_regression_loss(p, giou).item() == pytest.approx(want, rel=1e-6)
    low_only = torch.tensor([0.2, 0.1])  # no high band: plain mean
    assert iou_regression_loss(p[:2], low_only).item() == pytest.approx(
        ((0.5**2) + (0.6**2)) / 2, rel=1e-6
    )


def test_iou_regression_subsamples_the_low_band() -> None:
    giou = torch.cat([torch.full((10,), 0.95), torch.zeros(990)])
    p = torch.cat([torch.full((10,), 0.95), torch.ones(990)])  # high error 0, low error 1
    loss = iou_regression_loss(p, giou, torch.Generator().manual_seed(1)).item()
    kept_low = 10 * loss / (1 - loss)  # loss = k / (10 + k)
    assert 2 < kept_low < 25  # Binomial(990, 10/990): mean 10


def test_assign_gt_picks_best_iou_and_flags_empty_videos() -> None:
    anchors = torch.tensor([[0.0, 4.0], [9.0, 13.0], [0.0, 2.0]])
    batch = torch.tensor([0, 0, 1])
    gt, has = assign_gt(
        anchors, batch, [torch.tensor([[1.0, 4.0], [10.0, 14.0]]), torch.zeros(0, 2)]
    )
    assert gt[:2].tolist() == [[1.0, 4.0], [10.0, 14.0]]
    assert has.tolist() == [True, True, False]


def test_regression_targets_and_refinement_roundtrip() -> None:
    anchors = torch.tensor([[10.0, 20.0], [4.0, 6.0]])
    gt = torch.tensor([[11.0, 18.0], [3.0, 9.0]])
    tgt = regression_targets(anchors, gt, scale=128.0)
    assert tgt[0].tolist() == pytest.approx([0.1, -0.2, -0.05, math.log(0.7 + 1e-6)], rel=1e-5)
    assert tgt[1].tolist() == pytest.approx([-0.5, 1.5, 0.5, math.log(3 + 1e-6)], rel=1e-5)
    # Both decodings of the exact targets land on the GT, so their mean does too.
    assert torch.allclose(refine_anchors(anchors, tgt), gt, atol=1e-4)


def test_boundary_targets_floor_and_clamp() -> None:
    tem = torch.arange(2 * 2 * 5, dtype=torch.float32).view(2, 2, 5)  # (B, 2, T)
    anchors = torch.tensor([[1.7, 3.2], [-0.4, 9.0]])
    got = boundary_targets(anchors, torch.tensor([0, 1]), tem)
    assert got.tolist() == [[1.0, 8.0], [10.0, 19.0]]  # floor 1 / 3; clamp 0 / 4


def test_stage_loss_hand_built() -> None:
    gt = torch.tensor([[10.0, 20.0]]).expand(4, 2)
    # gIoU: 1, 10/10.5, 0, 5/20 -> cls positives {0, 1} vs negatives {2, 3} (all kept);
    # IoU-reg high {0, 1}, mid {}, low {2, 3} (all kept); regression positives (> 0.7) {0, 1}.
    anchors = torch.tensor([[10.0, 20.0], [10.0, 20.5], [0.0, 8.0], [15.0, 30.0]])
    giou = [1.0, 10 / 10.5, 0.0, 0.25]
    iou_pred = torch.tensor([[0.9, 0.8], [0.6, 0.5], [0.3, 0.2], [0.2, 0.4]])
    reg_pred = torch.tensor(
        [
            [0.1, -0.2, 0.5, 2.0, 0.7, 0.6],
            [0.0, 0.3, -1.5, 0.1, 0.8, 0.3],
            [0.4, 0.4, 0.4, 0.4, 0.2, 0.9],
            [9.0, 9.0, 9.0, 9.0, 0.1, 0.2],
        ]
    )
    bnd_tgt = torch.tensor([[0.9, 0.8], [0.9, 0.2], [0.1, 0.6], [0.0, 0.0]])
    out = stage_loss(anchors, gt, torch.ones(4, dtype=torch.bool), iou_pred, reg_pred, bnd_tgt, 0.7,
                     128.0)  # fmt: skip
    cls = (_nll(0.9) + _nll(0.6) + _nll(0.7) + _nll(0.8)) / 4
    reg = sum((p - g) ** 2 for p, g in zip([0.8, 0.5, 0.2, 0.4], giou, strict=True)) / 4
    t1 = [0.0, -0.5 / 10.5, -0.25 / 10.5, math.log(10 / 10.5 + 1e-6)]  # targets of anchor 1
    t0 = [0.0, 0.0, 0.0, math.log(1 + 1e-6)]
    bnd_reg = sum(
        (_smooth_l1(reg_pred[0, j].item() - t0[j]) + _smooth_l1(reg_pred[1, j].item() - t1[j])) / 2
        for j in range(4)
    )
    bce_s = (_nll(0.7) + _nll(0.8) + _nll(0.8) + _nll(0.9)) / 4  # pos {0, 1}, neg {2, 3}
    bce_e = (_nll(0.6) + _nll(0.9) + _nll(0.7) + _nll(0.8)) / 4  # pos {0, 2}, neg {1, 3}
    assert out["iou_cls"].item() == pytest.approx(cls, rel=1e-5)
    assert out["iou_reg"].item() == pytest.approx(reg, rel=1e-5)
    assert out["bnd_reg"].item() == pytest.approx(bnd_reg, rel=1e-5)
    assert out["bnd_cls"].item() == pytest.approx(bce_s + bce_e, rel=1e-5)
    total = cls + 5 * reg + 10 * bnd_reg + 0.5 * (bce_s + bce_e)
    assert out["total"].item() == pytest.approx(total, rel=1e-5)
