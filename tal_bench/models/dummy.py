"""``dummy``: the smallest detector that really trains, for fast end-to-end tests.

A 1x1 convolution scores every feature step for every class (sigmoid, BCE against "this step
lies inside a ground-truth segment of class k"), and one learnable scalar holds the segment
width in grid steps (regressed in log space onto the ground-truth widths). Prediction takes
the local peaks of each class's score curve and centres a segment of the learned width on
each. It is class-aware (labels >= 0), so no video-level classifier is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tal_bench.data.items import stack_items
from tal_bench.models.base import ModelSpec, PostDecl
from tal_bench.registry import MODELS
from tal_bench.types import ItemDetections, VideoItem


@dataclass
class DummyConfig:
    init_width: float = 8.0  # initial segment width in feature steps
    max_dets_per_item: int = 50  # peaks kept per item, all classes together
    pos_weight: float = 1.0  # BCE weight of the positive (inside-a-segment) steps


class DummyDetector(nn.Module):
    """Per-step class scores from a 1x1 conv plus one learnable width (see module docstring)."""

    def __init__(self, cfg: DummyConfig, input_dim: int, num_classes: int) -> None:
        super().__init__()
        if cfg.init_width <= 0:
            raise ValueError(f"init_width must be > 0, got {cfg.init_width}")
        self.cfg = cfg
        self.num_classes = num_classes
        self.score = nn.Conv1d(input_dim, num_classes, kernel_size=1)
        self.log_width = nn.Parameter(torch.tensor(math.log(cfg.init_width)))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Class logits per step: (B, C, T) -> (B, K, T)."""
        return self.score(feats)

    def _device_batch(self, items: list[VideoItem]) -> tuple[torch.Tensor, torch.Tensor]:
        feats, mask = stack_items(items)  # (B, C, T), (B, T)
        device = self.log_width.device
        return feats.to(device), mask.to(device)

    def training_step(self, items: list[VideoItem]) -> dict[str, torch.Tensor]:
        """Masked per-step BCE plus the log-width regression; returns the losses."""
        feats, mask = self._device_batch(items)
        logits = self(feats)  # (B, K, T)
        targets = step_targets(items, self.num_classes, logits.shape[-1]).to(logits.device)
        weight = mask[:, None, :].float() * (1.0 + (self.cfg.pos_weight - 1.0) * targets)
        bce = F.binary_cross_entropy_with_logits(logits, targets, weight=weight, reduction="sum")
        cls_loss = bce / (mask.sum() * self.num_classes).clamp(min=1)
        widths = torch.cat([it["segments"][:, 1] - it["segments"][:, 0] for it in items])
        widths = widths.to(logits.device).clamp(min=1.0)  # (N,)
        if widths.numel():
            width_loss = (self.log_width - widths.log()).pow(2).mean()
        else:
            width_loss = self.log_width * 0.0
        loss = cls_loss + width_loss
        return {"loss": loss, "cls_loss": cls_loss.detach(), "width_loss": width_loss.detach()}

    @torch.no_grad()
    def predict(self, items: list[VideoItem]) -> list[ItemDetections]:
        """Local score peaks per class, each the centre of a segment of the learned width."""
        feats, mask = self._device_batch(items)
        probs = torch.sigmoid(self(feats)) * mask[:, None, :]  # (B, K, T)
        pooled = F.max_pool1d(probs, kernel_size=3, stride=1, padding=1)  # (B, K, T)
        peaks = (probs == pooled) & mask[:, None, :] & (probs > 0)
        half = self.log_width.exp().item() / 2.0
        out = []
        for b in range(len(items)):
            labels, xs = peaks[b].nonzero(as_tuple=True)  # (P,), (P,)
            scores = probs[b, labels, xs]
            keep = scores.argsort(descending=True)[: self.cfg.max_dets_per_item]
            labels, xs, scores = labels[keep], xs[keep].float(), scores[keep]
            last = float(mask[b].sum().item() - 1)
            segs = torch.stack([(xs - half).clamp(min=0.0), (xs + half).clamp(max=last)], dim=1)
            out.append(ItemDetections(segs.cpu(), scores.float().cpu(), labels.long().cpu()))
        return out


def step_targets(items: list[VideoItem], num_classes: int, length: int) -> torch.Tensor:
    """(B, K, T) float: 1 where step x lies in [start, end] of a ground-truth segment of class k."""
    x = torch.arange(length, dtype=torch.float32)  # (T,)
    targets = torch.zeros(len(items), num_classes, length)
    for b, item in enumerate(items):
        for (start, end), label in zip(
            item["segments"].tolist(), item["labels"].tolist(), strict=True
        ):
            inside = (x >= start) & (x <= end)
            targets[b, label] = torch.maximum(targets[b, label], inside.float())
    return targets


def build_dummy(cfg: DummyConfig, input_dim: int, num_classes: int) -> DummyDetector:
    """Registry builder: the dummy detector for ``input_dim`` features and ``num_classes``."""
    return DummyDetector(cfg, input_dim, num_classes)


MODELS.register("dummy")(
    ModelSpec(
        name="dummy",
        config_cls=DummyConfig,
        build=build_dummy,
        description="1x1-conv per-step class scores + one learned width (tests, smoke runs)",
        class_agnostic=False,
        native_mode="window",
        post=PostDecl(window_merge="soft_nms", merge_params={"sigma": 0.3}),
    )
)
