"""The ETAD detector: size, every variant's forward/backward, prediction, learning, determinism."""

from __future__ import annotations

import math

import pytest
import torch
from modelhelpers import fit_steps, window_item

from tal_bench.config import from_dict
from tal_bench.errors import TalBenchError
from tal_bench.models import create_model, get_spec
from tal_bench.models.etad import EtadConfig, build
from tal_bench.models.etad_post import postprocess_items
from tal_bench.models.ops.dps import num_valid_cells
from tal_bench.pipelines.resolve import resolve_run_config

TINY = dict(hidden_dim=32, roi_dim=16, ext_dim=32, fc_dim=16, gn_groups=4, roi_size=8,
            max_duration=16, transformer_heads=4)  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    """Keep timings sane on the shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _item(length: int = 32, valid: int | None = None, c_in: int = 8, seed: int = 0) -> dict:
    return window_item(length, [[3.0, 9.0], [14.0, 21.0]], [0, 0], valid, c_in, seed)


def _official_params(c_in: int, h: int = 256, r: int = 128, e: int = 512, f: int = 128) -> int:
    """Parameter count of the official design, layer by layer (sming256/ETAD)."""

    def gconv(ci: int, co: int, k: int) -> int:  # groups 4, no bias
        return co * (ci // 4) * k

    def head(ci: int, co: int) -> int:  # 3 x (Linear -> f) + Linear(f -> co)
        return ci * f + f + 2 * (f * f + f) + f * co + co

    lstm = 4 * h * (h + h) + 2 * 4 * h
    feat = (gconv(c_in, h, 3) + 2 * h) + 2 * lstm
    feat += (gconv(h, h // 2, 3) + h) * 2 + (gconv(h, h, 3) + 2 * h) + (gconv(2 * h, h, 1) + 2 * h)
    tem = gconv(h, h, 3) + h + (h * 2 + 2)
    stage = gconv(h, h, 3) + h + (r * h * 3 + r) + (r * 24 * e + e) + 3 * head(e, 2)
    stage += 2 * (r * 6 * e + e + head(e, 1))
    return feat + tem + 3 * stage


def test_paper_preset_has_10_64_m_parameters() -> None:
    cfg = resolve_run_config("etad", "paper")
    model = create_model("etad", cfg.model, 2048, 20)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == _official_params(2048) == 10_638_362
    assert abs(n_params - 10.64e6) / 10.64e6 < 0.005
    small = sum(p.numel() for p in build(cfg.model, 512, 20).parameters())
    assert small == _official_params(512)  # 10.34 M at C_in = 512 (counted by hand)


def test_registry_entry() -> None:
    spec = get_spec("etad")
    assert spec.class_agnostic and spec.config_cls is EtadConfig


@pytest.mark.parametrize(
    ("feature_module", "num_stages"),
    [("lstm", 3), ("lstm", 1), ("lstm", 2), ("conv", 1), ("transformer", 1), ("transformer", 3)],
)
def test_every_variant_trains_with_a_gradient_on_every_parameter(
    feature_module: str, num_stages: int
) -> None:
    torch.manual_seed(0)
    cfg = EtadConfig(**TINY, feature_module=feature_module, num_stages=num_stages, dps_ratio=0.3)
    model = build(cfg, 8, 1)
    out = model.training_step([_item(seed=0), _item(valid=25, seed=1)])
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    assert {f"loss_stage{i + 1}" for i in range(num_stages)} <= set(out)
    assert all(not v.requires_grad for k, v in out.items() if k != "loss")


def test_dps_ratio_sets_the_number_of_proposals() -> None:
    items = [_item(seed=0), _item(valid=20, seed=1)]
    full = build(EtadConfig(**TINY, dps_ratio=1.0), 8, 1).training_step(items)
    assert full["num_proposals"].item() == num_valid_cells(32, 16) + num_valid_cells(20, 16)
    part = build(EtadConfig(**TINY, dps_ratio=0.1), 8, 1).training_step(items)
    want = int(num_valid_cells(32, 16) * 0.1) + int(num_valid_cells(20, 16) * 0.1)
    assert part["num_proposals"].item() == want


def test_predict_returns_segments_inside_the_valid_range() -> None:
    torch.manual_seed(0)
    model = build(EtadConfig(**TINY, nms_max_keep=30), 8, 1)
    items = [_item(seed=0), _item(valid=20, seed=1)]
    dets = model.predict(items)
    assert len(dets) == 2
    for det, valid in zip(dets, (32, 20), strict=True):
        assert 0 < det.segments.shape[0] <= 30
        assert (det.segments[:, 0] >= -0.5).all() and (det.segments[:, 1] <= valid - 0.5).all()
        assert (det.segments[:, 1] > det.segments[:, 0]).all()
        assert (det.labels == -1).all()
        assert (det.scores[:-1] >= det.scores[1:]).all()
    assert model.training  # predict restores the mode


def test_postprocess_boundary_filter_and_empty_input() -> None:
    # Startness peaks at 2, endness at 6 (of 8 valid steps); index 0 / 7 are always allowed.
    start = torch.tensor([0.1, 0.2, 0.9, 0.2, 0.1, 0.1, 0.1, 0.1])
    end = torch.tensor([0.1, 0.1, 0.1, 0.1, 0.2, 0.3, 0.9, 0.1])
    anchors = torch.tensor([[2.4, 6.7], [3.0, 6.0], [0.2, 7.9], [2.0, 5.0]])  # edge units
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    det = postprocess_items([(anchors, scores, start, end)], 0.3, 10)[0]
    # kept: [2.4, 6.7] (floors 2 / 6) and [0.2, 7.9] (0 / 7); grid = edge - 0.5, clipped.
    assert det.segments.flatten().tolist() == pytest.approx([1.9, 6.2, -0.3, 7.4])
    iou = 4.3 / 7.7  # [2.4, 6.7] vs [0.2, 7.9]
    assert det.scores.tolist() == pytest.approx([0.9, 0.7 * math.exp(-(iou**2) / 0.3)], rel=1e-5)
    empty = postprocess_items([(torch.zeros(0, 2), torch.zeros(0), start, end)], 0.3, 10)[0]
    assert empty.segments.shape == (0, 2) and empty.labels.numel() == 0


def test_predict_does_not_depend_on_the_chunk_size() -> None:
    torch.manual_seed(0)
    big = build(EtadConfig(**TINY), 8, 1)
    small = build(EtadConfig(**TINY, infer_chunk=37), 8, 1)
    small.load_state_dict(big.state_dict())
    items = [_item(seed=2), _item(valid=27, seed=3)]
    for a, b in zip(big.predict(items), small.predict(items), strict=True):
        assert torch.allclose(a.segments, b.segments, atol=1e-5)
        assert torch.allclose(a.scores, b.scores, atol=1e-6)


def test_predict_batches_is_predict_batch_by_batch() -> None:
    # A pass over batches reuses the first stage's RoI tables between batches of equal window
    # lengths; every detection must stay bit for bit what predict gives each batch alone.
    torch.manual_seed(0)
    model = build(EtadConfig(**TINY, nms_max_keep=40), 8, 1)
    batches = [
        [_item(seed=0), _item(seed=1)],
        [_item(seed=2), _item(seed=3)],  # the same lengths as the first: its table is reused
        [_item(seed=4), _item(valid=21, seed=5)],
        [_item(seed=6), _item(seed=7)],
    ]
    passed = list(model.predict_batches(iter(batches)))
    assert [batch for batch, _ in passed] == batches
    for (_, dets), batch in zip(passed, batches, strict=True):
        for got, want in zip(dets, model.predict(batch), strict=True):
            assert torch.equal(got.segments, want.segments)
            assert torch.equal(got.scores, want.scores) and torch.equal(got.labels, want.labels)


def test_inference_skips_only_the_start_end_head() -> None:
    torch.manual_seed(0)
    model = build(EtadConfig(**TINY), 8, 1).eval()
    items = [_item(seed=8), _item(valid=25, seed=9)]
    feats = torch.stack([it["feats"] for it in items])
    anchors = torch.tensor([[0.0, 3.0], [4.0, 9.0], [1.0, 17.0], [20.0, 24.0]])
    batch_idx = torch.tensor([0, 0, 1, 1])
    with torch.no_grad():
        _, _, maps = model.dense(feats)
        full = model.cascade(maps, anchors, batch_idx)
        lean = model.cascade(maps, anchors, batch_idx, start_end=False)
    for (a_full, iou_full, reg_full), (a_lean, iou_lean, reg_lean) in zip(full, lean, strict=True):
        assert reg_full.shape[1] == 6 and reg_lean.shape[1] == 4
        assert torch.equal(a_full, a_lean) and torch.equal(iou_full, iou_lean)
        assert torch.equal(reg_full[:, :4], reg_lean)


def _train(steps: int, seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    model = build(EtadConfig(**TINY, dps_ratio=0.2), 8, 1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    return fit_steps(model, [_item(seed=0), _item(valid=28, seed=1)], steps, opt)


def test_few_steps_on_a_fixed_batch_lower_the_loss() -> None:
    losses = _train(25)
    assert sum(losses[-5:]) / 5 < 0.85 * sum(losses[:5]) / 5  # about 0.75 over seeds 0-3


def test_seeded_runs_repeat_bit_for_bit() -> None:
    assert _train(3, seed=4) == _train(3, seed=4)


def test_config_errors_are_user_errors() -> None:
    with pytest.raises(TalBenchError, match="dps_ratio"):
        EtadConfig(dps_ratio=0.0)
    with pytest.raises(TalBenchError, match="num_stages"):
        EtadConfig(num_stages=4)
    with pytest.raises(TalBenchError, match="roi_size"):
        EtadConfig(roi_size=10)
    with pytest.raises(TalBenchError, match="feature_module"):
        from_dict(EtadConfig, {"feature_module": "gru"})
    with pytest.raises(TalBenchError, match="divisible"):
        build(EtadConfig(), 2050, 1)


def test_cpu_preset_builds_and_steps() -> None:
    cfg = resolve_run_config("etad", "cpu")
    model = create_model("etad", cfg.model, 8, 1)
    items = [_item(length=64, seed=0)]
    assert torch.isfinite(model.training_step(items)["loss"])
