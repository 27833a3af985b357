"""``example``: a small anchor-free detector registered from outside tal-bench.

Every feature step predicts, for each class, whether it lies inside an action of that class
(sigmoid, BCE) and, where it does, its distances to the action's start and end (L1 on log
distances). Prediction keeps the best (step, class) pairs and turns each into the segment
``[x - left, x + right]``. Whole videos are its native items (``native_mode="full"``); its
post-processing declaration asks for a Gaussian soft-NMS merge if it is ever run on windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import torch
import torch.nn.functional as F
from torch import nn

from tal_bench.data import stack_items
from tal_bench.models import ModelSpec, PostDecl
from tal_bench.types import ItemDetections, VideoItem


@dataclass
class ExampleConfig:
    hidden_dim: int = 64  # width of the 3-tap conv trunk
    max_dets_per_item: int = 100  # (step, class) pairs kept per item


class ExampleDetector(nn.Module):
    """Conv trunk -> per-step class logits (K) and log boundary distances (2)."""

    def __init__(self, cfg: ExampleConfig, input_dim: int, num_classes: int) -> None:
        super().__init__()
        self.cfg, self.num_classes = cfg, num_classes
        self.trunk = nn.Sequential(
            nn.Conv1d(input_dim, cfg.hidden_dim, kernel_size=3, padding=1), nn.ReLU()
        )
        self.cls_head = nn.Conv1d(cfg.hidden_dim, num_classes, kernel_size=1)
        self.reg_head = nn.Conv1d(cfg.hidden_dim, 2, kernel_size=1)

    def _device(self) -> torch.device:
        return self.cls_head.weight.device

    def forward_dense(self, feats: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, C, T) features -> (B, K, T) logits, (B, 2, T) log distances, (B, T) mask."""
        x = self.trunk(feats) * mask[:, None, :]  # (B, H, T)
        return self.cls_head(x), self.reg_head(x), mask

    def training_step(self, items: list[VideoItem]) -> dict[str, torch.Tensor]:
        feats, mask = (t.to(self._device()) for t in stack_items(items))  # (B, C, T), (B, T)
        logits, log_dist, mask = self.forward_dense(feats, mask)
        inside, dist = _targets(items, self.num_classes, logits.shape[-1])  # (B,K,T), (B,2,T)
        inside, dist = inside.to(logits.device), dist.to(logits.device)
        weight = mask[:, None, :].float().expand_as(logits)
        cls_loss = F.binary_cross_entropy_with_logits(logits, inside, weight=weight)
        pos = (inside.amax(dim=1) > 0) & mask  # (B, T) steps inside some action
        reg_loss = (log_dist - dist.clamp(min=0.5).log()).abs().mean(dim=1)[pos].sum()
        reg_loss = reg_loss / pos.sum().clamp(min=1)
        loss = cls_loss + reg_loss
        return {"loss": loss, "cls_loss": cls_loss.detach(), "reg_loss": reg_loss.detach()}

    @torch.no_grad()
    def predict(self, items: list[VideoItem]) -> list[ItemDetections]:
        feats, mask = (t.to(self._device()) for t in stack_items(items))
        return self.postprocess(self.forward_dense(feats, mask), mask)

    def postprocess(
        self, out: tuple[torch.Tensor, ...], mask: torch.Tensor
    ) -> list[ItemDetections]:
        """The best (step, class) pairs of every item as segments in grid coordinates."""
        logits, log_dist, _ = out
        probs = torch.sigmoid(logits) * mask[:, None, :]  # (B, K, T)
        dets = []
        for b in range(probs.shape[0]):
            num_steps = probs.shape[-1]
            scores, flat = (
                probs[b].reshape(-1).topk(min(self.cfg.max_dets_per_item, probs[b].numel()))
            )
            labels, xs = flat // num_steps, (flat % num_steps).float()
            dist = log_dist[b, :, flat % num_steps].exp()  # (2, k)
            segs = torch.stack([xs - dist[0], xs + dist[1]], dim=1)  # (k, 2)
            dets.append(ItemDetections(segs.cpu(), scores.cpu(), labels.long().cpu()))
        return dets


def _targets(items: list[VideoItem], num_classes: int, length: int):
    """(B, K, T) inside-an-action-of-class-k and (B, 2, T) distances to its start and end."""
    x = torch.arange(length, dtype=torch.float32)  # (T,)
    inside = torch.zeros(len(items), num_classes, length)
    dist = torch.ones(len(items), 2, length)
    for b, item in enumerate(items):
        for (start, end), label in zip(
            item["segments"].tolist(), item["labels"].tolist(), strict=True
        ):
            hit = (x >= start) & (x <= end)
            inside[b, label] = torch.maximum(inside[b, label], hit.float())
            dist[b, 0, hit], dist[b, 1, hit] = x[hit] - start, end - x[hit]
    return inside, dist


SPEC = ModelSpec(
    name="example",
    config_cls=ExampleConfig,
    build=lambda cfg, input_dim, num_classes: ExampleDetector(cfg, input_dim, num_classes),
    description="outside example: per-step classes + boundary distances (talbench_example)",
    class_agnostic=False,
    native_mode="full",
    post=PostDecl(window_merge="soft_nms", merge_params={"sigma": 0.5}, max_dets_per_video=100),
    presets=resources.files("talbench_example") / "presets.toml",
)
