"""Exponential moving average of a model's weights (evaluated instead of the raw weights)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEma:
    """Keeps ``shadow = decay * shadow + (1 - decay) * weights`` after every optimizer step.

    Floating-point parameters and buffers are averaged; integer buffers (counters) are copied.
    ``module`` is a frozen copy of the model that holds the averaged weights.

    Args:
        model: the model being trained.
        decay: the EMA decay in [0, 1); 0 copies the weights every step.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend the current weights of ``model`` into the shadow copy."""
        current = model.state_dict()
        for name, shadow in self.module.state_dict().items():
            value = current[name].detach()
            if shadow.dtype.is_floating_point:
                shadow.mul_(self.decay).add_(value.to(shadow.dtype), alpha=1.0 - self.decay)
            else:
                shadow.copy_(value)
