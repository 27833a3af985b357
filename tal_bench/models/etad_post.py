"""ETAD inference post-processing for one item (sming256/ETAD,
lib/dataset/anet_1_3/post_det.py).

BMN-style boundary selection keeps a proposal only when the startness at ``floor(s)`` and the
endness at ``floor(e)`` (snippet-edge units, clamped to the valid steps) are peaks or above half
the maximum; the score is ``p_iou_cls * p_iou_reg`` (the TEM probabilities are not multiplied in);
Gaussian soft-NMS then keeps the top segments. Output is in the item's grid coordinates
(edge - 0.5), clipped to the valid range ``[-0.5, L - 0.5]`` (the snippet edges of the L valid
steps), with label -1.
"""

from __future__ import annotations

import numpy as np
import torch

from tal_bench.models.ops.soft_nms import soft_nms_groups
from tal_bench.types import ItemDetections


def boundary_mask(prob: torch.Tensor, force_first: bool) -> torch.Tensor:
    """Steps that are strict local peaks (zero-padded) or above ``0.5 * max``.

    Args:
        prob: (L,) startness or endness over the valid steps.
        force_first: force index 0 (startness) instead of index L-1 (endness).

    Returns:
        (L,) bool mask.
    """
    padded = torch.nn.functional.pad(prob, (1, 1))  # (L + 2,)
    peak = (prob > padded[:-2]) & (prob > padded[2:])
    mask = peak | (prob > 0.5 * prob.max())
    mask[0 if force_first else -1] = True
    return mask


def postprocess_items(
    items: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]],
    sigma: float,
    max_keep: int,
) -> list[ItemDetections]:
    """Turn each item's scored proposals into detections, the soft-NMS loops of all items
    vectorised together (each item's result is that of the item alone).

    Args:
        items: per item ``(anchors, scores, startness, endness)``: (N, 2) refined proposals in
            snippet-edge units (all from valid cells), (N,) ``p_iou_cls * p_iou_reg``, and the
            (L,) TEM startness and endness over the item's valid steps.
        sigma: soft-NMS Gaussian width.
        max_keep: detections kept per item (soft-NMS budget = top-k).

    Returns:
        one ``ItemDetections`` per item in grid coordinates, sorted by decayed score, labels -1.
    """
    filtered = [_boundary_filter(*item) for item in items]  # (N_i, 2) float64, (N_i,)
    picks = soft_nms_groups(filtered, sigma=sigma, max_keep=max_keep)
    dets = []
    for (anchors, _), (order, kept_scores), item in zip(filtered, picks, items, strict=True):
        length = item[2].shape[0]
        segs = torch.from_numpy(anchors[order] - 0.5)  # (K, 2) edge -> grid coordinates
        segs = segs.clamp(min=-0.5, max=length - 0.5)
        nonempty = segs[:, 1] > segs[:, 0]
        dets.append(
            ItemDetections(
                segments=segs[nonempty].float(),
                scores=torch.from_numpy(kept_scores)[nonempty].float(),
                labels=torch.full((int(nonempty.sum()),), -1, dtype=torch.long),
            )
        )
    return dets


def _boundary_filter(
    anchors: torch.Tensor, scores: torch.Tensor, startness: torch.Tensor, endness: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """The proposals whose start and end steps pass :func:`boundary_mask`, as float64 numpy."""
    length = startness.shape[0]
    if length == 0 or anchors.shape[0] == 0:
        return np.zeros((0, 2)), np.zeros(0)
    idx = torch.floor(anchors).long().clamp(0, length - 1)  # (N, 2) official int(s*T)
    keep = boundary_mask(startness, True)[idx[:, 0]] & boundary_mask(endness, False)[idx[:, 1]]
    return (
        anchors[keep].detach().cpu().double().numpy().reshape(-1, 2),
        scores[keep].detach().cpu().double().numpy(),
    )
