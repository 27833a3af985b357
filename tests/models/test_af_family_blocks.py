"""Shared blocks of the ActionFormer family, each against values worked out by hand or a plain
reference computation: layers, local attention, losses, label assignment (ActionFormer's and
TemporalMaxer's), Trident decoding, post-processing, points and the padding rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tal_bench.errors import TalBenchError
from tal_bench.models import create_model
from tal_bench.models.actionformer import ActionFormerConfig, local_attention
from tal_bench.models.common.assign import assign_min_cost, assign_shortest
from tal_bench.models.common.layers import ChannelLayerNorm, MaskedConv1d
from tal_bench.models.common.losses import ctr_diou_loss_1d, ctr_iou_1d, sigmoid_focal_loss
from tal_bench.models.common.points import pyramid_points
from tal_bench.models.common.postprocess import NmsSettings, nms_videos, seg_voting
from tal_bench.models.common.pyramid import padded_length
from tal_bench.models.tridet import SGPBlock, TriDetConfig, boundary_windows, trident_offsets
from tal_bench.pipelines.resolve import resolve_run_config

# ------------------------------------------------------------------------------------- layers


def test_channel_layer_norm_is_layer_norm_over_channels():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 5)  # (B, C, T)
    ln = ChannelLayerNorm(6)
    with torch.no_grad():
        ln.weight.copy_(torch.arange(1.0, 7.0))
        ln.bias.fill_(0.5)
    mean = x.mean(dim=1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=1, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * torch.arange(1.0, 7.0)[:, None] + 0.5
    assert torch.allclose(ln(x), expected, atol=1e-5)


def test_masked_conv_zeroes_padding_and_downsamples_the_mask():
    conv = MaskedConv1d(1, 1, 3, stride=2, bias=False)
    with torch.no_grad():
        conv.conv.weight.fill_(1.0)
    x = torch.ones(1, 1, 8)
    mask = torch.tensor([[True] * 5 + [False] * 3])
    out, out_mask = conv(x, mask)
    assert out_mask.tolist() == [[True, True, True, False]]  # steps 0, 2, 4, 6
    assert out.tolist() == [[[2.0, 3.0, 3.0, 0.0]]]  # 3-tap sums, zero padding at t = -1


def test_local_attention_equals_dense_attention_in_a_band():
    torch.manual_seed(1)
    b, heads, d, t, w = 2, 2, 4, 12, 3
    q, k, v = (torch.randn(b, heads * d, t) for _ in range(3))
    kv_mask = torch.ones(b, t, dtype=torch.bool)
    kv_mask[1, 8:] = False
    out = local_attention(q, k, v, kv_mask, heads, w)
    # reference: full attention per head, keys farther than w steps or padded masked out
    qh, kh, vh = (x.view(b, heads, d, t).transpose(2, 3) for x in (q, k, v))  # (B, H, T, d)
    scores = qh @ kh.transpose(2, 3) / math.sqrt(d)  # (B, H, T, T)
    pos = torch.arange(t)
    allowed = ((pos[:, None] - pos[None, :]).abs() <= w)[None, None] & kv_mask[:, None, None, :]
    probs = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    probs = torch.nan_to_num(probs)  # queries with no valid key in reach attend to nothing
    expected = (probs @ vh).transpose(2, 3).reshape(b, heads * d, t)
    assert torch.allclose(out, expected, atol=1e-5)
    # step 11 of item 1 reaches keys 8..11 (and beyond the end), all padded: output 0
    assert not out[1, :, 11].any() and out[1, :, 10].abs().sum() > 0


def test_sgp_block_kernel_sizes_and_zero_init():
    blk = SGPBlock(32, 1, 2, k=5.0, mlp_dim=48, droppath=0.1, init_std=0.0, gn_groups=16)
    # window branch: conv_w has kernel w = 1, conv_kw round((1 + 1) * 5) = 10 -> odd 11
    assert blk.convw.kernel_size == (1,) and blk.convkw.kernel_size == (11,)
    assert all(
        not c.weight.detach().any() for c in (blk.psi, blk.fc, blk.convw, blk.convkw, blk.global_fc)
    )
    x, mask = torch.randn(1, 32, 16), torch.ones(1, 16, dtype=torch.bool)
    out, out_mask = blk(x, mask)
    assert out.shape == (1, 32, 8) and out_mask.shape == (1, 8)


# ------------------------------------------------------------------------------------- losses


def test_sigmoid_focal_loss_hand_values():
    logits = torch.tensor([0.0, 0.0, 2.0])
    targets = torch.tensor([1.0, 0.0, 1.0])
    p2 = 1 / (1 + math.exp(-2.0))
    expected = [
        0.25 * 0.5**2 * math.log(2),  # alpha_t (1 - p_t)^2 BCE at p = 0.5
        0.75 * 0.5**2 * math.log(2),
        0.25 * (1 - p2) ** 2 * -math.log(p2),
    ]
    assert sigmoid_focal_loss(logits, targets).tolist() == pytest.approx(expected, rel=1e-6)


def test_ctr_iou_and_diou_hand_values():
    pred = torch.tensor([[1.0, 3.0], [2.0, 2.0], [0.0, 1.0]])
    target = torch.tensor([[2.0, 2.0], [2.0, 2.0], [2.0, 0.0]])
    # row 0: inter 1 + 2 = 3, union 4 + 4 - 3 = 5 -> IoU 0.6; enclosing 2 + 3 = 5,
    #        centres +1 and 0 -> (1 / 5)^2 = 0.04
    # row 2: no overlap, enclosing 3, centres +0.5 and -1 -> (1.5 / 3)^2 = 0.25
    assert ctr_iou_1d(pred, target).tolist() == pytest.approx([0.6, 1.0, 0.0])
    assert ctr_diou_loss_1d(pred, target).tolist() == pytest.approx([0.44, 0.0, 1.25])


# --------------------------------------------------------------------------------- assignment


def _points() -> torch.Tensor:
    # level 0: stride 1, steps 0..7, range [0, 4]; level 1: stride 2, steps 0..3, range [4, 8]
    return pyramid_points([8, 4], (1, 2), ((0.0, 4.0), (4.0, 8.0)), 8, 1.0)


GT = torch.tensor([[2.0, 5.0], [1.0, 9.0], [2.0, 5.0]])  # A, B and a twin of A
LABELS = torch.tensor([0, 1, 2])


def test_assign_shortest_small_example():
    cls, reg = assign_shortest(_points(), GT, LABELS, 3, radius=1.5)
    # level 0: A's centre region (3.5 +- 1.5, within [2, 5]) holds t = 3, 4; B's (5 +- 1.5)
    # holds 4, 5, 6 but only t = 5 has max distance 4 <= 4. t = 3, 4 -> A and its twin
    # (multi-hot 0 and 2), t = 5 -> B. Level 1: B's region 5 +- 3 within [1, 9] holds t = 4, 6
    # (max distance 5 in [4, 8]); A's t = 4 has max distance 2 < 4.
    positives = {i: cls[i].nonzero().flatten().tolist() for i in range(12) if cls[i].any()}
    assert positives == {3: [0, 2], 4: [0, 2], 5: [1], 10: [1], 11: [1]}
    assert reg[3].tolist() == [1.0, 2.0] and reg[4].tolist() == [2.0, 1.0]
    assert reg[5].tolist() == [4.0, 4.0]
    assert reg[10].tolist() == [1.5, 2.5] and reg[11].tolist() == [2.5, 1.5]  # in strides


def test_assign_min_cost_regresses_the_cheaper_gt():
    points = _points()
    logits = torch.zeros(12, 3)  # equal focal cost for every class
    pred = torch.ones(12, 2)
    pred[4] = torch.tensor([3.0, 5.0])  # point 4 predicts B exactly, though A is shorter
    cls, reg = assign_min_cost(points, GT, LABELS, 3, 1.5, logits, pred, 1.0, 2.0)
    short_cls, short_reg = assign_shortest(points, GT, LABELS, 3, radius=1.5)
    assert torch.equal(cls, short_cls)  # positives and classes as ActionFormer's
    assert reg[4].tolist() == [3.0, 5.0]  # B: DIoU cost 0 < A's 2 x 0.66
    # point 3 predicts (1, 1): A (1, 2) costs less than B (2, 6)
    assert reg[3].tolist() == short_reg[3].tolist() == [1.0, 2.0]


def test_assignment_without_gt_is_all_negative():
    cls, reg = assign_shortest(_points(), torch.zeros(0, 2), torch.zeros(0), 3, radius=1.5)
    assert cls.shape == (12, 3) and not cls.any() and not reg.any()


# ------------------------------------------------------------------------------------- TriDet


def test_trident_decoding_hand_values():
    nb = 16
    flat = trident_offsets(
        torch.zeros(1, nb + 1), torch.zeros(1, nb + 1), torch.zeros(1, 2, nb + 1)
    )
    assert flat[0].tolist() == pytest.approx([8.0, 8.0])  # uniform over 0..16
    start, end = torch.zeros(1, nb + 1), torch.zeros(1, nb + 1)
    start[0, 13] = 100.0  # bin j of the start window is step t - 16 + j: distance 3
    end[0, 5] = 100.0  # bin j of the end window is step t + j: distance 5
    decoded = trident_offsets(start, end, torch.zeros(1, 2, nb + 1))
    assert decoded[0].tolist() == pytest.approx([3.0, 5.0])


def test_boundary_windows_read_neighbours_and_zero_beyond_the_ends():
    logits = torch.arange(1.0, 6.0)  # steps 0..4
    start = boundary_windows(logits, 2, "start")  # steps t - 2 .. t
    end = boundary_windows(logits, 2, "end")  # steps t .. t + 2
    assert start[0].tolist() == [0.0, 0.0, 1.0] and start[4].tolist() == [3.0, 4.0, 5.0]
    assert end[0].tolist() == [1.0, 2.0, 3.0] and end[4].tolist() == [5.0, 0.0, 0.0]


# ------------------------------------------------------------------------------ post-processing


def test_multiclass_soft_nms_decays_within_a_class_only():
    segs = np.array([[0.0, 10.0], [5.0, 10.0], [0.0, 10.0]])
    scores = np.array([0.9, 0.8, 0.7])
    labels = np.array([0, 0, 1])
    nms = NmsSettings(sigma=0.5, min_score=0.001, max_seg_num=10, multiclass=True, voting_thresh=0)
    (det,) = nms_videos([(segs, scores, labels)], nms)
    # [5, 10] has IoU 0.5 with [0, 10] of its class: 0.8 exp(-0.25 / 0.5); class 1 untouched
    assert det.scores.tolist() == pytest.approx([0.9, 0.7, 0.8 * math.exp(-0.5)], rel=1e-6)
    assert det.labels.tolist() == [0, 1, 0]
    capped = nms_videos([(segs, scores, labels)], NmsSettings(0.5, 0.001, 2, True, 0))[0]
    assert capped.scores.shape == (2,)


def test_min_score_drops_decayed_segments():
    segs = np.array([[0.0, 10.0], [0.0, 9.0]])
    nms = NmsSettings(sigma=0.5, min_score=0.5, max_seg_num=10, multiclass=True, voting_thresh=0)
    (det,) = nms_videos([(segs, np.array([0.9, 0.8]), np.array([0, 0]))], nms)
    assert det.scores.tolist() == pytest.approx([0.9])  # 0.8 exp(-0.81 / 0.5) = 0.16 < 0.5


def test_seg_voting_weights_by_score_times_iou():
    picked = np.array([[0.0, 10.0]])
    segs = np.array([[0.0, 10.0], [2.0, 10.0], [20.0, 30.0]])
    scores = np.array([0.9, 0.5, 0.8])
    # voters with IoU >= 0.7: itself (IoU 1, weight 0.9) and [2, 10] (IoU 0.8, weight 0.4)
    refined = seg_voting(picked, segs, scores, 0.7)
    assert refined[0].tolist() == pytest.approx([0.4 * 2 / 1.3, 10.0])


# ------------------------------------------------------------------ points and the padding rule


def test_padding_rule():
    # ActionFormer (max_div_factor 32 x 18 = 576) and TriDet / TemporalMaxer (32)
    assert padded_length(100, 2304, 576, training=False) == 2304
    assert padded_length(2304, 2304, 576, training=False) == 2304
    assert padded_length(2305, 2304, 576, training=False) == 2880
    assert padded_length(30000, 2304, 576, training=False) == 30528
    assert padded_length(30000, 2304, 32, training=False) == 30016
    assert padded_length(100, 2304, 576, training=True) == 2304
    with pytest.raises(TalBenchError, match="data.max_len"):
        padded_length(2305, 2304, 576, training=True)


def test_forward_dense_follows_the_padding_rule_and_the_point_buffer():
    cfg = ActionFormerConfig(max_seq_len=64, n_mha_win_size=3, embd_dim=16, head_dim=16)
    model = create_model("actionformer", cfg, 8, 3).eval()  # max_div_factor 32 x 2 = 64
    assert model.max_div_factor == 64
    with torch.no_grad():
        out = model.forward_dense(torch.randn(1, 8, 100), torch.ones(1, 100, dtype=torch.bool))
    assert [m.shape[1] for m in out["masks"]] == [128, 64, 32, 16, 8, 4]
    assert int(out["masks"][0].sum()) == 100 and out["points"].shape == (252, 4)
    with pytest.raises(TalBenchError, match="max_buffer_len_factor >= 7.00"):
        model.forward_dense(torch.randn(1, 8, 400), torch.ones(1, 400, dtype=torch.bool))


def test_points_carry_position_range_and_stride():
    pts = _points()
    assert pts[:8, 0].tolist() == list(range(8)) and pts[8:, 0].tolist() == [0.0, 2.0, 4.0, 6.0]
    assert pts[9].tolist() == [2.0, 4.0, 8.0, 2.0]


def test_config_refuses_a_max_seq_len_off_the_divisible_stride():
    with pytest.raises(TalBenchError, match="multiple of 576"):
        create_model("actionformer", ActionFormerConfig(max_seq_len=1000), 8, 3)


# ------------------------------------------------------------------------------ detector losses


def _one_level_out(reg_channels: int) -> dict:
    """A dense output of one level with 4 points and 2 classes, all logits 0 (p = 0.5)."""
    out = {
        "cls": [torch.zeros(1, 2, 4)],
        "reg": [torch.ones(1, reg_channels, 4)],
        "masks": [torch.ones(1, 4, dtype=torch.bool)],
    }
    cls_t = torch.zeros(1, 4, 2)
    cls_t[0, 1, 0] = 1.0  # point 1 is a positive of class 0
    reg_t = torch.zeros(1, 4, 2)
    reg_t[0, 1] = torch.tensor([1.0, 3.0])
    return out, cls_t, reg_t


def test_actionformer_losses_hand_values():
    model = create_model("actionformer", ActionFormerConfig(embd_dim=16, head_dim=16), 8, 2)
    out, cls_t, reg_t = _one_level_out(2)
    losses = model.losses(out, cls_t, reg_t)
    norm = 0.9 * 100 + 0.1 * 1  # running positive count after one positive
    focal = (0.25 + 7 * 0.75) * 0.25 * math.log(2)  # one positive, seven negatives at p = 0.5
    # DIoU of (1, 1) against (1, 3): IoU 2 / 4, enclosing 4, centres 0 and +1
    assert losses["cls_loss"].item() == pytest.approx(focal / norm, rel=1e-6)
    assert losses["reg_loss"].item() == pytest.approx((1 - 0.5 + 0.25**2) / norm, rel=1e-6)
    assert losses["loss"].item() == pytest.approx((focal + 0.5625) / norm, rel=1e-6)
    assert model.loss_normalizer == pytest.approx(norm)


def test_tridet_losses_weight_the_positive_focal_term_by_iou():
    model = create_model("tridet", TriDetConfig(embd_dim=16, head_dim=16, sgp_mlp_dim=24), 8, 2)
    out, cls_t, reg_t = _one_level_out(34)
    out["reg"] = [torch.zeros(1, 34, 4)]  # uniform bins: both distances decode to 8
    out["start"], out["end"] = [torch.zeros(1, 2, 4)], [torch.zeros(1, 2, 4)]
    losses = model.losses(out, cls_t, reg_t)
    norm = 90.1
    iou = (1 + 3) / (16 + 4 - 4)  # (8, 8) against (1, 3)
    focal = (0.25 * iou**0.2 + 7 * 0.75) * 0.25 * math.log(2)
    assert losses["cls_loss"].item() == pytest.approx(focal / norm, rel=1e-6)
    # DIoU: 1 - 0.25 + (centre gap 1 / enclosing 16)^2
    assert losses["reg_loss"].item() == pytest.approx((0.75 + 1 / 256) / norm, rel=1e-6)


def test_optimizer_groups_decay_only_conv_weights():
    model = create_model("tridet", TriDetConfig(embd_dim=16, head_dim=16, sgp_mlp_dim=24), 8, 2)
    decayed, plain = model.optimizer_groups()
    # the official rule by name: "<conv module>.weight" decays; biases, LayerNorm / GroupNorm
    # weights, Scale and drop-path scales do not
    modules = dict(model.named_modules())
    names = {id(p): n for n, p in model.named_parameters()}
    expect = {
        n for n in names.values() if isinstance(modules[n.rpartition(".")[0]], torch.nn.Conv1d)
    }
    expect = {n for n in expect if n.endswith(".weight")}
    assert {names[id(p)] for p in decayed["params"]} == expect
    assert plain["wd_mult"] == 0.0 and "wd_mult" not in decayed
    others = {names[id(p)] for p in plain["params"]}
    assert others.isdisjoint(expect) and len(others) + len(expect) == len(names)
    assert any(n.endswith("scales.0.scale") for n in others)  # a regression Scale
    assert any(n.endswith("drop_out.scale") for n in others)  # an affine drop-path scale


def test_resolving_refuses_items_longer_than_max_seq_len():
    with pytest.raises(TalBenchError, match=r"data.max_len \(512\) exceeds model.max_seq_len"):
        resolve_run_config("actionformer", "cpu", ["data.max_len=512"])
    assert resolve_run_config("temporalmaxer", "cpu").data.mode == "full"  # native mode
