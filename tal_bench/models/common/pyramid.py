"""Embedding, neck and the padding rule shared by the ActionFormer family.

* :class:`ConvEmbedding`: the two masked 3-tap convs (each + channel LayerNorm + ReLU) that
  open all three backbones (ActionFormer, happyharrycn/actionformer_release,
  libs/modeling/backbones.py; TriDet and TemporalMaxer keep them).
* :class:`IdentityNeck`: the official "identity" FPN, one normalisation per pyramid level
  (ActionFormer / TriDet: channel LayerNorm; TemporalMaxer: a non-affine GroupNorm(4)).
* :func:`padded_length`: how long the dense network sees an input. Training batches are padded
  to ``max_seq_len``; at inference a video is padded to ``max_seq_len`` when shorter, else to the
  next multiple of the model's largest divisible stride (``max_div_factor``), as the official
  ``preprocessing`` does. That rule is why MACs are flat up to 2304 steps and step-wise above.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tal_bench.errors import TalBenchError
from tal_bench.models.common.layers import ChannelLayerNorm, MaskedConv1d


class ConvEmbedding(nn.Module):
    """``num_layers`` masked convs (kernel ``kernel_size``, no bias when followed by LN)."""

    def __init__(
        self, in_dim: int, dim: int, num_layers: int = 2, kernel_size: int = 3, with_ln: bool = True
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            MaskedConv1d(in_dim if i == 0 else dim, dim, kernel_size, bias=not with_ln)
            for i in range(num_layers)
        )
        self.norms = nn.ModuleList(
            ChannelLayerNorm(dim) if with_ln else nn.Identity() for _ in range(num_layers)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C_in, T), (B, T) -> (B, D, T), (B, T)."""
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x, mask = conv(x, mask)
            x = F.relu(norm(x))
        return x, mask


class IdentityNeck(nn.Module):
    """One normalisation per pyramid level; features and masks otherwise pass through.

    Args:
        dim: channels of every level.
        num_levels: pyramid levels.
        norm: ``"layer"`` (channel LayerNorm, ActionFormer/TriDet) or ``"group"`` (non-affine
            GroupNorm with ``groups`` groups over (C, T) incl. padding, TemporalMaxer).
    """

    def __init__(self, dim: int, num_levels: int, norm: str = "layer", groups: int = 4) -> None:
        super().__init__()
        if norm == "layer":
            self.norms = nn.ModuleList(ChannelLayerNorm(dim) for _ in range(num_levels))
        elif norm == "group":
            self.norms = nn.ModuleList(
                nn.GroupNorm(groups, dim, affine=False) for _ in range(num_levels)
            )
        else:
            raise ValueError(f"neck norm must be 'layer' or 'group', got {norm!r}")

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """[(B, D, T_l)] -> [(B, D, T_l)]."""
        return [norm(x) for norm, x in zip(self.norms, feats, strict=True)]


def stem_branch_levels(
    embed: nn.Module,
    stem: nn.ModuleList,
    branch: nn.ModuleList,
    feats: torch.Tensor,
    mask: torch.Tensor,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Embedding, full-resolution stem blocks, then downsampling branch blocks (ActionFormer's
    and TriDet's backbone layout): the stem output and every branch output are the levels.

    Args:
        embed: ``(x, mask) -> (x, mask)`` embedding.
        stem, branch: blocks ``(x, mask) -> (x, mask)``; branch blocks halve the length.
        feats: (B, C_in, T); mask: (B, T).

    Returns:
        ``1 + len(branch)`` levels [(B, D, T / 2^l)] and their masks [(B, T / 2^l)].
    """
    x, mask = embed(feats, mask)  # (B, D, T)
    for blk in stem:
        x, mask = blk(x, mask)
    levels, masks = [x], [mask]
    for blk in branch:
        x, mask = blk(x, mask)
        levels.append(x)
        masks.append(mask)
    return levels, masks


def padded_length(length: int, max_seq_len: int, max_div_factor: int, training: bool) -> int:
    """The length the dense network runs at for an input of ``length`` steps.

    Args:
        length: longest valid length in the batch.
        max_seq_len: the model's ``max_seq_len`` (a multiple of ``max_div_factor``).
        max_div_factor: the largest stride every level must divide (pyramid stride x attention
            chunk).
        training: training pads to ``max_seq_len`` and refuses longer inputs.

    Returns:
        ``max_seq_len`` if ``length <= max_seq_len``; otherwise (inference only) ``length``
        rounded up to a multiple of ``max_div_factor``.
    """
    if length <= max_seq_len:
        return max_seq_len
    if training:
        raise TalBenchError(
            f"a training item has {length} steps but model.max_seq_len is {max_seq_len}; "
            f"set data.max_len <= {max_seq_len} (or raise model.max_seq_len)"
        )
    return -(-length // max_div_factor) * max_div_factor


def pad_to(
    feats: torch.Tensor, mask: torch.Tensor, length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad (B, C, T) features and their (B, T) mask on the right to ``length`` steps."""
    extra = length - feats.shape[-1]
    if extra == 0:
        return feats, mask
    return F.pad(feats, (0, extra)), F.pad(mask, (0, extra), value=False)
