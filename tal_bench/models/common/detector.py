"""The single-stage point detector that ActionFormer, TriDet and TemporalMaxer share.

Each of the three official repositories has the same meta-architecture around its own
backbone (ActionFormer, happyharrycn/actionformer_release, libs/modeling/meta_archs.py
``PtTransformer``): pad the batch, backbone -> per-level neck norm -> shared classification and
regression heads on every pyramid level, points on the pyramid, centre-sampling label
assignment, focal + DIoU losses normalised by a running count of positives, and at inference
per-level top-k decoding followed by soft-NMS. :class:`PointDetector` is that shell; a detector
file supplies the backbone (:meth:`PointDetector.pyramid`), the heads
(:meth:`PointDetector.heads`) and overrides the few steps where it differs.

Coordinates: items carry GT in grid steps (feature i at x = i), which is also the official
"feature grid"; detections come back in the same units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from tal_bench.data.items import stack_items
from tal_bench.errors import TalBenchError
from tal_bench.models.base import PostDecl
from tal_bench.models.common.assign import assign_shortest
from tal_bench.models.common.heads import ConvHead, RegHead
from tal_bench.models.common.losses import ctr_diou_loss_1d, sigmoid_focal_loss
from tal_bench.models.common.points import pyramid_points
from tal_bench.models.common.postprocess import (
    Candidates,
    NmsSettings,
    nms_videos,
    segments_from_offsets,
    top_candidates,
)
from tal_bench.models.common.pyramid import pad_to, padded_length
from tal_bench.types import ItemDetections, VideoItem

# The dense output: {"cls": [(B, K, T_l)], "reg": [(B, R, T_l)], "masks": [(B, T_l)],
# "points": (P, 4)} plus detector-specific entries (TriDet: "start", "end").
DenseOut = dict[str, Any]

THUMOS_RANGES = ((0.0, 4.0), (4.0, 8.0), (8.0, 16.0), (16.0, 32.0), (32.0, 64.0), (64.0, 10000.0))


# What runs after the detector's own per-video NMS (``tal_bench.postprocess``): nothing in full
# mode, the native one; in window mode a per-label soft-NMS at the family's sigma. The detector's
# ``max_seg_num`` is the only cap per video, as officially.
FAMILY_POST = PostDecl(merge_params={"sigma": 0.5}, max_dets_per_video=1_000_000)


def check_item_length(cfg: Any) -> None:
    """``ModelSpec.check_config``: items must fit ``model.max_seq_len`` (training pads to it
    and refuses longer items), refused when the run config is resolved rather than at the
    first training step."""
    key = {"full": "max_len", "window": "window", "resize": "resize_len"}[cfg.data.mode]
    length = getattr(cfg.data, key)
    if length > cfg.model.max_seq_len:
        raise TalBenchError(
            f"data.{key} ({length}) exceeds model.max_seq_len ({cfg.model.max_seq_len}): "
            f"set data.{key} <= {cfg.model.max_seq_len} or raise model.max_seq_len"
        )


@dataclass(frozen=True)
class PointDetectorConfig:
    """Fields the three detectors share; defaults are the official THUMOS-14 I3D values
    (each repository's ``configs/thumos_i3d.yaml`` over its ``libs/core/config.py``)."""

    # -- input and pyramid
    max_seq_len: int = 2304  # training length; inference pads to it (or to max_div_factor)
    max_buffer_len_factor: float = 6.0  # points exist up to max_seq_len x this (official 6;
    #                                     the study's L = 30000 needs >= 14 at 2304)
    embd_dim: int = 512  # embedding / pyramid width
    embd_kernel_size: int = 3
    embd_with_ln: bool = True
    head_dim: int = 512
    head_num_layers: int = 3  # convs per head, the final one included
    head_kernel_size: int = 3
    head_with_ln: bool = True
    regression_range: tuple[tuple[float, float], ...] = THUMOS_RANGES  # per level, grid steps
    # -- training
    center_sample_radius: float = 1.5  # centre sampling, in strides
    cls_prior_prob: float = 0.01  # initial sigmoid output of the classifier
    init_loss_norm: float = 100.0  # initial running positive count (THUMOS 100)
    loss_norm_momentum: float = 0.9
    loss_weight: float = 1.0  # weight of the regression loss
    label_smoothing: float = 0.0
    droppath: float = 0.1  # stochastic depth of the backbone's residual branches
    # -- inference (official test_cfg)
    pre_nms_thresh: float = 0.001  # per-level candidates need a probability above this
    pre_nms_topk: int = 2000  # candidates kept per level
    duration_thresh: float = 0.05  # candidates must be longer (grid steps)
    nms_sigma: float = 0.5  # Gaussian soft-NMS
    min_score: float = 0.001  # soft-NMS drops segments decayed below this
    max_seg_num: int = 200  # detections per video
    multiclass_nms: bool = True  # NMS within each class (THUMOS) or across classes
    voting_thresh: float = 0.7  # segment voting IoU, class-agnostic NMS only

    def check(self, num_levels: int, max_div_factor: int) -> None:
        """Raise a one-line TalBenchError for settings the model cannot run with."""
        checks = [
            (
                self.max_seq_len > 0 and self.max_seq_len % max_div_factor == 0,
                f"model.max_seq_len ({self.max_seq_len}) must be a positive multiple of "
                f"{max_div_factor} (the largest pyramid stride x attention chunk)",
            ),
            (
                len(self.regression_range) == num_levels,
                f"model.regression_range needs {num_levels} [lo, hi] pairs, one per level",
            ),
            (self.max_buffer_len_factor >= 1, "model.max_buffer_len_factor must be >= 1"),
            (
                min(self.embd_dim, self.head_dim, self.head_num_layers) >= 1,
                "model.embd_dim, head_dim and head_num_layers must be >= 1",
            ),
            (
                0 < self.cls_prior_prob < 1 and 0 <= self.droppath < 1,
                "model.cls_prior_prob must be in (0, 1) and model.droppath in [0, 1)",
            ),
            (
                self.init_loss_norm > 0 and self.loss_weight > 0,
                "model.init_loss_norm and model.loss_weight must be > 0",
            ),
            (
                self.nms_sigma > 0 and self.max_seg_num >= 1 and self.pre_nms_topk >= 1,
                "model.nms_sigma must be > 0, max_seg_num and pre_nms_topk >= 1",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise TalBenchError(message)

    def nms(self) -> NmsSettings:
        return NmsSettings(
            self.nms_sigma,
            self.min_score,
            self.max_seg_num,
            self.multiclass_nms,
            self.voting_thresh,
        )


class PointDetector(nn.Module):
    """Shell of the ActionFormer family (module docstring). Subclasses set up the layers and
    implement :meth:`pyramid` (and :meth:`heads` when theirs differ)."""

    def __init__(
        self, cfg: PointDetectorConfig, num_classes: int, strides: tuple[int, ...], div: int
    ) -> None:
        super().__init__()
        cfg.check(len(strides), div)
        self.cfg = cfg
        self.num_classes = num_classes
        self.strides = strides
        self.max_div_factor = div
        self.loss_normalizer = float(cfg.init_loss_norm)  # running positive count (official)

    # ------------------------------------------------------------------ network

    def pyramid(
        self, feats: torch.Tensor, mask: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Backbone + neck: (B, C, T), (B, T) -> [(B, D, T_l)], [(B, T_l)]."""
        raise NotImplementedError

    def head_kwargs(self, kernel_size: int | None = None) -> dict[str, Any]:
        """Keyword arguments of a shared head built from the config."""
        cfg = self.cfg
        return {
            "num_layers": cfg.head_num_layers,
            "kernel_size": cfg.head_kernel_size if kernel_size is None else kernel_size,
            "with_ln": cfg.head_with_ln,
        }

    def init_point_heads(self, dim: int) -> None:
        """The classification head (prior-initialised) and the 2-output regression head of
        ActionFormer and TemporalMaxer, in this order (it fixes the weight initialisation)."""
        cfg = self.cfg
        prior = cfg.cls_prior_prob
        self.cls_head = ConvHead(
            dim, cfg.head_dim, self.num_classes, prior_prob=prior, **self.head_kwargs()
        )
        self.reg_head = RegHead(dim, cfg.head_dim, 2, len(self.strides), **self.head_kwargs())

    def heads(self, feats: list[torch.Tensor], masks: list[torch.Tensor]) -> DenseOut:
        """Heads on every level: ``cls`` [(B, K, T_l)] and ``reg`` [(B, R, T_l)] (a detector
        may add entries)."""
        return {"cls": self.cls_head(feats, masks), "reg": self.reg_head(feats, masks)}

    def train_inputs(self, feats: torch.Tensor) -> torch.Tensor:
        """Training-time input transform after padding (identity; TriDet adds noise)."""
        return feats

    def forward_dense(self, feats: torch.Tensor, mask: torch.Tensor) -> DenseOut:
        """The dense network (backbone, neck, heads) after the official padding rule.

        Args:
            feats: (B, C, T) features; mask: (B, T) valid steps.

        Returns:
            ``{"cls", "reg", "masks", "points", ...}`` (see ``DenseOut``); :meth:`postprocess`
            turns it into detections. ``talbench profile`` times and counts this half alone.
        """
        length = padded_length(
            feats.shape[-1], self.cfg.max_seq_len, self.max_div_factor, self.training
        )
        feats, mask = pad_to(feats, mask, length)  # (B, C, T'), (B, T')
        if self.training:
            feats = self.train_inputs(feats)
        levels, masks = self.pyramid(feats, mask)
        out = self.heads(levels, masks)
        out["masks"] = masks
        out["points"] = pyramid_points(
            [m.shape[1] for m in masks],
            self.strides,
            self.cfg.regression_range,
            self.cfg.max_seq_len,
            self.cfg.max_buffer_len_factor,
            device=feats.device,
        )
        return out

    # ------------------------------------------------------------------ training

    def optimizer_groups(self) -> list[dict]:
        """Weight decay on Conv/Linear weights only: biases, norms, ``Scale`` and drop-path
        scales get none (ActionFormer's ``make_optimizer``, happyharrycn/actionformer_release,
        libs/utils/train_utils.py, after minGPT; TriDet and TemporalMaxer use it too)."""
        decayed = {id(m.weight) for m in self.modules() if isinstance(m, nn.Conv1d | nn.Linear)}
        params = list(self.parameters())
        return [
            {"params": [p for p in params if id(p) in decayed]},
            {"params": [p for p in params if id(p) not in decayed], "wd_mult": 0.0},
        ]

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def training_step(self, items: list[VideoItem]) -> dict[str, torch.Tensor]:
        """Forward, label assignment and losses of one batch.

        Returns:
            ``loss`` (to backprop) and detached ``cls_loss``, ``reg_loss``, ``num_pos``.
        """
        feats, mask = stack_items(items)  # (B, C, T), (B, T)
        device = self._device()
        out = self.forward_dense(feats.to(device), mask.to(device))
        gts = [(it["segments"].to(device, torch.float32), it["labels"].to(device)) for it in items]
        with torch.no_grad():
            cls_t, reg_t = self.targets(out, gts)  # (B, P, K), (B, P, 2)
        return self.losses(out, cls_t, reg_t)

    def targets(
        self, out: DenseOut, gts: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Assignment of every item: (B, P, K) class targets and (B, P, 2) offsets (strides)."""
        points, k, radius = out["points"], self.num_classes, self.cfg.center_sample_radius
        pairs = [assign_shortest(points, seg, lab, k, radius) for seg, lab in gts]
        return torch.stack([c for c, _ in pairs]), torch.stack([r for _, r in pairs])

    def update_normalizer(self, num_pos: int) -> float:
        """The running positive count that divides both losses (official EMA, momentum 0.9)."""
        m = self.cfg.loss_norm_momentum
        self.loss_normalizer = m * self.loss_normalizer + (1 - m) * max(num_pos, 1)
        return self.loss_normalizer

    def smoothed(self, targets: torch.Tensor) -> torch.Tensor:
        """Label smoothing as the official code: ``y (1 - e) + e / (K + 1)``."""
        eps = self.cfg.label_smoothing
        return targets * (1 - eps) + eps / (self.num_classes + 1)

    def losses(
        self, out: DenseOut, cls_t: torch.Tensor, reg_t: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Focal loss over valid points + DIoU on positives, both / the running count."""
        valid = torch.cat(out["masks"], dim=1)  # (B, P)
        logits = flat_levels(out["cls"])  # (B, P, K)
        offsets = flat_levels(out["reg"])  # (B, P, 2)
        pos = (cls_t.sum(-1) > 0) & valid  # (B, P)
        num_pos = int(pos.sum())
        norm = self.update_normalizer(num_pos)
        cls_loss = sigmoid_focal_loss(logits[valid], self.smoothed(cls_t[valid])).sum() / norm
        # without positives the sum is 0 and still part of the graph
        reg_loss = ctr_diou_loss_1d(offsets[pos], reg_t[pos]).sum() / norm
        return self._loss_dict(cls_loss, reg_loss, num_pos)

    def _loss_dict(
        self, cls_loss: torch.Tensor, reg_loss: torch.Tensor, num_pos: float
    ) -> dict[str, torch.Tensor]:
        loss = cls_loss + self.cfg.loss_weight * reg_loss
        return {
            "loss": loss,
            "cls_loss": cls_loss.detach(),
            "reg_loss": reg_loss.detach(),
            "num_pos": torch.tensor(float(num_pos)),
        }

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def predict(self, items: list[VideoItem]) -> list[ItemDetections]:
        """Detections of every item in its grid steps. The network sees one video at a time as
        in the official inference (batch 1: padding follows each video's own length); the
        soft-NMS of all items then runs side by side."""
        was_training = self.training
        self.eval()
        try:
            device = self._device()
            videos = []
            for item in items:
                feats, mask = stack_items([item])  # (1, C, T), (1, T)
                videos += self.candidates(self.forward_dense(feats.to(device), mask.to(device)))
            return nms_videos(videos, self.cfg.nms())
        finally:
            self.train(was_training)

    def candidate_offsets(
        self, out: DenseOut, level: int, b: int, pt: torch.Tensor, cls: torch.Tensor
    ) -> torch.Tensor:
        """(n, 2) predicted distances (strides) of the candidates ``(pt, cls)`` of item ``b``."""
        return out["reg"][level][b][:, pt].T

    def postprocess(self, out: DenseOut, mask: torch.Tensor) -> list[ItemDetections]:
        """Per-level top-k decoding and soft-NMS of every item (module docstring of
        ``tal_bench.models.common.postprocess``)."""
        del mask  # the padded per-level masks travel in ``out``
        return nms_videos(self.candidates(out), self.cfg.nms())

    def candidates(self, out: DenseOut) -> list[Candidates]:
        """Every item's decoded pre-NMS candidates: the ``pre_nms_topk`` best (point, class)
        pairs of each level above ``pre_nms_thresh``, longer than ``duration_thresh``."""
        cfg = self.cfg
        videos = []
        for b in range(out["cls"][0].shape[0]):
            parts = []
            for level, stride in enumerate(self.strides):
                valid = out["masks"][level][b]  # (T_l,)
                probs = torch.sigmoid(out["cls"][level][b]).T * valid[:, None]  # (T_l, K)
                pt, cls, scores = top_candidates(probs, cfg.pre_nms_thresh, cfg.pre_nms_topk)
                offsets = self.candidate_offsets(out, level, b, pt, cls)  # (n, 2)
                segs, keep = segments_from_offsets(
                    pt.float() * stride, offsets, stride, cfg.duration_thresh
                )
                parts.append((segs[keep], scores[keep], cls[keep]))
            videos.append(
                tuple(
                    torch.cat([p[i] for p in parts]).detach().cpu().numpy().astype(dtype)
                    for i, dtype in enumerate((np.float64, np.float64, np.int64))
                )
            )
        return videos


def flat_levels(per_level: list[torch.Tensor]) -> torch.Tensor:
    """[(B, R, T_l)] -> (B, P, R), levels concatenated in order (P = sum T_l)."""
    return torch.cat([x.transpose(1, 2) for x in per_level], dim=1)
