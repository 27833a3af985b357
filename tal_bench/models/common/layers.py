"""1-D layers shared by the ActionFormer family (ActionFormer, TriDet, TemporalMaxer).

Written from the description of the official blocks (ActionFormer,
happyharrycn/actionformer_release, libs/modeling/blocks.py; TriDet and TemporalMaxer reuse
them). Tensors are ``(B, C, T)``; masks are ``(B, T)`` bool, True on real (non-padded) steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def downsample_mask(mask: torch.Tensor, stride: int) -> torch.Tensor:
    """Nearest-neighbour downsampling of a (B, T) mask by an integer ``stride``.

    ``F.interpolate(mode="nearest")`` to ``T // stride`` picks steps 0, s, 2s, ..., which is
    what this slice does (the official blocks call interpolate).
    """
    if stride == 1:
        return mask
    return mask[:, ::stride][:, : mask.shape[1] // stride]  # (B, T // stride)


class MaskedConv1d(nn.Module):
    """``nn.Conv1d`` with "same" padding whose output is zeroed outside the (downsampled) mask.

    The input length must be divisible by the stride, so that the output mask is the input
    mask taken every ``stride`` steps. A bias, when present, starts at zero.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"MaskedConv1d needs an odd kernel, got {kernel_size}")
        self.stride = stride
        self.conv = nn.Conv1d(
            in_dim, out_dim, kernel_size, stride, kernel_size // 2, groups=groups, bias=bias
        )
        if bias:
            nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C_in, T), (B, T) -> (B, C_out, T / stride), (B, T / stride)."""
        out_mask = downsample_mask(mask, self.stride)
        return self.conv(x) * out_mask[:, None, :].to(x.dtype), out_mask


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of (B, C, T) features (every step on its own)."""

    def __init__(self, dim: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if affine else None
        self.bias = nn.Parameter(torch.zeros(dim)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C, T): ``(x - mean_C) / sqrt(var_C + eps) * weight + bias``."""
        # the fused kernel over a channels-last view: same formula, a fraction of the time of
        # the elementwise mean / var / div chain on CPU (forward and backward)
        out = F.layer_norm(x.transpose(1, 2), (x.shape[1],), self.weight, self.bias, self.eps)
        return out.transpose(1, 2)


class Scale(nn.Module):
    """One learnable scalar multiplying its input (per pyramid level regression scale)."""

    def __init__(self, init: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def drop_path(x: torch.Tensor, prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop whole samples of a residual branch, rescale the kept ones."""
    if prob == 0.0 or not training:
        return x
    keep = 1.0 - prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    return x / keep * torch.floor(keep + torch.rand(shape, dtype=x.dtype, device=x.device))


class AffineDropPath(nn.Module):
    """Drop path on a branch scaled per channel (init 1e-4, LayerScale-style; "affine drop
    path" of the official blocks)."""

    def __init__(self, dim: int, prob: float = 0.0, init: float = 1e-4) -> None:
        super().__init__()
        self.prob = prob
        self.scale = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C, T)."""
        return drop_path(self.scale[None, :, None] * x, self.prob, self.training)


def branch_scale(dim: int, prob: float) -> nn.Module:
    """The residual-branch wrapper the official blocks use: AffineDropPath if ``prob`` > 0."""
    return AffineDropPath(dim, prob) if prob > 0 else nn.Identity()


def zero_conv_biases(module: nn.Module) -> None:
    """Set every ``nn.Conv1d`` bias inside ``module`` to zero (the official backbones' init)."""
    for m in module.modules():
        if isinstance(m, nn.Conv1d) and m.bias is not None:
            nn.init.zeros_(m.bias)
