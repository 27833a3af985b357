"""Losses of the ActionFormer family (ActionFormer, happyharrycn/actionformer_release,
libs/modeling/losses.py; the focal loss is RetinaNet's, as in fvcore).

Segments are centre-anchored offsets: a point t predicts ``(left, right)`` >= 0 and the segment
``[t - left, t + right]``. Two such segments share their anchor, so their intersection is
``min(l1, l2) + min(r1, r2)``; GIoU then equals IoU (the enclosing segment is the union) and
DIoU adds only the squared centre distance over the enclosing length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Elementwise sigmoid focal loss (Lin et al., 2017).

    ``FL = alpha_t (1 - p_t)^gamma BCE(logit, target)`` with ``p_t = p y + (1 - p)(1 - y)`` and
    ``alpha_t = alpha y + (1 - alpha)(1 - y)``; ``alpha < 0`` switches the weighting off.

    Args:
        logits: any shape.
        targets: same shape, in [0, 1].

    Returns:
        The loss per element (same shape), float32.
    """
    logits, targets = logits.float(), targets.float()
    p = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = bce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def ctr_iou_1d(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """IoU of centre-anchored segments.

    Args:
        pred: (N, 2) predicted ``(left, right)`` offsets, >= 0.
        target: (N, 2) target offsets, >= 0, same anchors.

    Returns:
        (N,) IoU in [0, 1].
    """
    pred, target = pred.float(), target.float()
    inter = torch.minimum(pred[:, 0], target[:, 0]) + torch.minimum(pred[:, 1], target[:, 1])
    union = pred.sum(dim=1) + target.sum(dim=1) - inter
    return inter / union.clamp(min=eps)


def ctr_diou_loss_1d(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """1-D Distance-IoU loss (Zheng et al., 2020) of centre-anchored segments.

    ``1 - IoU + (d / c)^2`` with d the distance between the two centres and c the length of the
    smallest segment enclosing both.

    Args:
        pred: (N, 2) predicted offsets, >= 0.
        target: (N, 2) target offsets, >= 0.

    Returns:
        (N,) loss per pair (0 for a perfect prediction).
    """
    pred, target = pred.float(), target.float()
    enclosing = torch.maximum(pred[:, 0], target[:, 0]) + torch.maximum(pred[:, 1], target[:, 1])
    # centres relative to the anchor: (right - left) / 2 each
    centre_gap = 0.5 * ((pred[:, 1] - pred[:, 0]) - (target[:, 1] - target[:, 0]))
    return 1.0 - ctr_iou_1d(pred, target, eps) + (centre_gap / enclosing.clamp(min=eps)) ** 2
