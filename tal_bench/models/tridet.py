"""TriDet: "TriDet: Temporal Action Detection with Relative Boundary Modeling" (Shi et al.,
CVPR 2023), following the official code (dingfengshi/TriDet, libs/modeling/{blocks,backbones,
meta_archs}.py) and its THUMOS-14 I3D config.

* Backbone "SGP" (arch 2, 2, 5): ActionFormer's two embedding convs, then Scalable-Granularity
  Perception blocks, two at full resolution and five that each start with a max-pool (k 3,
  s 2). An SGP block normalises its input (LN) and adds three depthwise branches to it: an
  instant branch ``fc(x) * relu(global_fc(mean_t x))`` and a window branch
  ``(conv_w(x) + conv_kw(x)) * psi(x)``; then GroupNorm(16) and a 1x1 MLP (768 hidden) with a
  residual. THUMOS uses window w = 1 and k = 5: conv_w has kernel 1, conv_kw kernel
  ``round((w + 1) k)`` made odd = 11. The depthwise weights start at zero (init_conv_vars 0).
  As in the official block, the branch output is not re-masked and the global mean runs over
  the padded length.
* Trident head: besides the classification head, a start and an end boundary head (20 logits
  per point, on detached features) and a centre-offset head with 2 (bins + 1) outputs. The left
  distance of point t for class c is the expectation over bins j = 0..16 of
  ``softmax_j(start_c[t - 16 + j] + centre_left[j])`` at distance 16 - j (right: ``end_c[t + j]``,
  distance j), in strides; logits beyond a level's ends count as 0.
* Loss: focal loss whose positive entries are multiplied by IoU^0.2 of the decoded offsets
  (gradient flows through the weight, as officially), DIoU on every positive (point, class);
  Gaussian input noise (std 0.0005) on the padded training batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tal_bench.errors import TalBenchError
from tal_bench.models.base import ModelSpec
from tal_bench.models.common import DenseOut, PointDetector, PointDetectorConfig
from tal_bench.models.common.detector import FAMILY_POST, check_item_length, flat_levels
from tal_bench.models.common.heads import ConvHead, RegHead
from tal_bench.models.common.layers import (
    ChannelLayerNorm,
    branch_scale,
    downsample_mask,
    zero_conv_biases,
)
from tal_bench.models.common.losses import ctr_diou_loss_1d, ctr_iou_1d, sigmoid_focal_loss
from tal_bench.models.common.pyramid import ConvEmbedding, IdentityNeck, stem_branch_levels
from tal_bench.registry import MODELS


@dataclass(frozen=True)
class TriDetConfig(PointDetectorConfig):
    """TriDet hyperparameters; defaults are the official THUMOS-14 I3D config."""

    backbone_arch: tuple[int, int, int] = (2, 2, 5)  # embedding convs, stem, branch SGP blocks
    sgp_mlp_dim: int = 768  # hidden width of the SGP MLP
    n_sgp_win_size: int = 1  # w: kernel of psi / conv_w (odd)
    k: float = 5.0  # conv_kw kernel = round((w + 1) k), made odd
    init_conv_vars: float = 0.0  # std of the depthwise SGP weights at init
    sgp_gn_groups: int = 16  # GroupNorm groups before the SGP MLP
    num_bins: int = 16  # Trident bins per side (bin 0 included: num_bins + 1 logits)
    boundary_kernel_size: int = 3  # kernel of the start / end heads
    iou_weight_power: float = 0.2  # positive focal entries x IoU^this
    input_noise: float = 0.0005  # std of Gaussian noise on training inputs
    max_seg_num: int = 2000  # official THUMOS test_cfg


class SGPBlock(nn.Module):
    """Scalable-Granularity Perception block (module docstring)."""

    def __init__(
        self,
        dim: int,
        kernel_size: int,
        stride: int,
        k: float,
        mlp_dim: int,
        droppath: float,
        init_std: float,
        gn_groups: int,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise TalBenchError(f"model.n_sgp_win_size must be odd, got {kernel_size}")
        self.stride = stride
        self.ln = ChannelLayerNorm(dim)
        self.gn = nn.GroupNorm(gn_groups, dim)
        up = round((kernel_size + 1) * k)  # Python rounding, as the official code
        up += 1 - up % 2  # odd, so that it differs from the instant branch's size
        self.psi, self.fc, self.convw, self.convkw, self.global_fc = (
            nn.Conv1d(dim, dim, ks, padding=ks // 2, groups=dim)
            for ks in (kernel_size, 1, kernel_size, up, 1)
        )
        for conv in (self.psi, self.fc, self.convw, self.convkw, self.global_fc):
            nn.init.normal_(conv.weight, 0.0, init_std)
            nn.init.zeros_(conv.bias)
        self.pool = nn.MaxPool1d(stride + 1, stride, (stride + 1) // 2) if stride > 1 else None
        self.mlp = nn.Sequential(nn.Conv1d(dim, mlp_dim, 1), nn.GELU(), nn.Conv1d(mlp_dim, dim, 1))
        self.drop_out, self.drop_mlp = branch_scale(dim, droppath), branch_scale(dim, droppath)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, T), (B, T) -> (B, C, T / stride), (B, T / stride)."""
        if self.pool is not None:
            x = self.pool(x)
        out_mask = downsample_mask(mask, self.stride)
        y = self.ln(x)
        phi = torch.relu(self.global_fc(y.mean(dim=-1, keepdim=True)))  # (B, C, 1)
        y = self.fc(y) * phi + (self.convw(y) + self.convkw(y)) * self.psi(y) + y
        out = x * out_mask[:, None, :].to(x.dtype) + self.drop_out(y)
        return out + self.drop_mlp(self.mlp(self.gn(out))), out_mask


def boundary_windows(logits: torch.Tensor, num_bins: int, side: str) -> torch.Tensor:
    """The ``num_bins + 1`` boundary logits each point reads (zero beyond the level's ends).

    Args:
        logits: (..., T) start or end logits of one level.
        side: ``"start"`` -> steps t - num_bins .. t; ``"end"`` -> steps t .. t + num_bins.

    Returns:
        (..., T, num_bins + 1).
    """
    pad = (num_bins, 0) if side == "start" else (0, num_bins)
    return F.pad(logits, pad).unfold(-1, num_bins + 1, 1)


def trident_offsets(
    start_win: torch.Tensor, end_win: torch.Tensor, centre: torch.Tensor
) -> torch.Tensor:
    """Expected left / right distances (strides) from the Trident head's three outputs.

    Args:
        start_win: (n, nb + 1) start logits at steps t - nb .. t.
        end_win: (n, nb + 1) end logits at steps t .. t + nb.
        centre: (n, 2, nb + 1) centre-offset logits (left bins, right bins).

    Returns:
        (n, 2) distances >= 0.
    """
    nb = start_win.shape[-1] - 1
    bins = torch.arange(nb + 1, dtype=centre.dtype, device=centre.device)  # (nb + 1,)
    left = torch.softmax(start_win + centre[:, 0], dim=-1) @ bins.flip(0)  # (n,)
    right = torch.softmax(end_win + centre[:, 1], dim=-1) @ bins
    return torch.stack([left, right], dim=-1)


class TriDet(PointDetector):
    """The TriDet detector (class-aware; boundaries decoded per class by the Trident head)."""

    def __init__(self, cfg: TriDetConfig, input_dim: int, num_classes: int) -> None:
        n_embd, n_stem, n_branch = cfg.backbone_arch
        strides = tuple(2**i for i in range(n_branch + 1))
        w = cfg.n_sgp_win_size
        super().__init__(cfg, num_classes, strides, max(s * w if w > 1 else s for s in strides))
        dim = cfg.embd_dim
        if dim % cfg.sgp_gn_groups:
            raise TalBenchError(
                f"model.embd_dim ({dim}) must be divisible by model.sgp_gn_groups "
                f"({cfg.sgp_gn_groups})"
            )
        self.embed = ConvEmbedding(input_dim, dim, n_embd, cfg.embd_kernel_size, cfg.embd_with_ln)

        def block(kernel: int, stride: int, droppath: float) -> SGPBlock:
            return SGPBlock(
                dim,
                kernel,
                stride,
                cfg.k,
                cfg.sgp_mlp_dim,
                droppath,
                cfg.init_conv_vars,
                cfg.sgp_gn_groups,
            )

        # official: the stem blocks have kernel 1 and no drop path, the branch blocks w
        self.stem = nn.ModuleList(block(1, 1, 0.0) for _ in range(n_stem))
        self.branch = nn.ModuleList(block(w, 2, cfg.droppath) for _ in range(n_branch))
        zero_conv_biases(self)  # official backbone init (the heads come next)
        self.neck = IdentityNeck(dim, len(strides), "layer")
        prior = cfg.cls_prior_prob
        self.cls_head = ConvHead(
            dim, cfg.head_dim, num_classes, prior_prob=prior, **self.head_kwargs()
        )
        boundary = self.head_kwargs(cfg.boundary_kernel_size)
        self.start_head, self.end_head = (
            ConvHead(dim, cfg.head_dim, num_classes, prior_prob=prior, detach=True, **boundary)
            for _ in range(2)
        )
        nb1 = cfg.num_bins + 1
        self.reg_head = RegHead(dim, cfg.head_dim, 2 * nb1, len(strides), **self.head_kwargs())

    def train_inputs(self, feats: torch.Tensor) -> torch.Tensor:
        """Gaussian noise on the padded batch (official ``input_noise``)."""
        if self.cfg.input_noise <= 0:
            return feats
        return feats + torch.randn_like(feats) * self.cfg.input_noise

    def pyramid(
        self, feats: torch.Tensor, mask: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(B, C_in, T), (B, T) -> six levels [(B, D, T / 2^l)], [(B, T / 2^l)]."""
        levels, masks = stem_branch_levels(self.embed, self.stem, self.branch, feats, mask)
        return self.neck(levels), masks

    def heads(self, feats: list[torch.Tensor], masks: list[torch.Tensor]) -> DenseOut:
        return {
            "cls": self.cls_head(feats, masks),
            "reg": self.reg_head(feats, masks),  # [(B, 2 (nb + 1), T_l)] centre-offset logits
            "start": self.start_head(feats, masks),  # [(B, K, T_l)]
            "end": self.end_head(feats, masks),
        }

    def losses(
        self, out: DenseOut, cls_t: torch.Tensor, reg_t: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """IoU-weighted focal loss + DIoU of the Trident-decoded offsets (module docstring)."""
        nb1 = self.cfg.num_bins + 1
        valid = torch.cat(out["masks"], dim=1)  # (B, P)
        pos = (cls_t.sum(-1) > 0) & valid  # (B, P)
        num_pos = int(pos.sum())
        norm = self.update_normalizer(num_pos)
        # every positive (point, class) pair, in the official order (point-major)
        b, p, c = torch.nonzero(cls_t * pos[..., None], as_tuple=True)
        start = torch.cat([boundary_windows(x, nb1 - 1, "start") for x in out["start"]], dim=2)
        end = torch.cat([boundary_windows(x, nb1 - 1, "end") for x in out["end"]], dim=2)
        centre = flat_levels(out["reg"]).unflatten(-1, (2, nb1))  # (B, P, 2, nb + 1)
        pred = trident_offsets(start[b, c, p], end[b, c, p], centre[b, p])  # (n, 2)
        gt = reg_t[b, p]  # (n, 2)
        focal = sigmoid_focal_loss(flat_levels(out["cls"])[valid], self.smoothed(cls_t[valid]))
        weight = torch.ones_like(focal)  # (N_valid, K)
        weight[cls_t[valid] > 0] = ctr_iou_1d(pred, gt) ** self.cfg.iou_weight_power
        cls_loss = (focal * weight).sum() / norm
        reg_loss = ctr_diou_loss_1d(pred, gt).sum() / norm  # 0 (with a graph) without positives
        return self._loss_dict(cls_loss, reg_loss, num_pos)

    def candidate_offsets(
        self, out: DenseOut, level: int, b: int, pt: torch.Tensor, cls: torch.Tensor
    ) -> torch.Tensor:
        """Trident decoding of the candidates ``(pt, cls)`` of item ``b`` at ``level``."""
        nb = self.cfg.num_bins
        start = boundary_windows(out["start"][level][b], nb, "start")[cls, pt]  # (n, nb + 1)
        end = boundary_windows(out["end"][level][b], nb, "end")[cls, pt]
        centre = out["reg"][level][b][:, pt].T.unflatten(-1, (2, nb + 1))  # (n, 2, nb + 1)
        return trident_offsets(start, end, centre)


def build(cfg: TriDetConfig | None, input_dim: int, num_classes: int) -> TriDet:
    """Registry builder."""
    return TriDet(cfg if cfg is not None else TriDetConfig(), input_dim, num_classes)


MODELS.register("tridet")(
    ModelSpec(
        name="tridet",
        config_cls=TriDetConfig,
        build=build,
        description="TriDet (CVPR 2023): SGP pyramid, Trident head with relative boundaries",
        class_agnostic=False,
        native_mode="full",  # THUMOS: whole videos, random truncation in training
        post=FAMILY_POST,
        check_config=check_item_length,
    )
)
