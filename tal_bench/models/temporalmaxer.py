"""TemporalMaxer: "TemporalMaxer: Maximize Temporal Context with only Max Pooling for Temporal
Action Localization" (Tang, Kim and Lee, arXiv 2303.09055), following the official code
(TuanTNG/TemporalMaxer, libs/modeling/{backbones,blocks,necks,simota_assigner,meta_archs}.py)
and its THUMOS-14 I3D config.

* Backbone "convPooler" (arch 2, 5): ActionFormer's two embedding convs, then five
  parameter-free max-pools (k 3, s 2, pad 1), each output masked by the mask taken every second
  step. The six pyramid levels are the embedding output and the five pooled outputs.
* Neck: a non-affine GroupNorm(4) per level. As officially it normalises over the whole padded
  length, so its statistics include the zero padding.
* Assignment: the official "SimOTA" assigner with keep_percent 1 and confuse_weight 0 keeps
  ActionFormer's positives (centre radius 1.5, regression ranges, shortest GT and ties for the
  classes) with weight 1, and regresses each positive onto the GT of lowest
  ``focal cost + 2 x DIoU cost`` of its current prediction among the GTs containing it
  (``tal_bench.models.common.assign.assign_min_cost``).
* Heads, losses and soft-NMS as ActionFormer's. The official training evaluates every epoch
  from the middle on and keeps the best test epoch; tal-bench evaluates the last (EMA) weights
  like the other detectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tal_bench.models.base import ModelSpec
from tal_bench.models.common import DenseOut, PointDetector, PointDetectorConfig
from tal_bench.models.common.assign import assign_min_cost
from tal_bench.models.common.detector import FAMILY_POST, check_item_length, flat_levels
from tal_bench.models.common.layers import downsample_mask
from tal_bench.models.common.pyramid import ConvEmbedding, IdentityNeck
from tal_bench.registry import MODELS


@dataclass(frozen=True)
class TemporalMaxerConfig(PointDetectorConfig):
    """TemporalMaxer hyperparameters; defaults are the official THUMOS-14 I3D config.

    ``droppath`` is unused (the backbone has no residual branches).
    """

    backbone_arch: tuple[int, int] = (2, 5)  # embedding convs, max-pool levels
    neck_gn_groups: int = 4  # non-affine GroupNorm of every level
    assign_cls_weight: float = 1.0  # SimOTA cost: focal weight
    assign_iou_weight: float = 2.0  # SimOTA cost: DIoU weight


class TemporalMaxer(PointDetector):
    """The TemporalMaxer detector (class-aware)."""

    def __init__(self, cfg: TemporalMaxerConfig, input_dim: int, num_classes: int) -> None:
        n_embd, n_pool = cfg.backbone_arch
        strides = tuple(2**i for i in range(n_pool + 1))
        super().__init__(cfg, num_classes, strides, max(strides))
        dim = cfg.embd_dim
        self.embed = ConvEmbedding(input_dim, dim, n_embd, cfg.embd_kernel_size, cfg.embd_with_ln)
        self.pools = nn.ModuleList(nn.MaxPool1d(3, 2, 1) for _ in range(n_pool))
        self.neck = IdentityNeck(dim, len(strides), "group", cfg.neck_gn_groups)
        self.init_point_heads(dim)

    def pyramid(
        self, feats: torch.Tensor, mask: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(B, C_in, T), (B, T) -> six levels [(B, D, T / 2^l)], [(B, T / 2^l)]."""
        x, mask = self.embed(feats, mask)  # (B, D, T)
        levels, masks = [x], [mask]
        for pool in self.pools:
            mask = downsample_mask(mask, 2)
            x = pool(x) * mask[:, None, :].to(x.dtype)  # (B, D, T / 2^l)
            levels.append(x)
            masks.append(mask)
        return self.neck(levels), masks

    def targets(
        self, out: DenseOut, gts: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """SimOTA-style assignment from the current predictions (module docstring)."""
        cfg, points = self.cfg, out["points"]
        logits = flat_levels(out["cls"]).detach()  # (B, P, K)
        offsets = flat_levels(out["reg"]).detach()  # (B, P, 2)
        pairs = [
            assign_min_cost(
                points,
                seg,
                lab,
                self.num_classes,
                cfg.center_sample_radius,
                logits[b],
                offsets[b],
                cfg.assign_cls_weight,
                cfg.assign_iou_weight,
            )
            for b, (seg, lab) in enumerate(gts)
        ]
        return torch.stack([c for c, _ in pairs]), torch.stack([r for _, r in pairs])


def build(cfg: TemporalMaxerConfig | None, input_dim: int, num_classes: int) -> TemporalMaxer:
    """Registry builder."""
    return TemporalMaxer(cfg if cfg is not None else TemporalMaxerConfig(), input_dim, num_classes)


MODELS.register("temporalmaxer")(
    ModelSpec(
        name="temporalmaxer",
        config_cls=TemporalMaxerConfig,
        build=build,
        description="TemporalMaxer (2023): max-pooling pyramid instead of attention, point heads",
        class_agnostic=False,
        native_mode="full",  # THUMOS: whole videos, random truncation in training
        post=FAMILY_POST,
        check_config=check_item_length,
    )
)
