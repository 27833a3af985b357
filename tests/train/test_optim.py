"""Optimizer choice and the per-iteration LR schedule against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from tal_bench.config import TrainConfig
from tal_bench.errors import TalBenchError
from tal_bench.train.optim import lr_factor, make_optimizer, make_scheduler


def _lrs(cfg: TrainConfig, iters_per_epoch: int) -> list[float]:
    """LR actually used at every iteration of a run, through the real scheduler."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = make_optimizer([param], cfg)
    sched = make_scheduler(opt, cfg, iters_per_epoch)
    lrs = []
    for _ in range(cfg.epochs * iters_per_epoch):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_multistep_steps_at_milestone_epochs():
    # lr 0.1, 4 iters/epoch, milestones at epochs 2 and 3, gamma 0.5:
    # iterations 0-7 at 0.1, 8-11 at 0.05, 12-15 at 0.025.
    cfg = TrainConfig(epochs=4, lr=0.1, schedule="multistep", milestones=(2, 3), gamma=0.5)
    lrs = _lrs(cfg, 4)
    assert lrs[:8] == pytest.approx([0.1] * 8)
    assert lrs[8:12] == pytest.approx([0.05] * 4)
    assert lrs[12:] == pytest.approx([0.025] * 4)


def test_warmup_is_linear_from_first_step():
    # warmup 1 epoch of 4 iters: factors 1/4, 2/4, 3/4, 4/4, then 1 (constant schedule).
    cfg = TrainConfig(epochs=2, lr=0.2, schedule="constant", warmup_epochs=1.0)
    assert _lrs(cfg, 4) == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.2, 0.2, 0.2, 0.2])


def test_cosine_after_warmup():
    # 10 iterations, warmup 2: step 2 -> cos(0) = 1; step 6 -> 0.5 (1 + cos(pi/2)) = 0.5;
    # step 9 -> 0.5 (1 + cos(7 pi / 8)).
    cfg = TrainConfig(epochs=10, lr=1.0, schedule="cosine", warmup_epochs=2.0)
    assert lr_factor(0, cfg, 1) == pytest.approx(0.5)
    assert lr_factor(1, cfg, 1) == pytest.approx(1.0)
    assert lr_factor(2, cfg, 1) == pytest.approx(1.0)
    assert lr_factor(6, cfg, 1) == pytest.approx(0.5)
    assert lr_factor(9, cfg, 1) == pytest.approx(0.5 * (1 + math.cos(7 * math.pi / 8)))


def test_warmup_multiplies_multistep():
    cfg = TrainConfig(epochs=3, lr=1.0, milestones=(1,), gamma=0.1, warmup_epochs=2.0)
    # 2 iters/epoch: W = 4. step 2 is past milestone 1 (>= 2) and in warmup: 3/4 * 0.1.
    assert lr_factor(2, cfg, 2) == pytest.approx(0.075)


@pytest.mark.parametrize(
    ("name", "cls"),
    [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)],
)
def test_optimizer_choice(name, cls):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = make_optimizer([param], TrainConfig(optimizer=name, lr=0.3, weight_decay=0.01))
    assert type(opt) is cls
    assert opt.param_groups[0]["lr"] == 0.3
    assert opt.param_groups[0]["weight_decay"] == 0.01


def test_sgd_step_matches_formula():
    # SGD, momentum 0.9, no wd, first step: p <- p - lr * grad. Loss = 3 p -> grad 3.
    param = torch.nn.Parameter(torch.tensor([1.0]))
    opt = make_optimizer([param], TrainConfig(optimizer="sgd", lr=0.1, weight_decay=0.0))
    (3 * param).sum().backward()
    opt.step()
    assert param.item() == pytest.approx(1.0 - 0.1 * 3.0)


def test_unknown_names_are_user_errors():
    param = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(TalBenchError, match="train.optimizer"):
        make_optimizer([param], TrainConfig(optimizer="lamb"))
    opt = make_optimizer([param], TrainConfig())
    with pytest.raises(TalBenchError, match="train.schedule"):
        make_scheduler(opt, TrainConfig(schedule="poly"), 3)


def test_cosine_ends_at_lr_min():
    # lr 1e-3, floor 1e-5: factor m + (1 - m) 0.5 (1 + cos(pi p)), m = 0.01, over 4 iterations
    cfg = TrainConfig(epochs=2, lr=1e-3, schedule="cosine", lr_min=1e-5)
    lrs = _lrs(cfg, 2)
    m = 0.01
    expected = [1e-3 * (m + (1 - m) * 0.5 * (1 + math.cos(math.pi * s / 4))) for s in range(4)]
    assert lrs == pytest.approx(expected)
    assert lr_factor(4, cfg, 2) == pytest.approx(m)  # the last step reaches the floor


def test_parameter_groups_scale_lr_and_weight_decay():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(2))
    frozen = torch.nn.Parameter(torch.zeros(1), requires_grad=False)
    cfg = TrainConfig(optimizer="adamw", lr=0.2, weight_decay=0.01, epochs=2, milestones=(1,))
    groups = [{"params": [a, frozen]}, {"params": [b], "lr_mult": 0.1, "wd_mult": 10.0}]
    opt = make_optimizer(groups, cfg)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.2, 0.02])
    assert [g["weight_decay"] for g in opt.param_groups] == pytest.approx([0.01, 0.1])
    assert opt.param_groups[0]["params"] == [a]  # frozen parameters are left out
    sched = make_scheduler(opt, cfg, iters_per_epoch=1)
    opt.step()
    sched.step()  # the milestone scales every group by gamma, keeping the 10x ratio
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.02, 0.002])


def test_encoder_group_starts_from_encoder_lr():
    # multistep x0.1 after epoch 1 (2 iters/epoch): both groups scale from their own base LR
    det, enc, frozen = (torch.nn.Parameter(torch.zeros(2)) for _ in range(3))
    frozen.requires_grad_(False)
    cfg = TrainConfig(epochs=2, lr=1e-3, encoder_lr=1e-6, milestones=(1,), gamma=0.1)
    groups = [{"params": [det]}, {"params": [enc, frozen], "name": "encoder"}]
    opt = make_optimizer(groups, cfg)
    assert [(g["name"], g["lr"], len(g["params"])) for g in opt.param_groups] == [
        ("", 1e-3, 1),
        ("encoder", 1e-6, 1),  # the frozen parameter is left out
    ]
    sched = make_scheduler(opt, cfg, 2)
    for _ in range(2):
        opt.step()
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-4, 1e-7])
    only_frozen = make_optimizer([{"params": [det]}, {"params": [frozen], "name": "encoder"}], cfg)
    assert [g["name"] for g in only_frozen.param_groups] == [""]
