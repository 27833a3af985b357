"""EMA update formula, checkpoint round trip (weights_only), seeding flags."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from tal_bench.errors import TalBenchError
from tal_bench.train.checkpoint import load_checkpoint, save_checkpoint
from tal_bench.train.ema import ModelEma
from tal_bench.train.seeding import seed_everything


def test_ema_update_formula():
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0]]))
        model.bias.fill_(0.0)
    ema = ModelEma(model, decay=0.9)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[3.0, -2.0]]))
        model.bias.fill_(10.0)
    ema.update(model)
    # 0.9 * old + 0.1 * new
    assert ema.module.weight[0].tolist() == pytest.approx([0.9 * 1 + 0.1 * 3, 0.9 * 2 - 0.1 * 2])
    assert ema.module.bias.item() == pytest.approx(1.0)
    ema.update(model)  # second step: 0.9 * 1.0 + 0.1 * 10
    assert ema.module.bias.item() == pytest.approx(1.9)
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_ema_copies_integer_buffers():
    model = nn.BatchNorm1d(3)
    ema = ModelEma(model, decay=0.5)
    model.num_batches_tracked.fill_(7)
    ema.update(model)
    assert int(ema.module.num_batches_tracked) == 7


def test_checkpoint_round_trip(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    config = {"train": {"milestones": (5,), "lr": 1e-4}, "model_name": "dummy"}
    path = save_checkpoint(
        tmp_path / "run" / "checkpoint.pt",
        model,
        config,
        epoch=3,
        extra={"input_dim": 3, "num_classes": 4},
    )
    # The file must open under the restricted unpickler.
    raw = torch.load(path, weights_only=True)
    assert raw["epoch"] == 3
    payload = load_checkpoint(path)
    assert payload["config"] == {"train": {"milestones": [5], "lr": 1e-4}, "model_name": "dummy"}
    assert payload["input_dim"] == 3 and payload["num_classes"] == 4
    assert payload["versions"]["torch"] == torch.__version__
    clone = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    clone.load_state_dict(payload["state_dict"])
    for a, b in zip(model.state_dict().values(), clone.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(TalBenchError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(TalBenchError, match="not a readable"):
        load_checkpoint(bad)
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(TalBenchError, match="no state_dict"):
        load_checkpoint(tmp_path / "other.pt")


def test_seed_everything_repeats_all_rngs():
    def draw():
        gen, flags = seed_everything(123)
        values = (random.random(), np.random.rand(), torch.rand(1).item())
        return values, torch.randperm(10, generator=gen).tolist(), flags

    first, second = draw(), draw()
    assert first == second
    flags = first[2]
    assert flags["seed"] == 123 and flags["deterministic_algorithms"] is True
    assert torch.are_deterministic_algorithms_enabled()
