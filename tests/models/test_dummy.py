"""The dummy detector: targets, prediction geometry, and that it really learns."""

from __future__ import annotations

import math

import pytest
import torch

from tal_bench.config import TrainConfig
from tal_bench.data.items import collate_items
from tal_bench.models import create_model
from tal_bench.models.dummy import DummyConfig, step_targets
from tal_bench.train import fit, seed_everything


def _item(feats: torch.Tensor, segments: list[list[float]], labels: list[int]) -> dict:
    length = feats.shape[1]
    return {
        "video_id": "v",
        "feats": feats,  # (C, T)
        "mask": torch.ones(length, dtype=torch.bool),
        "segments": torch.tensor(segments, dtype=torch.float32).reshape(-1, 2),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "duration_s": float(length),
        "t0_s": 0.0,
        "step_s": 1.0,
        "window_start": 0,
    }


def test_step_targets_mark_steps_inside_segments():
    item = _item(torch.zeros(2, 8), [[1.0, 3.0], [2.5, 5.0]], [0, 1])
    targets = step_targets([item], num_classes=2, length=8)  # (1, 2, 8)
    assert targets[0, 0].tolist() == [0, 1, 1, 1, 0, 0, 0, 0]
    assert targets[0, 1].tolist() == [0, 0, 0, 1, 1, 1, 0, 0]


def test_predict_peaks_and_learned_width():
    model = create_model("dummy", DummyConfig(init_width=4.0), input_dim=1, num_classes=1)
    with torch.no_grad():
        model.score.weight.fill_(1.0)
        model.score.bias.fill_(0.0)
    # one peak at x = 5 (value 3), a plateau-free ramp elsewhere
    feats = torch.tensor([[0.0, 1.0, 0.0, -1.0, 2.0, 3.0, 2.0, 1.0, 0.0, -2.0]])  # (C=1, T=10)
    (dets,) = model.predict([_item(feats, [], [])])
    # peaks of sigmoid(feats): x = 1 and x = 5 (x = 8 is not a peak: 0 < 1 at x = 7)
    order = dets.scores.argsort(descending=True)
    assert dets.segments[order].tolist() == [[3.0, 7.0], [0.0, 3.0]]  # width 4, clipped at 0
    expected = [1 / (1 + math.exp(-3.0)), 1 / (1 + math.exp(-1.0))]
    assert dets.scores[order].tolist() == pytest.approx(expected)
    assert dets.labels.tolist() == [0, 0]


def _toy_items(num: int, gen: torch.Generator) -> list[dict]:
    """Class k is 'on' where feature channel k is high; segments of width 6."""
    items = []
    for _ in range(num):
        feats = 0.1 * torch.randn(3, 32, generator=gen)  # (C, T)
        start = int(torch.randint(0, 24, (1,), generator=gen))
        label = int(torch.randint(0, 3, (1,), generator=gen))
        feats[label, start : start + 7] += 1.0
        items.append(_item(feats, [[float(start), float(start + 6)]], [label]))
    return items


def _train(seed: int) -> tuple[list[float], torch.nn.Module]:
    gen, _ = seed_everything(seed)
    items = _toy_items(24, torch.Generator().manual_seed(7))
    model = create_model("dummy", DummyConfig(init_width=2.0), input_dim=3, num_classes=3)
    cfg = TrainConfig(epochs=6, batch_size=8, lr=0.05, milestones=(5,))
    result = fit(model, items, cfg, collate_items, gen, progress=False)
    return [row["loss"] for row in result.epochs], model


def test_dummy_learns_and_is_repeatable():
    losses, model = _train(0)
    assert losses[-1] < 0.5 * losses[0]
    # the width moves from 2 towards the ground-truth width 6
    assert 2.0 < model.log_width.exp().item() <= 6.0
    again, _ = _train(0)
    assert again == losses  # bit-for-bit on CPU
