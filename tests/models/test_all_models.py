"""Every registered detector: builds from its cpu preset, trains a step, predicts sanely."""

from __future__ import annotations

import pytest
import torch

from tal_bench.models import create_model, get_spec, list_models
from tal_bench.pipelines.resolve import resolve_run_config

INPUT_DIM = 24
NUM_CLASSES = 3


def _items(length: int, batch: int, seed: int = 0) -> list[dict]:
    gen = torch.Generator().manual_seed(seed)
    items = []
    for b in range(batch):
        start = 0.1 * length * (b + 1)
        segments = torch.tensor([[start, start + 0.2 * length], [0.7 * length, 0.9 * length]])
        items.append(
            {
                "video_id": f"v{b}",
                "feats": torch.randn(INPUT_DIM, length, generator=gen),  # (C, T)
                "mask": torch.ones(length, dtype=torch.bool),
                "segments": segments,  # (N, 2) grid units
                "labels": torch.tensor([b % NUM_CLASSES, (b + 1) % NUM_CLASSES]),
                "duration_s": length * 0.5,
                "t0_s": 0.0,
                "step_s": 0.5,
                "window_start": 0,
            }
        )
    return items


def _length(cfg) -> int:
    return cfg.data.resize_len if cfg.data.mode == "resize" else cfg.data.window


@pytest.fixture(params=list_models())
def built(request):
    torch.manual_seed(0)
    cfg = resolve_run_config(request.param, "cpu")
    model = create_model(request.param, cfg.model, INPUT_DIM, NUM_CLASSES)
    return request.param, cfg, model


def test_every_parameter_gets_a_gradient(built):
    name, cfg, model = built
    model.train()
    losses = model.training_step(_items(_length(cfg), batch=2))
    loss = losses["loss"]
    assert loss.ndim == 0 and torch.isfinite(loss), f"{name}: loss {loss}"
    loss.backward()
    for pname, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None, f"{name}: no gradient for {pname}"
            assert torch.isfinite(param.grad).all(), f"{name}: non-finite gradient for {pname}"
    for key, value in losses.items():
        assert not (key != "loss" and value.requires_grad), f"{name}: {key} is not detached"


def test_predict_returns_one_detection_set_per_item(built):
    name, cfg, model = built
    model.eval()
    length = _length(cfg)
    dets = model.predict(_items(length, batch=3, seed=1))
    assert len(dets) == 3
    agnostic = get_spec(name).class_agnostic
    for det in dets:
        k = det.scores.shape[0]
        assert det.segments.shape == (k, 2) and det.labels.shape == (k,)
        assert torch.isfinite(det.segments).all() and torch.isfinite(det.scores).all()
        if k:
            assert (det.segments[:, 1] >= det.segments[:, 0]).all()
            if agnostic:
                assert (det.labels == -1).all(), f"{name} is class-agnostic: labels must be -1"
            else:
                assert ((det.labels >= 0) & (det.labels < NUM_CLASSES)).all()
