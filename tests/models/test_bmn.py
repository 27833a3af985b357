"""BMN: parameters and MACs by hand, the sampling-mask matrix by hand, training and prediction."""

from __future__ import annotations

import pytest
import torch
from analytic_macs import bmn_macs
from modelhelpers import fit_steps, one_thread, window_item  # noqa: F401  (fixture)

from tal_bench.errors import TalBenchError
from tal_bench.models import create_model, get_spec
from tal_bench.models.bmn import BmnConfig, build, sampling_mask
from tal_bench.pipelines.resolve import resolve_run_config
from tal_bench.profiling.counters import MethodAsModule, count_macs_fvcore, count_macs_primary
from tal_bench.train.optim import make_optimizer

TINY = dict(hidden_dim=16, bm_dim=8, roi_dim=12, pem_dim=8, tscale=24, dscale=6, num_samples=4)


pytestmark = pytest.mark.usefixtures("one_thread")


def _item(length: int = 24, valid: int | None = None, seed: int = 0) -> dict:
    return window_item(length, [[2.0, 5.0], [9.0, 13.0]], [0, 0], valid=valid, seed=seed)


def _paper_params(c_in: int) -> int:
    """OpenTAD's BMN on THUMOS, layer by layer (every conv has a bias)."""

    def conv(c_i: int, c_o: int, cells: int, groups: int = 1) -> int:
        return c_o * (c_i // groups) * cells + c_o

    projection = conv(c_in, 256, 3, 4) + conv(256, 256, 3, 4)
    tem = 2 * (conv(256, 256, 3, 4) + conv(256, 1, 1))  # start and end branches
    bm_layer = conv(256, 128, 3) + conv(128, 512, 32) + conv(512, 128, 1)  # reduce, (32,1), 1x1
    pem = 2 * conv(128, 128, 9) + conv(128, 2, 1)
    return projection + tem + bm_layer + pem


def test_paper_parameters_by_hand() -> None:
    model = create_model("bmn", resolve_run_config("bmn", "paper").model, 2048, 20)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == _paper_params(2048) == 3_099_396
    assert sum(p.numel() for p in build(BmnConfig(dscale=64), 400, 1).parameters()) == (
        _paper_params(400)
    )


def test_macs_at_t128_d64_against_the_closed_form() -> None:
    cfg = resolve_run_config("bmn", "paper").model
    assert (cfg.tscale, cfg.dscale) == (128, 64)
    closed = bmn_macs(cfg, 2048)
    cells = 64 * 128
    by_hand = (
        128 * 256 * 512 * 3  # projection conv 1 (2048 -> 256, groups 4)
        + 128 * 256 * 64 * 3  # projection conv 2
        + 2 * (128 * 256 * 64 * 3 + 128 * 256)  # TEM start / end
        + 128 * 128 * 256 * 3  # reduce conv
        + 128 * 128 * (32 * 64 * 128)  # (128 x T) features @ (T x N*D*T) sampling mask
        + cells * 512 * 128 * 32  # (32, 1) conv
        + cells * 128 * 512  # 1x1 conv
        + 2 * cells * 128 * 128 * 9  # PEM 3x3 convs
        + cells * 2 * 128  # output conv
    )
    assert closed["total"] == by_hand == 24_511_578_112
    model = create_model("bmn", cfg, 2048, 20).eval()
    x, mask = torch.randn(1, 2048, 128), torch.ones(1, 128, dtype=torch.bool)
    primary = count_macs_primary(lambda m, inp: m.forward_dense(*inp), model, (x, mask))
    assert primary.device == "meta" and primary.macs == by_hand
    fv = count_macs_fvcore(MethodAsModule(model, "forward_dense"), (x, mask))
    assert fv.macs == by_hand


def test_sampling_mask_by_hand() -> None:
    # T = 6, D = 3, N = 2 points of 2 samples each, proposals widened by half their length.
    mask = sampling_mask(6, 3, 2, 2, 0.5)  # (T_feat, N, D, T_start)
    assert mask.shape == (6, 2, 3, 6)
    # cell (d 0, t 0): span [-0.5, 0.5], samples -0.5, -1/6, 1/6, 0.5. Point 0: both samples lie
    # in (-1, 0) and read step 0 with weight 1. Point 1: 1/6 -> 5/6 @0 + 1/6 @1; 0.5 -> 0.5 @0
    # + 0.5 @1; mean 2/3 @0, 1/3 @1.
    assert mask[:, 0, 0, 0].tolist() == pytest.approx([1, 0, 0, 0, 0, 0])
    assert mask[:, 1, 0, 0].tolist() == pytest.approx([2 / 3, 1 / 3, 0, 0, 0, 0])
    # cell (d 0, t 5): span [4.5, 5.5]: point 0 = mean(0.5 @4 + 0.5 @5, 1/6 @4 + 5/6 @5);
    # point 1: 5 + 1/6 -> 5/6 @5 (step 6 is outside), 5.5 -> 0.5 @5: mean 2/3 @5.
    assert mask[:, 0, 0, 5].tolist() == pytest.approx([0, 0, 0, 0, 1 / 3, 2 / 3])
    assert mask[:, 1, 0, 5].tolist() == pytest.approx([0, 0, 0, 0, 0, 2 / 3])
    # invalid cells (t + d >= T) are all zero; a valid inner cell sums to 1 per point
    assert mask[:, :, 2, 4].abs().sum() == 0 and mask[:, :, 1, 5].abs().sum() == 0
    assert mask[:, :, 2, 1].sum(0).tolist() == pytest.approx([1.0, 1.0])


def test_every_parameter_learns_and_the_loss_falls() -> None:
    torch.manual_seed(0)
    model = build(BmnConfig(**TINY), 8, 1)
    items = [_item(seed=0), _item(valid=19, seed=1)]
    out = model.training_step(items)
    out["loss"].backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]
    assert {"loss_tem", "loss_pem_cls", "loss_pem_reg"} <= set(out)
    losses = fit_steps(model, items, 40, torch.optim.Adam(model.parameters(), lr=1e-2))
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])  # 0.07-0.20 over seeds 0-2


def test_predict_stays_inside_the_valid_steps() -> None:
    torch.manual_seed(0)
    model = build(BmnConfig(**TINY, nms_max_keep=20), 8, 1)
    dets = model.predict([_item(seed=0), _item(valid=15, seed=1)])
    for det, valid in zip(dets, (24, 15), strict=True):
        assert 0 < det.segments.shape[0] <= 20
        assert (det.segments[:, 0] >= -0.5).all() and (det.segments[:, 1] <= valid - 0.5).all()
        assert (det.labels == -1).all() and (det.scores[:-1] >= det.scores[1:]).all()
    assert model.training


def test_window_must_match_tscale_and_config_errors() -> None:
    model = build(BmnConfig(**TINY), 8, 1)
    with pytest.raises(TalBenchError, match="data.window = model.tscale"):
        model.predict([_item(length=20)])
    with pytest.raises(TalBenchError, match="dscale <= tscale"):
        BmnConfig(tscale=16, dscale=32)
    with pytest.raises(TalBenchError, match="divisible"):
        build(BmnConfig(), 2050, 1)
    assert get_spec("bmn").class_agnostic


def test_projection_gets_ten_times_the_weight_decay() -> None:
    cfg = resolve_run_config("bmn", "paper")
    model = create_model("bmn", cfg.model, 16, 1)
    opt = make_optimizer(model.optimizer_groups(), cfg.train)
    proj, rest = opt.param_groups
    assert {id(p) for p in proj["params"]} == {id(p) for p in model.projection.parameters()}
    assert proj["weight_decay"] == pytest.approx(1e-3) and rest["weight_decay"] == 1e-4
    assert proj["lr"] == rest["lr"] == 1e-4
