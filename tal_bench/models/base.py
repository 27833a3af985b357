"""The detector protocol and the model spec each detector file registers.

A detector is an ``nn.Module`` with two methods:
* ``training_step(items) -> dict[str, Tensor]`` with at least ``"loss"`` (scalar, to backprop);
  other entries are detached scalars for logging.
* ``predict(items) -> list[ItemDetections]``: one per item, in the item's grid coordinates.

The trainer, the grids and the profiler only ever talk to a detector through these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from tal_bench.types import ItemDetections, VideoItem


@runtime_checkable
class Detector(Protocol):
    """What every registered detector implements (structural; subclass nn.Module)."""

    def training_step(self, items: list[VideoItem]) -> dict[str, torch.Tensor]: ...

    def predict(self, items: list[VideoItem]) -> list[ItemDetections]: ...


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: how to build a detector and what it needs from the data."""

    name: str
    config_cls: type  # dataclass of the model's hyperparameters
    build: Callable[[Any, int, int], nn.Module]  # (model_cfg, input_dim, num_classes) -> Detector
    description: str
    class_agnostic: bool = False  # True: outputs labels -1, needs a video-level classifier
    # (RunConfig) -> None: raises TalBenchError for settings the detector cannot run with
    # (e.g. BMN's fixed window length); called when a run config is resolved.
    check_config: Callable[[Any], None] | None = None
