"""Optimizer and per-iteration learning-rate schedule built from ``TrainConfig``.

The schedule is a multiplicative factor on the base LR, stepped once per iteration (OpenTAD
implements ETAD's MultiStep [5] the same way, with milestones x iterations per epoch):

* warmup (``warmup_epochs`` > 0): factor ``(s + 1) / W`` for iteration s < W, where
  W = round(warmup_epochs x iters_per_epoch); the first step already has a non-zero LR.
* ``multistep``: ``gamma ** #{m in milestones : s >= m x iters_per_epoch}``.
* ``cosine``: after warmup, ``m + (1 - m) 0.5 (1 + cos(pi (s - W) / (S - W)))`` with S = epochs
  x iters_per_epoch and m = lr_min / lr (decays to ``lr_min`` at the last iteration).
* ``constant``: 1.

Warmup multiplies the multistep factor, and replaces the cosine's first W iterations.

Weight decay applies to every parameter, or with ``decay_only_weights`` only to the weights of
convolution and linear layers: biases, normalisation layers and any other parameter (e.g. the
per-level ``Scale`` of the ActionFormer family) get none, the grouping of ActionFormer's
``make_optimizer`` (happyharrycn/actionformer_release, libs/utils/train_utils.py, after minGPT).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from tal_bench.config import TrainConfig
from tal_bench.errors import TalBenchError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("multistep", "cosine", "constant")
SGD_MOMENTUM = 0.9


DECAYED_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two optimizer groups: Conv/Linear weights with ``weight_decay``, the rest with none.

    Args:
        model: the model (trainable parameters only; shared tensors once).
        weight_decay: decay of the first group.

    Returns:
        ``[{"params": decayed, "weight_decay": wd}, {"params": others, "weight_decay": 0}]``.
    """
    decayed = {
        id(m.weight)
        for m in model.modules()
        if isinstance(m, DECAYED_MODULES) and isinstance(m.weight, nn.Parameter)
    }
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if id(p) in decayed], "weight_decay": weight_decay},
        {"params": [p for p in params if id(p) not in decayed], "weight_decay": 0.0},
    ]


def make_optimizer(
    params: nn.Module | Iterable[torch.nn.Parameter], cfg: TrainConfig
) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD (momentum 0.9) with ``cfg.lr`` and ``cfg.weight_decay``.

    Args:
        params: the model, or the parameters to optimise (those with ``requires_grad``);
            ``cfg.decay_only_weights`` needs the model (it groups by layer type).
        cfg: the train config (``optimizer``, ``lr``, ``weight_decay``, ``decay_only_weights``).

    Returns:
        The optimizer. Unknown names raise a TalBenchError listing the choices.
    """
    if cfg.decay_only_weights:
        if not isinstance(params, nn.Module):
            raise TypeError("train.decay_only_weights needs the model, not a parameter list")
        params = param_groups(params, cfg.weight_decay)
    elif isinstance(params, nn.Module):
        params = [p for p in params.parameters() if p.requires_grad]
    else:
        params = [p for p in params if p.requires_grad]
    name = cfg.optimizer.lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=SGD_MOMENTUM, weight_decay=cfg.weight_decay
        )
    raise TalBenchError(
        f"unknown train.optimizer {cfg.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
    )


def lr_factor(step: int, cfg: TrainConfig, iters_per_epoch: int) -> float:
    """The LR multiplier at iteration ``step`` (0-based) of the whole run (module docstring)."""
    warmup = round(cfg.warmup_epochs * iters_per_epoch)
    total = cfg.epochs * iters_per_epoch
    name = cfg.schedule.lower()
    if name not in SCHEDULES:
        raise TalBenchError(
            f"unknown train.schedule {cfg.schedule!r}; choose one of {', '.join(SCHEDULES)}"
        )
    warm = (step + 1) / warmup if step < warmup else 1.0
    if name == "constant":
        return warm
    if name == "multistep":
        passed = sum(step >= m * iters_per_epoch for m in cfg.milestones)
        return warm * cfg.gamma**passed
    if step < warmup:
        return warm
    span = max(total - warmup, 1)
    progress = min((step - warmup) / span, 1.0)
    floor = cfg.lr_min / cfg.lr if cfg.lr > 0 else 0.0
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, iters_per_epoch: int
) -> LambdaLR:
    """A ``LambdaLR`` applying :func:`lr_factor`; call ``.step()`` after every iteration.

    Args:
        optimizer: the optimizer whose base LRs are scaled.
        cfg: the train config (``schedule``, ``milestones``, ``gamma``, ``warmup_epochs``,
            ``epochs``).
        iters_per_epoch: optimizer steps per epoch (> 0).
    """
    if iters_per_epoch <= 0:
        raise ValueError(f"iters_per_epoch must be > 0, got {iters_per_epoch}")
    lr_factor(0, cfg, iters_per_epoch)  # validates the schedule name before training starts
    return LambdaLR(optimizer, lambda step: lr_factor(step, cfg, iters_per_epoch))
