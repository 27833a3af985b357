"""A fixed iteration budget (train.budget = "steps") in the training loop, by hand."""

from __future__ import annotations

import pytest
import torch

from tal_bench.config import TrainConfig
from tal_bench.train import fit


class Counter(torch.nn.Module):
    """loss = p: a model that trains in any number of steps."""

    def __init__(self) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(torch.tensor(0.0))

    def training_step(self, items: list) -> dict[str, torch.Tensor]:
        return {"loss": self.p * 1.0}


CFG = TrainConfig(epochs=3, batch_size=2, optimizer="sgd", lr=1.0, weight_decay=0.0,
                  milestones=(2,), gamma=0.5, clip_grad_norm=None)  # fmt: skip


def _fit(n_items: int, budget: int | None) -> tuple[Counter, object]:
    model = Counter()
    gen = torch.Generator().manual_seed(0)
    out = fit(model, list(range(n_items)), CFG, lambda b: b, gen, progress=False,
              budget_iters_per_epoch=budget)  # fmt: skip
    return model, out


def test_epochs_budget_is_the_default() -> None:
    _, out = _fit(4, None)  # 2 iterations per epoch, 3 epochs
    assert [e["iters"] for e in out.epochs] == [2, 2, 2]
    # LR after each pass (steps 2, 4, 6): halved from step 4 = milestone 2 x 2 iterations
    assert [e["lr"] for e in out.epochs] == pytest.approx([1.0, 0.5, 0.5])


def test_steps_budget_trains_the_full_data_step_count() -> None:
    # 3 items = 2 iterations per pass; the full data has 5 iterations per epoch: 3 x 5 = 15
    # steps in 8 passes, the last one cut to 1; the milestone sits at 2 x 5 = 10 steps.
    _, out = _fit(3, 5)
    assert [e["iters"] for e in out.epochs] == [2] * 7 + [1]
    assert sum(e["iters"] for e in out.epochs) == 15
    # LR after each pass (steps 2, 4, ..., 14, 15): halved from step 10
    assert [e["lr"] for e in out.epochs] == pytest.approx([1.0] * 4 + [0.5] * 4)
