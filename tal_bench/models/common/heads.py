"""Classification / regression heads shared by the pyramid levels (ActionFormer,
happyharrycn/actionformer_release, libs/modeling/meta_archs.py ``PtTransformerClsHead`` /
``PtTransformerRegHead``; TriDet's boundary heads are classification heads on detached
features, its centre-offset head a regression head with 2 (bins + 1) outputs).

A head is ``num_layers - 1`` masked convs (+ channel LayerNorm + ReLU) and a final masked conv;
its weights are shared by every level and it runs on each level separately.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tal_bench.models.common.layers import ChannelLayerNorm, MaskedConv1d, Scale


class ConvHead(nn.Module):
    """Shared conv head.

    Args:
        in_dim: channels of the pyramid features.
        feat_dim: channels of the hidden layers.
        out_dim: outputs per point.
        num_layers: convs including the final one (official 3).
        kernel_size: kernel of every conv (official 3).
        with_ln: channel LayerNorm after the hidden convs (which then have no bias).
        prior_prob: if set, the final bias starts at ``-log((1 - p) / p)`` so that every
            sigmoid output starts at ``p`` (RetinaNet's prior; official 0.01).
        detach: run on detached features (TriDet's boundary heads do not train the backbone).
    """

    def __init__(
        self,
        in_dim: int,
        feat_dim: int,
        out_dim: int,
        num_layers: int = 3,
        kernel_size: int = 3,
        with_ln: bool = True,
        prior_prob: float | None = None,
        detach: bool = False,
    ) -> None:
        super().__init__()
        self.detach = detach
        self.convs = nn.ModuleList(
            MaskedConv1d(in_dim if i == 0 else feat_dim, feat_dim, kernel_size, bias=not with_ln)
            for i in range(num_layers - 1)
        )
        self.norms = nn.ModuleList(
            ChannelLayerNorm(feat_dim) if with_ln else nn.Identity() for _ in range(num_layers - 1)
        )
        self.out = MaskedConv1d(feat_dim if num_layers > 1 else in_dim, out_dim, kernel_size)
        if prior_prob is not None:
            nn.init.constant_(self.out.conv.bias, -math.log((1 - prior_prob) / prior_prob))

    def level(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One level: (B, D, T_l), (B, T_l) -> (B, out_dim, T_l)."""
        if self.detach:
            x = x.detach()
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x, _ = conv(x, mask)
            x = F.relu(norm(x))
        return self.out(x, mask)[0]

    def forward(self, feats: list[torch.Tensor], masks: list[torch.Tensor]) -> list[torch.Tensor]:
        """[(B, D, T_l)], [(B, T_l)] -> [(B, out_dim, T_l)]."""
        return [self.level(x, m) for x, m in zip(feats, masks, strict=True)]


class RegHead(ConvHead):
    """A :class:`ConvHead` whose output is scaled by one learnable scalar per level and passed
    through ReLU: non-negative distances in units of the level's stride."""

    def __init__(self, in_dim: int, feat_dim: int, out_dim: int, num_levels: int, **kw) -> None:
        super().__init__(in_dim, feat_dim, out_dim, **kw)
        self.scales = nn.ModuleList(Scale() for _ in range(num_levels))

    def forward(self, feats: list[torch.Tensor], masks: list[torch.Tensor]) -> list[torch.Tensor]:
        """[(B, D, T_l)], [(B, T_l)] -> [(B, out_dim, T_l)], every entry >= 0."""
        return [
            F.relu(scale(self.level(x, m)))
            for scale, x, m in zip(self.scales, feats, masks, strict=True)
        ]
