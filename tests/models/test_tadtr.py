"""TadTR: size and MACs against the official model, the loss against the official criterion,
masking, prediction, optimizer groups, learning and determinism."""

from __future__ import annotations

import math

import pytest
import torch
from analytic_macs import tadtr_macs
from modelhelpers import fit_steps, one_thread, window_item  # noqa: F401  (fixture)

from tal_bench.errors import TalBenchError
from tal_bench.models import create_model, get_spec
from tal_bench.models.tadtr import TadtrConfig, build
from tal_bench.models.tadtr_losses import LossWeights, MatchCosts, hungarian_match, set_criterion
from tal_bench.models.tadtr_modules import DeformAttn1d, refine, sine_position_embedding
from tal_bench.pipelines.resolve import resolve_run_config
from tal_bench.profiling.counters import (
    MethodAsModule,
    count_macs_flop_counter,
    count_macs_fvcore,
)
from tal_bench.train.optim import make_optimizer

TINY = dict(hidden_dim=16, heads=2, enc_layers=2, dec_layers=2, ffn_dim=32, num_queries=6,
            gn_groups=4, roi_bins=4)  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


def _item(length: int = 24, valid: int | None = None, seed: int = 0) -> dict:
    return window_item(length, [[2.0, 6.0], [10.0, 15.0]], [0, 2], valid=valid, seed=seed)


def _official_params(c_in: int, k: int = 20) -> int:
    """The official model's parameters, layer by layer (d 256, FFN 1024, 8 heads x 4 points,
    4 + 4 layers, 40 queries, 16 RoI bins)."""
    d, f, hp, q, bins = 256, 1024, 8 * 4, 40, 16

    def lin(i: int, o: int) -> int:
        return i * o + o

    deform = 2 * lin(d, hp) + 2 * lin(d, d)  # offsets, weights, value and output projections
    norm = 2 * d
    ffn = lin(d, f) + lin(f, d)
    encoder = 4 * (deform + norm + ffn + norm)
    mha = 3 * d * d + 3 * d + lin(d, d)
    decoder = 4 * (mha + norm + deform + norm + ffn + norm)
    input_proj = c_in * d + d + 2 * d  # 1x1 conv + GroupNorm
    heads = 4 * (lin(d, k) + 2 * lin(d, d) + lin(d, 2))  # class head + segment MLP per layer
    actionness = lin(bins * d, d) + lin(d, d) + lin(d, 1)
    return input_proj + d + encoder + decoder + q * 2 * d + lin(d, 1) + heads + actionness


def test_official_model_has_8_66_m_parameters() -> None:
    model = create_model("tadtr", resolve_run_config("tadtr", "paper").model, 2048, 20)
    n_params = sum(p.numel() for p in model.parameters())
    # 8,661,594 is also what xlliu7/TadTR's own build() gives (counted outside the project)
    assert n_params == _official_params(2048) == 8_661_594
    assert abs(n_params - 8.66e6) / 8.66e6 < 0.01


def _count(model, length: int):
    x = torch.randn(1, 2048, length)
    mask = torch.ones(1, length, dtype=torch.bool)
    primary = count_macs_flop_counter(lambda: model.forward_dense(x, mask))
    return primary, x, mask


@pytest.mark.parametrize("length", [128, 2304])
def test_macs_equal_the_closed_form_and_the_study_numbers(length: int) -> None:
    torch.manual_seed(0)
    cfg = TadtrConfig()
    model = build(cfg, 2048, 20).eval()
    primary, x, mask = _count(model, length)
    closed = tadtr_macs(cfg, 2048, length, 20)
    assert primary.macs == closed["total"]
    assert {"aten::grid_sampler_2d"} <= set(primary.formula_ops)
    # still uncounted, and listed: the actionness RoI-align's interpolation (embedding_bag)
    assert any("embedding_bag" in op for op in primary.zero_ops)
    if length == 128:
        fv = count_macs_fvcore(MethodAsModule(model, "forward_dense"), (x, mask))
        assert fv.macs == closed["total"]
    # The study's numbers (fvcore on the official model) trace only the class and segment
    # outputs, so they leave out the actionness MLP (44.6 M per pass); they also count norms.
    reference = {128: 0.63e9, 2304: 8.25e9}[length]
    without_act = primary.macs - closed["actionness"]
    assert abs(without_act - reference) / reference < 0.02
    assert closed["actionness"] == 40 * (4096 * 256 + 256 * 256 + 256)


@pytest.mark.parametrize(("length", "reference"), [(10000, 35.2e9), (30000, 105.2e9)])
def test_long_single_pass_macs_closed_form(length: int, reference: float) -> None:
    closed = tadtr_macs(TadtrConfig(), 2048, length, 20)
    assert abs(closed["total"] - closed["actionness"] - reference) / reference < 0.02
    assert abs(closed["total"] - reference) / reference < 0.02  # the head is < 0.2 % here


@pytest.mark.slow
def test_macs_at_30000_counted() -> None:
    torch.manual_seed(0)
    model = build(TadtrConfig(), 2048, 20).eval()
    primary, _, _ = _count(model, 30000)
    assert primary.macs == tadtr_macs(TadtrConfig(), 2048, 30000, 20)["total"]


def test_loss_equals_the_official_criterion() -> None:
    # Two decoder layers, one item, 3 queries, 2 classes. Reference: xlliu7/TadTR 983ae14,
    # SetCriterion(losses labels/segments/actionness) with its HungarianMatcher (costs 6/5/2)
    # and weight_dict (2/5/2/4, aux _0), run outside the project on these exact tensors.
    logits = torch.tensor(
        [[[[1.0, -2.0], [-0.5, 0.3], [0.2, 0.1]]], [[[-1.0, 2.0], [0.5, -0.3], [1.2, -0.4]]]]
    )
    segments = torch.tensor(
        [[[[0.30, 0.20], [0.62, 0.10], [0.50, 0.50]]], [[[0.28, 0.22], [0.60, 0.12], [0.45, 0.40]]]]
    )
    actionness = torch.tensor([[0.7, 0.2, 0.5]])
    targets = [(torch.tensor([0, 1]), torch.tensor([[0.25, 0.2], [0.6, 0.1]]))]
    out = set_criterion(logits, segments, actionness, targets, MatchCosts(), LossWeights())
    assert out["loss"].item() == pytest.approx(6.9117021560668945, rel=1e-6)
    assert out["loss_cls"].item() == pytest.approx(0.22064566612243652, rel=1e-5)
    assert out["loss_seg"].item() == pytest.approx(0.41999998688697815, rel=1e-6)
    assert out["loss_iou"].item() == pytest.approx(0.8999999761581421, rel=1e-6)
    assert out["loss_actionness"].item() == pytest.approx(0.3111112415790558, rel=1e-6)
    aux = 2 * 0.2088163197040558 + 5 * 0.034999996423721313 + 2 * 0.3666665554046631
    assert out["loss_aux"].item() == pytest.approx(aux, rel=1e-6)


def test_matcher_recovers_a_shuffled_assignment() -> None:
    tgt = torch.tensor([[0.2, 0.1], [0.5, 0.2], [0.8, 0.05]])
    labels = torch.tensor([1, 0, 1])
    order = torch.tensor([2, 0, 1])  # query i predicts target order[i]
    segments = tgt[order][None]  # (1, 3, 2)
    logits = torch.full((1, 3, 2), -4.0)
    logits[0, torch.arange(3), labels[order]] = 4.0
    ((rows, cols),) = hungarian_match(logits, segments, [(labels, tgt)], MatchCosts())
    assert cols[rows.argsort()].tolist() == order.tolist()


def test_refine_and_position_embedding_by_hand() -> None:
    ref_point = torch.tensor([[[0.5]]])
    out = refine(torch.tensor([[[math.log(3.0), 0.0]]]), ref_point)
    assert out.flatten().tolist() == pytest.approx([0.75, 0.5])  # sigmoid(0 + ln 3), sigmoid(0)
    ref_seg = torch.tensor([[[0.5, 0.2]]])
    out = refine(torch.tensor([[[0.0, math.log(4.0)]]]), ref_seg)
    assert out.flatten().tolist() == pytest.approx([0.5, 0.5])  # logit(0.2) + ln 4 = 0
    valid = torch.tensor([[True, True, False, False]])
    pos = sine_position_embedding(valid, 4)  # positions 1, 2, 2, 2 of 2 -> pi, 2 pi, ...
    angle = torch.tensor([math.pi, 2 * math.pi, 2 * math.pi, 2 * math.pi]) * 2 / (2 + 1e-6)
    expected = torch.stack(
        [angle.sin(), angle.cos(), (angle / 100).sin(), (angle / 100).cos()], dim=-1
    )  # dim 4: frequencies 1 and 10000^(2/4) = 100
    assert torch.allclose(pos[0], expected, atol=1e-5)


def test_padding_is_invisible_to_deformable_attention() -> None:
    # Encoder-style point references (t + 0.5) / T and decoder-style segment references scaled by
    # the valid ratio address the same steps whatever the padded length; padded values are
    # zeroed, so garbage in the padding changes nothing. (The input GroupNorm does see padded
    # steps, in the official model too, so the whole network is not padding-invariant.)
    torch.manual_seed(0)
    attn = DeformAttn1d(16, 2, 4)
    with torch.no_grad():
        for p in attn.parameters():
            p.add_(0.3 * torch.randn_like(p))
    valid, padded_len = 17, 24
    source = torch.randn(1, valid, 16)
    padded = torch.cat([source, 100 * torch.randn(1, padded_len - valid, 16)], dim=1)
    pad_mask = torch.arange(padded_len)[None] >= valid
    query = torch.randn(1, valid, 16)
    steps = torch.arange(valid, dtype=torch.float32) + 0.5
    a = attn(query, (steps / valid)[None, :, None], source, torch.zeros(1, valid, dtype=torch.bool))
    b = attn(query, (steps / padded_len)[None, :, None], padded, pad_mask)
    assert torch.allclose(a, b, atol=1e-5)
    segs = torch.tensor([[[0.3, 0.2], [0.7, 0.5]]])  # normalised to the valid steps
    a = attn(query[:, :2], segs, source, torch.zeros(1, valid, dtype=torch.bool))
    b = attn(query[:, :2], segs * valid / padded_len, padded, pad_mask)
    assert torch.allclose(a, b, atol=1e-5)


def test_postprocess_by_hand() -> None:
    model = build(TadtrConfig(**{**TINY, "num_queries": 2, "topk": 3}), 8, 2)
    logits = torch.tensor([[[2.0, -1.0], [0.0, 1.0]]])[None]  # (L=1, B=1, Q=2, K=2)
    segments = torch.tensor([[[0.25, 0.5], [0.75, 0.25]]])[None]
    actionness = torch.tensor([[0.5, 1.0]])
    mask = torch.ones(1, 8, dtype=torch.bool)
    (det,) = model.postprocess((logits, segments, actionness), mask)
    sig = torch.sigmoid
    expected = sorted(
        [
            (float(sig(torch.tensor(2.0)) * 0.5), 0, 0),
            (float(sig(torch.tensor(-1.0)) * 0.5), 0, 1),
            (float(sig(torch.tensor(0.0))), 1, 0),
            (float(sig(torch.tensor(1.0))), 1, 1),
        ],
        reverse=True,
    )[:3]
    assert det.scores.tolist() == pytest.approx([e[0] for e in expected])
    assert det.labels.tolist() == [e[2] for e in expected]
    # query 0: [0, 0.5] of 8 steps -> grid [-0.5, 3.5]; query 1: [0.625, 0.875] -> [4.5, 6.5]
    grid = {0: [-0.5, 3.5], 1: [4.5, 6.5]}
    assert det.segments.tolist() == [pytest.approx(grid[e[1]]) for e in expected]


def test_offsets_and_reference_points_train_at_a_tenth_of_the_lr() -> None:
    cfg = resolve_run_config("tadtr", "paper")
    model = create_model("tadtr", cfg.model, 16, 3)
    opt = make_optimizer(model.optimizer_groups(), cfg.train)
    assert isinstance(opt, torch.optim.AdamW)
    slow_ids = {
        id(p)
        for n, p in model.named_parameters()
        if "sampling_offsets" in n or "reference_points" in n
    }
    assert len(slow_ids) == 2 * 8 + 2  # weight + bias of 4 enc + 4 dec attentions, ref points
    for group in opt.param_groups:
        slow = {id(p) for p in group["params"]} <= slow_ids
        assert group["lr"] == pytest.approx(2e-5 if slow else 2e-4)
        assert group["weight_decay"] == pytest.approx(1e-4)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_initial_offsets_fan_out_per_head() -> None:
    model = build(TadtrConfig(), 16, 3)
    bias = model.encoder[0].self_attn.sampling_offsets.bias.view(8, 4)
    heads = torch.tensor([1.0, 0.0, -1.0, 0.0, 1.0, 0.0, -1.0, 0.0])
    assert torch.allclose(bias, heads[:, None] * torch.arange(1.0, 5.0), atol=1e-5)


def _train(steps: int, seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    model = build(TadtrConfig(**TINY, dropout=0.0), 8, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    return fit_steps(model, [_item(seed=0), _item(valid=20, seed=1)], steps, opt)


def test_few_steps_on_a_fixed_batch_lower_the_loss() -> None:
    losses = _train(30)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


def test_seeded_runs_repeat_bit_for_bit() -> None:
    assert _train(3, seed=3) == _train(3, seed=3)


def test_registry_and_config_errors() -> None:
    spec = get_spec("tadtr")
    assert not spec.class_agnostic and spec.config_cls is TadtrConfig
    with pytest.raises(TalBenchError, match="divisible by model.heads"):
        TadtrConfig(hidden_dim=30, heads=4)
    with pytest.raises(TalBenchError, match="gn_groups"):
        TadtrConfig(hidden_dim=48, heads=4, gn_groups=32)
    with pytest.raises(TalBenchError, match="num_queries"):
        TadtrConfig(num_queries=0)


def test_presets_follow_the_official_and_study_recipes() -> None:
    paper = resolve_run_config("tadtr", "paper")
    assert (paper.data.window, paper.data.window_stride, paper.data.test_window_stride) == (
        128,
        32,
        96,
    )
    assert paper.data.window_min_inside == 0.75 and paper.eval.window_merge == "overlap_nms"
    assert (paper.train.optimizer, paper.train.lr, paper.train.weight_decay) == (
        "adamw",
        2e-4,
        1e-4,
    )
    assert (paper.train.epochs, paper.train.milestones, paper.train.clip_grad_norm) == (
        16,
        (14,),
        0.1,
    )
    assert paper.train.batch_size == 16 and paper.model.lr_mult_offsets == 0.1
    study = resolve_run_config("tadtr", "study")
    assert (study.train.epochs, study.train.milestones, study.train.lr) == (15, (14,), 2e-4)
    assert study.data.window_stride / study.data.window == 0.25  # 75 % slice overlap
