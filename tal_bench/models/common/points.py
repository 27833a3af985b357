"""Anchor points of the feature pyramid (ActionFormer, happyharrycn/actionformer_release,
libs/modeling/loc_generators.py; TriDet and TemporalMaxer use the same generator).

Level l with stride s_l has one point per step at grid positions 0, s_l, 2 s_l, ... (no
half-stride offset), each carrying the level's regression range and stride. The official
generator pre-computes these for ``max_seq_len x max_buffer_len_factor`` steps and refuses
longer inputs; the same limit is kept here as a checked option (``max_buffer_len_factor``), so
that an input past it fails with a message saying which option to raise.
"""

from __future__ import annotations

import torch

from tal_bench.errors import TalBenchError


def pyramid_points(
    lengths: list[int],
    strides: tuple[int, ...],
    regression_range: tuple[tuple[float, float], ...],
    max_seq_len: int,
    buffer_factor: float,
    device: torch.device | None = None,
) -> torch.Tensor:
    """All points of a pyramid, concatenated level by level.

    Args:
        lengths: steps T_l of every level (level 0 at full resolution).
        strides: stride s_l of every level.
        regression_range: ``(lo, hi)`` of every level, in grid steps: a point regresses a
            segment whose larger boundary distance lies in [lo, hi].
        max_seq_len: the model's ``max_seq_len``.
        buffer_factor: ``max_buffer_len_factor``; points exist for at most ``max_seq_len x
            buffer_factor`` level-0 steps.
        device: where the points live.

    Returns:
        (P, 4) float32 with P = sum T_l, columns ``[t, lo, hi, stride]`` (t in grid steps).
    """
    if lengths[0] > max_seq_len * buffer_factor:
        raise TalBenchError(
            f"an input padded to {lengths[0]} steps exceeds the point buffer of "
            f"model.max_seq_len x model.max_buffer_len_factor = {max_seq_len} x {buffer_factor}; "
            f"set model.max_buffer_len_factor >= {lengths[0] / max_seq_len:.2f}"
        )
    rows = []
    for length, stride, (lo, hi) in zip(lengths, strides, regression_range, strict=True):
        t = torch.arange(length, dtype=torch.float32, device=device) * stride  # (T_l,)
        const = torch.tensor([lo, hi, stride], dtype=torch.float32, device=device)
        rows.append(torch.cat([t[:, None], const.expand(length, 3)], dim=1))  # (T_l, 4)
    return torch.cat(rows)  # (P, 4)
