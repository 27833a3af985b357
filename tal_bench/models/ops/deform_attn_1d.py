"""Temporal (1-D) deformable attention sampling in plain PyTorch.

Deformable DETR's multi-scale deformable attention reduced to one temporal level, as TadTR uses
it (xlliu7/TadTR, ``models/ops/temporal_deform_attn/temporal_deform_attn.py``, its ``pytorch``
backend): for every query q and head h, the head's value sequence is read at P fractional
locations and the P samples are summed with the query's attention weights.

Locations are normalised to the sequence: u = 0 is the left edge of step 0, u = 1 the right edge
of step T - 1, so step i sits at u = (i + 0.5) / T and a location reads the fractional index
``x = u * T - 0.5``. A sample is the linear interpolation of steps ``floor(x)`` and
``floor(x) + 1``; a step outside ``[0, T - 1]`` contributes zero (zero padding). This is
``grid_sample(mode="bilinear", padding_mode="zeros", align_corners=False)`` over the sequence
viewed as a height-1 image, read on its one row, which is what the official backend runs.

The weighted sum over the P samples is a batched matrix-vector product, written as one so that
the MAC counters count it (P multiply-adds per output channel) next to the sampler's own
interpolation (``grid_sample``: 4 per sampled value, bilinear, as fvcore's handle counts it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def deform_attn_1d(
    value: torch.Tensor, locations: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Sample every head's values at its locations and sum them with the attention weights.

    Args:
        value: (B, T, H, Dh) per-head values (padding already zeroed by the caller).
        locations: (B, Q, H, P) normalised sampling locations (see the module docstring).
        weights: (B, Q, H, P) attention weights of the P samples (softmax over P).

    Returns:
        (B, Q, H * Dh) the attended values, heads concatenated.
    """
    n_batch, length, heads, head_dim = value.shape
    n_query, points = locations.shape[1], locations.shape[3]
    image = value.permute(0, 2, 3, 1).reshape(n_batch * heads, head_dim, 1, length)  # (BH,Dh,1,T)
    grid_x = (2.0 * locations - 1.0).transpose(1, 2).reshape(n_batch * heads, n_query, points)
    # y = 0 in grid coordinates is the centre of the one row: its weight is exactly 1.
    grid = torch.stack([grid_x, torch.zeros_like(grid_x)], dim=-1)  # (BH, Q, P, 2)
    sampled = F.grid_sample(
        image, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )  # (BH, Dh, Q, P)
    attn = weights.transpose(1, 2).reshape(n_batch * heads, n_query, points, 1)  # (BH, Q, P, 1)
    out = torch.matmul(sampled.permute(0, 2, 1, 3), attn)  # (BH, Q, Dh, 1)
    out = out.view(n_batch, heads, n_query, head_dim).transpose(1, 2)  # (B, Q, H, Dh)
    return out.reshape(n_batch, n_query, heads * head_dim)
