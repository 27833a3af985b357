"""The shared trainer: seeding, optimizer + schedule, EMA, checkpoints and the training loop."""

from __future__ import annotations

from tal_bench.train.checkpoint import load_checkpoint, save_checkpoint
from tal_bench.train.ema import ModelEma
from tal_bench.train.loop import FitResult, TrainingDiverged, fit, train_one_epoch
from tal_bench.train.optim import lr_factor, make_optimizer, make_scheduler
from tal_bench.train.seeding import seed_everything, seed_worker

__all__ = [
    "FitResult",
    "ModelEma",
    "TrainingDiverged",
    "fit",
    "load_checkpoint",
    "lr_factor",
    "make_optimizer",
    "make_scheduler",
    "save_checkpoint",
    "seed_everything",
    "seed_worker",
    "train_one_epoch",
]
