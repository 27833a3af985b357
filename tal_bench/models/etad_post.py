"""ETAD inference post-processing for one item (etad.md §7.1).

BMN-style boundary selection keeps a proposal only when the startness at ``floor(s)`` and the
endness at ``floor(e)`` (snippet-edge units, clamped to the valid steps) are peaks or above half
the maximum; the score is ``p_iou_cls * p_iou_reg`` (the TEM probabilities are not multiplied in);
Gaussian soft-NMS then keeps the top segments. Output is in the item's grid coordinates
(edge - 0.5), clipped to the valid range ``[-0.5, L - 0.5]`` (the snippet edges of the L valid
steps), with label -1.
"""

from __future__ import annotations

import torch

from tal_bench.models.ops.soft_nms import soft_nms
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


def postprocess_item(
    anchors: torch.Tensor,
    scores: torch.Tensor,
    startness: torch.Tensor,
    endness: torch.Tensor,
    sigma: float,
    max_keep: int,
) -> ItemDetections:
    """Turn one item's scored proposals into detections.

    Args:
        anchors: (N, 2) refined proposals in snippet-edge units (all from valid cells).
        scores: (N,) ``p_iou_cls * p_iou_reg``.
        startness: (L,) TEM startness over the item's valid steps.
        endness: (L,) TEM endness over the item's valid steps.
        sigma: soft-NMS Gaussian width.
        max_keep: detections kept (soft-NMS budget = top-k).

    Returns:
        ``ItemDetections`` in grid coordinates, sorted by decayed score, labels -1.
    """
    length = startness.shape[0]
    if length == 0 or anchors.shape[0] == 0:
        return ItemDetections(torch.zeros(0, 2), torch.zeros(0), torch.zeros(0, dtype=torch.long))
    idx = torch.floor(anchors).long().clamp(0, length - 1)  # (N, 2) official int(s*T)
    keep = boundary_mask(startness, True)[idx[:, 0]] & boundary_mask(endness, False)[idx[:, 1]]
    anchors, scores = anchors[keep], scores[keep]
    order, kept_scores = soft_nms(anchors, scores, sigma=sigma, max_keep=max_keep)
    segs = anchors[order] - 0.5  # (K, 2) edge -> grid coordinates
    segs = segs.clamp(min=-0.5, max=length - 0.5)
    nonempty = segs[:, 1] > segs[:, 0]
    segs, kept_scores = segs[nonempty], kept_scores[nonempty]
    return ItemDetections(
        segments=segs.float().cpu(),
        scores=kept_scores.float().cpu(),
        labels=torch.full((segs.shape[0],), -1, dtype=torch.long),
    )
