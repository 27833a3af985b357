"""Gaussian soft-NMS for 1-D segments, in pure PyTorch.

The rule of ETAD/BMN (etad.md §7.1 item 4): repeatedly pick the segment with the highest
(current) score, keep it, and decay every remaining segment whose tIoU with it exceeds
``iou_threshold`` by ``exp(-tIoU**2 / sigma)``. Note ``sigma`` divides tIoU² directly (not
``2 sigma²``), as in the official code and OpenTAD's ``nms_1d_cpu`` method 2.

One deliberate difference from the official Python loop: that loop stops when a single candidate
is left and never keeps it; here the last candidate is kept like any other (the result differs only
when fewer than ``max_keep`` segments exist). The loop runs once per kept segment, each iteration
vectorised over all candidates (numpy, float64). Used by the ETAD detector per window and by the
pipeline to merge the windows of one video.
"""

from __future__ import annotations

import numpy as np
import torch


def segment_iou(segment: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """tIoU between one segment and many.

    Args:
        segment: (2,) ``[start, end]``.
        segments: (N, 2) ``[start, end]``.

    Returns:
        (N,) tIoU in [0, 1]; 0 where the union is empty.
    """
    inter = (
        torch.minimum(segments[:, 1], segment[1]) - torch.maximum(segments[:, 0], segment[0])
    ).clamp(min=0.0)  # (N,)
    len_one = (segment[1] - segment[0]).clamp(min=0.0)
    len_many = (segments[:, 1] - segments[:, 0]).clamp(min=0.0)  # (N,)
    union = len_one + len_many - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def soft_nms(
    segments: torch.Tensor,
    scores: torch.Tensor,
    sigma: float,
    max_keep: int,
    iou_threshold: float = 0.0,
    min_score: float = float("-inf"),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian soft-NMS.

    Args:
        segments: (N, 2) ``[start, end]`` in any unit (tIoU is scale-free).
        scores: (N,) confidences.
        sigma: Gaussian width; a picked segment decays others by ``exp(-tIoU**2 / sigma)``.
        max_keep: at most this many segments are returned.
        iou_threshold: only segments with tIoU strictly above it are decayed (ETAD: 0).
        min_score: stop once the best remaining (decayed) score is <= this.

    Returns:
        ``(keep, kept_scores)``: (K,) int64 indices into ``segments`` in pick order and (K,)
        their decayed scores at pick time (non-increasing), K <= max_keep.
    """
    if sigma <= 0:
        raise ValueError(f"soft_nms sigma must be > 0, got {sigma}")
    # float64 numpy: the loop is latency-bound, and numpy's per-call overhead is a few µs.
    seg = segments.detach().cpu().double().numpy().reshape(-1, 2)  # (N, 2)
    work = scores.detach().cpu().double().numpy().copy()  # (N,) current decayed scores
    lengths = np.clip(seg[:, 1] - seg[:, 0], 0.0, None)  # (N,)
    alive = np.ones(work.shape[0], dtype=bool)
    keep, kept = [], []
    for _ in range(min(max_keep, work.shape[0])):
        masked = np.where(alive, work, -np.inf)
        best = int(np.argmax(masked))
        if not alive[best] or masked[best] <= min_score:
            break
        keep.append(best)
        kept.append(masked[best])
        alive[best] = False
        inter = np.clip(
            np.minimum(seg[:, 1], seg[best, 1]) - np.maximum(seg[:, 0], seg[best, 0]), 0.0, None
        )
        union = lengths + lengths[best] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)  # (N,)
        decay = np.where(iou > iou_threshold, np.exp(-(iou * iou) / sigma), 1.0)
        work *= decay
    device = scores.device
    return (
        torch.tensor(keep, dtype=torch.long, device=device),
        torch.tensor(kept, dtype=torch.float32, device=device),
    )
