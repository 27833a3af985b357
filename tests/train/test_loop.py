"""The training loop on hand-checkable toy models: clipping, EMA, logs, divergence."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tal_bench.config import TrainConfig
from tal_bench.train import TrainingDiverged, fit


class Linear1(nn.Module):
    """loss = slope * p for a single parameter p (gradient = slope)."""

    def __init__(self, slope: float) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(0.0))
        self.slope = slope

    def training_step(self, items: list) -> dict[str, torch.Tensor]:
        loss = self.slope * self.p * len(items)
        return {"loss": loss, "aux": torch.tensor(float(len(items)))}


def _fit(model: nn.Module, cfg: TrainConfig, n_items: int = 4, **kwargs):
    gen = torch.Generator().manual_seed(0)
    return fit(model, list(range(n_items)), cfg, lambda b: b, gen, progress=False, **kwargs)


def test_gradient_clipping_bounds_the_step():
    # gradient 100 * 4 items = 400, clipped to norm 1; plain SGD first step: p = -lr * 1
    cfg = TrainConfig(
        epochs=1,
        batch_size=4,
        optimizer="sgd",
        lr=0.1,
        weight_decay=0.0,
        clip_grad_norm=1.0,
        schedule="constant",
    )
    model = Linear1(100.0)
    _fit(model, cfg)
    assert model.p.item() == pytest.approx(-0.1)
    unclipped = Linear1(100.0)
    _fit(unclipped, TrainConfig(**{**cfg.__dict__, "clip_grad_norm": None}))
    assert unclipped.p.item() == pytest.approx(-0.1 * 400)


def test_epoch_logs_and_callback():
    seen = []
    cfg = TrainConfig(
        epochs=3,
        batch_size=2,
        lr=1.0,
        optimizer="sgd",
        weight_decay=0.0,
        milestones=(2,),
        gamma=0.5,
        clip_grad_norm=None,
    )
    result = _fit(Linear1(1.0), cfg, n_items=4, on_epoch=seen.append)
    assert seen == result.epochs and [r["epoch"] for r in seen] == [1, 2, 3]
    assert [r["iters"] for r in seen] == [2, 2, 2] and result.iters_per_epoch == 2
    assert [r["aux"] for r in seen] == [2.0, 2.0, 2.0]  # mean over the epoch's batches
    # LR after each epoch's last step: iteration 4 onwards is past milestone 2 (x 2 iters)
    assert [r["lr"] for r in seen] == pytest.approx([1.0, 0.5, 0.5])
    assert result.peak_mem_mib > 0 and result.peak_mem_kind.startswith("cpu")
    assert result.train_time_s >= sum(r["epoch_time_s"] for r in seen) * 0.99


def test_ema_model_is_returned():
    cfg = TrainConfig(
        epochs=1,
        batch_size=1,
        optimizer="sgd",
        lr=1.0,
        weight_decay=0.0,
        clip_grad_norm=None,
        schedule="constant",
        ema=True,
        ema_decay=0.5,
    )
    model = Linear1(1.0)
    result = _fit(model, cfg, n_items=2)
    # SGD with momentum 0.9, gradient 1: p = -1 after step 1; the buffer becomes
    # 0.9 * 1 + 1 = 1.9, so p = -2.9 after step 2.
    # EMA: 0.5 * 0 + 0.5 * -1 = -0.5, then 0.5 * -0.5 + 0.5 * -2.9 = -1.7
    assert model.p.item() == pytest.approx(-2.9)
    assert result.model is not model and result.model.p.item() == pytest.approx(-1.7)


def test_divergence_is_reported():
    with pytest.raises(TrainingDiverged, match="lower train.lr"):
        _fit(Linear1(float("nan")), TrainConfig(epochs=1, batch_size=2))


def test_empty_training_set_is_a_user_error():
    from tal_bench.errors import TalBenchError

    with pytest.raises(TalBenchError, match="no items"):
        _fit(Linear1(1.0), TrainConfig(), n_items=0)


def test_memory_probe_counts_the_step_and_leaves_training_alone():
    from tal_bench.train.loop import probe_step_memory

    class Lin(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(1024, 1024, bias=False)  # 4 MiB of weights

        def training_step(self, items):
            return {"loss": self.lin(torch.stack(items)).square().mean()}

    model, data = Lin(), [torch.randn(1024) for _ in range(4)]
    weights = model.lin.weight.detach().clone()
    rng = torch.get_rng_state()
    cfg = TrainConfig(optimizer="sgd", batch_size=2, clip_grad_norm=None, weight_decay=0.0)
    peak = probe_step_memory(model, data, cfg, lambda items: items)
    # by hand: the gradient (4 MiB) and SGD's momentum buffer (4 MiB) outlive the step's
    # activations (2 x 1024 floats); the copy's weights existed before and are not counted
    assert 8.0 <= peak <= 8.0 + 0.05
    assert torch.equal(model.lin.weight, weights) and model.lin.weight.grad is None
    assert torch.equal(torch.get_rng_state(), rng)
