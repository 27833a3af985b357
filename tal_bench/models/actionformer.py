"""ActionFormer: "ActionFormer: Localizing Moments of Actions with Transformers" (Zhang, Wu and
Li, ECCV 2022), following the official code (happyharrycn/actionformer_release,
libs/modeling/{blocks,backbones,meta_archs}.py) and its THUMOS-14 I3D config.

Backbone "convTransformer" (arch 2, 2, 5): two masked 3-tap embedding convs (+ LN + ReLU), two
pre-LN transformer blocks at full resolution and five that each halve the length, giving six
pyramid levels (strides 1 ... 32). A block's attention is local: every step attends to the 19
steps around it (4 heads), its queries, keys and values come from depthwise 3-tap convs (stride
2 in the downsampling blocks) each followed by LN, and the skip path max-pools when
downsampling. The neck, heads, assignment (centre sampling), losses (focal + DIoU) and
post-processing (soft-NMS) are the shared ones of ``tal_bench.models.common``.

Local attention here splits the sequence into blocks of ``w = window // 2`` queries; each block
scores the ``3 w`` keys around it with one matmul and a band mask keeps the ``2 w + 1`` keys
within ``w`` steps. The official code computes the same attention with Longformer's
overlapping ``2 w`` chunks, which costs slightly more: at T = 2304 its attention matmuls are
0.220 G MACs against 0.189 G here, 0.07 % of the network's 45.25 G.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tal_bench.models.base import ModelSpec
from tal_bench.models.common import PointDetector, PointDetectorConfig
from tal_bench.models.common.detector import FAMILY_POST, check_item_length
from tal_bench.models.common.layers import (
    ChannelLayerNorm,
    MaskedConv1d,
    branch_scale,
    zero_conv_biases,
)
from tal_bench.models.common.pyramid import ConvEmbedding, IdentityNeck, stem_branch_levels
from tal_bench.registry import MODELS


@dataclass(frozen=True)
class ActionFormerConfig(PointDetectorConfig):
    """ActionFormer hyperparameters; defaults are the official THUMOS-14 I3D config."""

    backbone_arch: tuple[int, int, int] = (2, 2, 5)  # embedding convs, stem, branch blocks
    n_head: int = 4
    n_mha_win_size: int = 19  # local attention window (odd, >= 3), every level
    mlp_ratio: int = 4  # hidden width of the block MLP / embd_dim


def local_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kv_mask: torch.Tensor, heads: int, w: int
) -> torch.Tensor:
    """Masked multi-head attention of every step over the keys within ``w`` steps of it.

    Args:
        q, k, v: (B, C, T) projected queries / keys / values, T a multiple of ``w``.
        kv_mask: (B, T) valid keys.
        heads: attention heads (C divisible by it).
        w: half window (window = 2 w + 1).

    Returns:
        (B, C, T) attention output (rows without a valid key are 0).
    """
    b, c, t = q.shape
    d, nb = c // heads, t // w
    qb = (q * d**-0.5).view(b, heads, d, nb, w).permute(0, 1, 3, 4, 2)  # (B, H, nb, w, d)
    kw = _neighbour_blocks(k.view(b, heads, d, t), w)  # (B, H, d, nb, 3w)
    vw = _neighbour_blocks(v.view(b, heads, d, t), w)  # (B, H, d, nb, 3w)
    scores = qb @ kw.transpose(2, 3)  # (B, H, nb, w, 3w)
    a = torch.arange(w, device=q.device)
    rel = torch.arange(3 * w, device=q.device)[None, :] - w - a[:, None]  # key - query offset
    band = rel.abs() <= w  # (w, 3w): key c of a block is within w steps of query a
    keys = _neighbour_blocks(kv_mask, w)  # (B, nb, 3w)
    allowed = band[None, None] & keys[:, :, None, :]  # (B, nb, w, 3w)
    scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    probs = probs.masked_fill(~allowed.any(dim=-1)[:, None, :, :, None], 0.0)  # no NaN rows
    out = probs @ vw.permute(0, 1, 3, 4, 2)  # (B, H, nb, w, d)
    return out.permute(0, 1, 4, 2, 3).reshape(b, c, t)  # (B, C, T)


def _neighbour_blocks(x: torch.Tensor, w: int) -> torch.Tensor:
    """The 3 w steps ``[i w - w, i w + 2 w)`` around every block i of ``w`` steps (zero /
    False beyond the ends): (..., T) -> (..., T / w, 3 w). Slices of one padded view, whose
    backward is a cheap sum of slices (``unfold``'s is not)."""
    blocks = F.pad(x, (w, w)).unflatten(-1, (-1, w))  # (..., nb + 2, w)
    return torch.cat([blocks[..., :-2, :], blocks[..., 1:-1, :], blocks[..., 2:, :]], dim=-1)


class LocalMaskedMHCA(nn.Module):
    """Local multi-head "conv attention": depthwise conv + LN before each projection."""

    def __init__(self, dim: int, heads: int, window: int, stride: int) -> None:
        super().__init__()
        if window < 3 or window % 2 == 0 or dim % heads:
            raise ValueError(f"need an odd window >= 3 and dim % heads == 0 ({window}, {heads})")
        self.heads, self.half = heads, window // 2
        # official kernel: stride + 1 when downsampling, else 3 (both 3 for stride 2)
        kernel = stride + 1 if stride > 1 else 3
        self.q_conv, self.k_conv, self.v_conv = (
            MaskedConv1d(dim, dim, kernel, stride, groups=dim, bias=False) for _ in range(3)
        )
        self.q_norm, self.k_norm, self.v_norm = (ChannelLayerNorm(dim) for _ in range(3))
        self.query, self.key, self.value, self.proj = (nn.Conv1d(dim, dim, 1) for _ in range(4))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, T), (B, T) -> (B, C, T / stride), (B, T / stride)."""
        q, q_mask = self.q_conv(x, mask)
        k, kv_mask = self.k_conv(x, mask)
        v, _ = self.v_conv(x, mask)
        q = self.query(self.q_norm(q))  # (B, C, T')
        k = self.key(self.k_norm(k))
        v = self.value(self.v_norm(v))
        out = local_attention(q, k, v, kv_mask, self.heads, self.half)  # (B, C, T')
        return self.proj(out) * q_mask[:, None, :].to(out.dtype), q_mask


class TransformerBlock(nn.Module):
    """Pre-LN block: local attention (+ max-pooled skip when downsampling), then a 1x1 MLP."""

    def __init__(
        self, dim: int, heads: int, window: int, stride: int, droppath: float, mlp_ratio: int
    ) -> None:
        super().__init__()
        self.ln1, self.ln2 = ChannelLayerNorm(dim), ChannelLayerNorm(dim)
        self.attn = LocalMaskedMHCA(dim, heads, window, stride)
        self.pool_skip = (
            nn.MaxPool1d(stride + 1, stride, (stride + 1) // 2) if stride > 1 else nn.Identity()
        )
        self.mlp = nn.Sequential(
            nn.Conv1d(dim, mlp_ratio * dim, 1), nn.GELU(), nn.Conv1d(mlp_ratio * dim, dim, 1)
        )
        self.drop_attn, self.drop_mlp = branch_scale(dim, droppath), branch_scale(dim, droppath)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, T), (B, T) -> (B, C, T / stride), (B, T / stride)."""
        out, out_mask = self.attn(self.ln1(x), mask)
        m = out_mask[:, None, :].to(out.dtype)  # (B, 1, T')
        out = self.pool_skip(x) * m + self.drop_attn(out)
        return out + self.drop_mlp(self.mlp(self.ln2(out)) * m), out_mask


class ActionFormer(PointDetector):
    """The ActionFormer detector (class-aware, multi-class scores per point)."""

    def __init__(self, cfg: ActionFormerConfig, input_dim: int, num_classes: int) -> None:
        n_embd, n_stem, n_branch = cfg.backbone_arch
        strides = tuple(2**i for i in range(n_branch + 1))
        div = max(s * (cfg.n_mha_win_size // 2) * 2 for s in strides)  # official max_div_factor
        super().__init__(cfg, num_classes, strides, div)
        dim = cfg.embd_dim
        self.embed = ConvEmbedding(input_dim, dim, n_embd, cfg.embd_kernel_size, cfg.embd_with_ln)
        block = lambda stride: TransformerBlock(  # noqa: E731
            dim, cfg.n_head, cfg.n_mha_win_size, stride, cfg.droppath, cfg.mlp_ratio
        )
        self.stem = nn.ModuleList(block(1) for _ in range(n_stem))
        self.branch = nn.ModuleList(block(2) for _ in range(n_branch))
        zero_conv_biases(self)  # official backbone init (the heads come next)
        self.neck = IdentityNeck(dim, len(strides), "layer")
        self.init_point_heads(dim)

    def pyramid(
        self, feats: torch.Tensor, mask: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(B, C_in, T), (B, T) -> six levels [(B, D, T / 2^l)], [(B, T / 2^l)]."""
        levels, masks = stem_branch_levels(self.embed, self.stem, self.branch, feats, mask)
        return self.neck(levels), masks


def build(cfg: ActionFormerConfig | None, input_dim: int, num_classes: int) -> ActionFormer:
    """Registry builder."""
    return ActionFormer(cfg if cfg is not None else ActionFormerConfig(), input_dim, num_classes)


MODELS.register("actionformer")(
    ModelSpec(
        name="actionformer",
        config_cls=ActionFormerConfig,
        build=build,
        description="ActionFormer (ECCV 2022): local-attention transformer pyramid, point heads",
        class_agnostic=False,
        native_mode="full",  # THUMOS: whole videos, random truncation in training
        post=FAMILY_POST,
        check_config=check_item_length,
    )
)
