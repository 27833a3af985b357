"""Optimizer and per-iteration learning-rate schedule built from ``TrainConfig``.

The schedule is a multiplicative factor on the base LR, stepped once per iteration (OpenTAD
implements ETAD's MultiStep [5] the same way, with milestones x iterations per epoch):

* warmup (``warmup_epochs`` > 0): factor ``(s + 1) / W`` for iteration s < W, where
  W = round(warmup_epochs x iters_per_epoch); the first step already has a non-zero LR.
* ``multistep``: ``gamma ** #{m in milestones : s >= m x iters_per_epoch}``.
* ``cosine``: after warmup, ``m + (1 - m) 0.5 (1 + cos(pi (s - W) / (S - W)))`` with S = epochs
  x iters_per_epoch and m = lr_min / lr (decays to ``lr_min`` at the last iteration).
* ``constant``: 1.

Warmup multiplies the multistep factor, and replaces the cosine's first W iterations. The factor
scales every parameter group's own base LR (an end-to-end model's encoder group starts at
``encoder_lr``, ETAD: 1e-6 against 1e-3 for the detector).

A detector may group its parameters (``optimizer_groups()``, :func:`param_groups`): TadTR's
sampling offsets train at 0.1x LR, the ActionFormer family decays only Conv/Linear weights.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

from tal_bench.config import TrainConfig
from tal_bench.errors import TalBenchError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("multistep", "cosine", "constant")
SGD_MOMENTUM = 0.9


def param_groups(
    params: Iterable[torch.nn.Parameter] | Iterable[dict], cfg: TrainConfig
) -> list[dict]:
    """Optimizer groups with absolute ``lr`` / ``weight_decay``.

    ``params`` is either plain parameters (one group at ``cfg.lr``, ``cfg.weight_decay``) or
    a detector's ``optimizer_groups()``: dicts with ``params`` and optional ``lr_mult`` /
    ``wd_mult`` (e.g. TadTR's sampling offsets at 0.1x LR) and ``name``. A group named
    ``encoder`` (an end-to-end model's video encoder) starts from ``cfg.encoder_lr`` instead of
    ``cfg.lr``; the name is kept in the optimizer's group. Parameters without ``requires_grad``
    and empty groups are dropped.
    """
    items = list(params)
    groups = items if items and isinstance(items[0], dict) else [{"params": items}]
    out = []
    for group in groups:
        trainable = [p for p in group["params"] if p.requires_grad]
        if trainable:
            base = cfg.encoder_lr if group.get("name") == "encoder" else cfg.lr
            out.append(
                {
                    "params": trainable,
                    "lr": base * group.get("lr_mult", 1.0),
                    "weight_decay": cfg.weight_decay * group.get("wd_mult", 1.0),
                    "name": group.get("name", ""),
                }
            )
    return out


def make_optimizer(
    params: Iterable[torch.nn.Parameter] | Iterable[dict], cfg: TrainConfig
) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD (momentum 0.9) with ``cfg.lr`` and ``cfg.weight_decay``.

    Args:
        params: the parameters to optimise (those with ``requires_grad``), or groups with
            ``lr_mult`` / ``wd_mult`` / ``name`` (:func:`param_groups`).
        cfg: the train config (``optimizer``, ``lr``, ``encoder_lr``, ``weight_decay``).

    Returns:
        The optimizer. Unknown names raise a TalBenchError listing the choices.
    """
    groups = param_groups(params, cfg)
    name = cfg.optimizer.lower()
    if name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg.lr, momentum=SGD_MOMENTUM, weight_decay=cfg.weight_decay
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
