"""Label assignment of pyramid points to ground-truth segments.

ActionFormer (happyharrycn/actionformer_release, libs/modeling/meta_archs.py
``label_points_single_video``; TriDet copies it):

* a point at t (stride s, range [lo, hi]) is a *candidate* of a GT segment when it lies inside
  the segment's centre region ``[c - r s, c + r s]`` clipped to the segment (centre sampling,
  r = 1.5; strictly inside) and the larger of its two boundary distances is in [lo, hi];
* among a point's candidate GTs the shortest wins; GTs within 1e-3 of that length all count, so
  classification targets can be multi-hot (THUMOS labels some segments twice);
* the regression target is the point's distances to the winner's boundaries, divided by s.

TemporalMaxer (TuanTNG/TemporalMaxer, libs/modeling/simota_assigner.py with keep_percent 1 and
confuse_weight 0) keeps the same positives and classification targets but regresses each
positive onto the GT of lowest cost among *all* GTs containing it, the cost being
``cls_weight x focal cost + iou_weight x DIoU cost`` of the point's current prediction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tal_bench.models.common.losses import ctr_diou_loss_1d, sigmoid_focal_loss

TIE_TOL = 1e-3  # GT lengths within this of the shortest count as ties (official)


def boundary_offsets(points: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Distances from every point to every GT's boundaries, in grid steps.

    Args:
        points: (P, 4) ``[t, lo, hi, stride]``.
        gt: (N, 2) segments in grid steps.

    Returns:
        (P, N, 2) ``(t - start, end - t)``; negative when t is outside.
    """
    t = points[:, 0, None]  # (P, 1)
    return torch.stack([t - gt[None, :, 0], gt[None, :, 1] - t], dim=-1)


def candidates(points: torch.Tensor, gt: torch.Tensor, radius: float | None) -> torch.Tensor:
    """(P, N) bool: point p may regress GT n (centre region and regression range).

    Args:
        points: (P, 4) ``[t, lo, hi, stride]``.
        gt: (N, 2) segments.
        radius: centre-sampling radius in strides; None = anywhere strictly inside the GT.
    """
    offsets = boundary_offsets(points, gt)  # (P, N, 2)
    t, stride = points[:, 0, None], points[:, 3, None]  # (P, 1)
    if radius is None:
        inside = offsets.min(dim=-1).values > 0
    else:
        centre = 0.5 * (gt[:, 0] + gt[:, 1])[None, :]  # (1, N)
        lo = torch.maximum(centre - radius * stride, gt[None, :, 0])  # (P, N)
        hi = torch.minimum(centre + radius * stride, gt[None, :, 1])
        inside = torch.minimum(t - lo, hi - t) > 0
    reach = offsets.max(dim=-1).values  # (P, N)
    in_range = (reach >= points[:, 1, None]) & (reach <= points[:, 2, None])
    return inside & in_range


def shortest_ties(gt: torch.Tensor, cand: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Among each point's candidates, the shortest GT and its ties.

    Args:
        gt: (N, 2) segments.
        cand: (P, N) candidate mask.

    Returns:
        ``(ties (P, N) bool, winner (P,) int64)``; points without candidates have no ties and
        winner 0.
    """
    lengths = (gt[:, 1] - gt[:, 0])[None, :].expand_as(cand)  # (P, N)
    lengths = lengths.masked_fill(~cand, float("inf"))
    shortest, winner = lengths.min(dim=1)  # (P,)
    ties = (lengths <= shortest[:, None] + TIE_TOL) & torch.isfinite(lengths)
    return ties, winner


def class_targets(ties: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(P, K) float multi-hot classification targets from the (P, N) tie mask."""
    onehot = F.one_hot(labels.long(), num_classes).to(torch.float32)  # (N, K)
    return (ties.to(torch.float32) @ onehot).clamp_(max=1.0)


def assign_shortest(
    points: torch.Tensor, gt: torch.Tensor, labels: torch.Tensor, num_classes: int, radius: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """ActionFormer's assignment of one video (module docstring).

    Args:
        points: (P, 4) ``[t, lo, hi, stride]``.
        gt: (N, 2) segments in grid steps.
        labels: (N,) class ids.
        num_classes: K.
        radius: centre-sampling radius in strides.

    Returns:
        ``(cls (P, K) float, reg (P, 2) float)``: multi-hot targets (all zero = negative) and
        boundary distances in units of the point's stride (meaningful on positives only).
    """
    if gt.shape[0] == 0:
        return points.new_zeros(points.shape[0], num_classes), points.new_zeros(points.shape[0], 2)
    ties, winner = shortest_ties(gt, candidates(points, gt, radius))
    offsets = boundary_offsets(points, gt)  # (P, N, 2)
    reg = offsets[torch.arange(points.shape[0], device=gt.device), winner]  # (P, 2)
    return class_targets(ties, labels, num_classes), reg / points[:, 3, None]


def assign_min_cost(
    points: torch.Tensor,
    gt: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    radius: float,
    cls_logits: torch.Tensor,
    pred_offsets: torch.Tensor,
    cls_weight: float = 1.0,
    iou_weight: float = 2.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """TemporalMaxer's assignment of one video (module docstring).

    Args:
        points, gt, labels, num_classes, radius: as :func:`assign_shortest`.
        cls_logits: (P, K) current classification logits (no gradient needed).
        pred_offsets: (P, 2) current predicted offsets in stride units, >= 0.
        cls_weight: weight of the focal cost.
        iou_weight: weight of the DIoU cost.

    Returns:
        ``(cls (P, K), reg (P, 2))`` as :func:`assign_shortest`; only the regression GT differs.
    """
    if gt.shape[0] == 0:
        return points.new_zeros(points.shape[0], num_classes), points.new_zeros(points.shape[0], 2)
    ties, _ = shortest_ties(gt, candidates(points, gt, radius))
    offsets = boundary_offsets(points, gt)  # (P, N, 2)
    cost = match_cost(offsets / points[:, 3, None, None], labels, cls_logits, pred_offsets)
    winner = (cls_weight * cost[0] + iou_weight * cost[1]).argmin(dim=1)  # (P,)
    reg = offsets[torch.arange(points.shape[0], device=gt.device), winner]
    return class_targets(ties, labels, num_classes), reg / points[:, 3, None]


def match_cost(
    gt_offsets: torch.Tensor,
    labels: torch.Tensor,
    cls_logits: torch.Tensor,
    pred_offsets: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Focal and DIoU costs of matching every point's prediction to every GT.

    Args:
        gt_offsets: (P, N, 2) point-to-GT boundary distances in stride units.
        labels: (N,) GT classes.
        cls_logits: (P, K) logits.
        pred_offsets: (P, 2) predicted distances in stride units.

    Returns:
        ``(cls_cost (P, N), iou_cost (P, N))``; the DIoU cost is +inf where the point lies
        outside the GT (a boundary distance below 0).
    """
    logits = cls_logits.float()
    # focal loss summed over classes against a one-hot target = the all-negative sum plus the
    # GT class's (positive - negative) difference; avoids a (P, N, K) tensor
    neg = sigmoid_focal_loss(logits, torch.zeros_like(logits))  # (P, K)
    pos = sigmoid_focal_loss(logits, torch.ones_like(logits))  # (P, K)
    cls_cost = neg.sum(dim=1, keepdim=True) + (pos - neg)[:, labels.long()]  # (P, N)
    n_pts, n_gt = gt_offsets.shape[:2]
    pred = pred_offsets.float()[:, None, :].expand(n_pts, n_gt, 2).reshape(-1, 2)
    outside = (gt_offsets < 0).any(dim=-1)  # (P, N)
    iou_cost = ctr_diou_loss_1d(pred, gt_offsets.clamp(min=0).reshape(-1, 2)).view(n_pts, n_gt)
    return cls_cost, iou_cost.masked_fill(outside, float("inf"))
