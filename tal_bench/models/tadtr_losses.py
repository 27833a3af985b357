"""TadTR's set prediction loss: Hungarian matching and the weighted loss terms.

Follows xlliu7/TadTR ``models/matcher.py`` and ``models/tadtr.py`` (``SetCriterion``) at commit
983ae14, the fix of issue #21 (before it, the L1 and actionness terms were silently left out of
the weighted sum):

* Matching, per item and per decoder layer: cost = 6 * focal-style class cost + 5 * L1 on
  ``(c, w)`` + 2 * (-tIoU), solved by ``scipy.optimize.linear_sum_assignment``.
* Losses: sigmoid focal (alpha 0.25, gamma 2) summed over queries and classes x 2; L1 on the
  matched ``(c, w)`` x 5; ``1 - tIoU`` of the matched pairs x 2; each divided by the number of
  ground-truth segments in the batch (at least 1); the same three at every earlier decoder
  layer (auxiliary losses, own matching); actionness L1 to the best tIoU x 4 (last layer only).

One deliberate difference: the official actionness target of a query is its best tIoU over the
ground truth of the *whole batch* (the segments of all windows concatenated); here it is over
the ground truth of the query's own window, which is what the head is meant to regress.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from tal_bench.models.common.losses import sigmoid_focal_loss
from tal_bench.models.etad_losses import pair_iou

# ------------------------------------------------------------------------------------------
# Generic pieces: the sigmoid focal loss is the shared one (tal_bench.models.common.losses);
# the pairwise tIoU below stays private to TadTR.
# ------------------------------------------------------------------------------------------


def _iou_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise tIoU of (N, 2) and (M, 2) ``[start, end]`` segments -> (N, M)."""
    inter = (
        torch.minimum(a[:, None, 1], b[None, :, 1]) - torch.maximum(a[:, None, 0], b[None, :, 0])
    ).clamp(min=0.0)
    len_a = (a[:, 1] - a[:, 0]).clamp(min=0.0)
    len_b = (b[:, 1] - b[:, 0]).clamp(min=0.0)
    union = len_a[:, None] + len_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


# ------------------------------------------------------------------------------------------


def cw_to_se(seg: torch.Tensor) -> torch.Tensor:
    """``(centre, width)`` -> ``[start, end]``, any leading shape."""
    half = seg[..., 1:] / 2.0
    return torch.cat([seg[..., :1] - half, seg[..., :1] + half], dim=-1)


@dataclass(frozen=True)
class MatchCosts:
    cls: float = 6.0
    seg: float = 5.0
    iou: float = 2.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0


@dataclass(frozen=True)
class LossWeights:
    cls: float = 2.0
    seg: float = 5.0
    iou: float = 2.0
    actionness: float = 4.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0


Target = tuple[torch.Tensor, torch.Tensor]  # per item: labels (N,) int64, segments (N, 2) (c, w)


@torch.no_grad()
def hungarian_match(
    logits: torch.Tensor, segments: torch.Tensor, targets: list[Target], costs: MatchCosts
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One-to-one assignment of queries to ground truth, per item.

    Args:
        logits: (B, Q, C) class logits.
        segments: (B, Q, 2) predicted ``(c, w)``.
        targets: per item ``(labels (N,), segments (N, 2))``.
        costs: matching cost weights.

    Returns:
        per item ``(query_idx (K,), target_idx (K,))`` int64 with K = min(Q, N).
    """
    out = []
    for b, (labels, tgt) in enumerate(targets):
        if labels.numel() == 0:
            empty = torch.zeros(0, dtype=torch.long)
            out.append((empty, empty))
            continue
        prob = torch.sigmoid(logits[b])  # (Q, C)
        a, g = costs.focal_alpha, costs.focal_gamma
        neg = (1 - a) * prob**g * -(1 - prob + 1e-8).log()
        pos = a * (1 - prob) ** g * -(prob + 1e-8).log()
        cost_cls = (pos - neg)[:, labels]  # (Q, N)
        cost_seg = torch.cdist(segments[b], tgt, p=1)  # (Q, N)
        cost_iou = -_iou_matrix(cw_to_se(segments[b]), cw_to_se(tgt))  # (Q, N)
        cost = costs.seg * cost_seg + costs.cls * cost_cls + costs.iou * cost_iou
        rows, cols = linear_sum_assignment(cost.cpu().numpy())
        out.append(
            (torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long))
        )
    return out


def layer_losses(
    logits: torch.Tensor,
    segments: torch.Tensor,
    targets: list[Target],
    matches: list[tuple[torch.Tensor, torch.Tensor]],
    num_segments: float,
    weights: LossWeights,
) -> dict[str, torch.Tensor]:
    """Focal, L1 and IoU losses of one decoder layer (unweighted, normalised by the GT count).

    Args:
        logits: (B, Q, C); segments: (B, Q, 2) ``(c, w)``.
        targets, matches: as :func:`hungarian_match`.
        num_segments: ground-truth segments in the batch, at least 1.

    Returns:
        ``{"cls", "seg", "iou"}`` scalars.
    """
    device = logits.device
    onehot = torch.zeros_like(logits)  # (B, Q, C)
    b_idx = torch.cat([torch.full_like(q, b) for b, (q, _) in enumerate(matches)]).to(device)
    q_idx = torch.cat([q for q, _ in matches]).to(device)
    labels = torch.cat(
        [lab[t.to(lab.device)] for (lab, _), (_, t) in zip(targets, matches, strict=True)]
    )
    onehot[b_idx, q_idx, labels.to(device)] = 1.0
    focal = sigmoid_focal_loss(logits, onehot, weights.focal_alpha, weights.focal_gamma)
    loss_cls = focal.sum() / num_segments
    pred = segments[b_idx, q_idx]  # (K, 2)
    tgt = torch.cat(
        [seg[t.to(seg.device)] for (_, seg), (_, t) in zip(targets, matches, strict=True)]
    )
    tgt = tgt.to(device)
    loss_seg = F.l1_loss(pred, tgt, reduction="sum") / num_segments
    loss_iou = (1.0 - pair_iou(cw_to_se(pred), cw_to_se(tgt))).sum() / num_segments
    return {"cls": loss_cls, "seg": loss_seg, "iou": loss_iou}


def actionness_loss(
    actionness: torch.Tensor, segments: torch.Tensor, targets: list[Target]
) -> torch.Tensor:
    """Mean L1 between every query's actionness and its segment's best tIoU with the item's GT.

    Args:
        actionness: (B, Q); segments: (B, Q, 2) ``(c, w)`` of the last layer.

    Returns:
        Scalar (0-target where an item has no ground truth).
    """
    best = []
    for b, (_, tgt) in enumerate(targets):
        if tgt.numel() == 0:
            best.append(segments.new_zeros(segments.shape[1]))
            continue
        iou = _iou_matrix(cw_to_se(segments[b].detach()), cw_to_se(tgt.to(segments.device)))
        best.append(iou.max(dim=1).values)  # (Q,)
    return F.l1_loss(actionness, torch.stack(best))


def set_criterion(
    logits: torch.Tensor,
    segments: torch.Tensor,
    actionness: torch.Tensor | None,
    targets: list[Target],
    costs: MatchCosts,
    weights: LossWeights,
    aux: bool = True,
) -> dict[str, torch.Tensor]:
    """The full TadTR loss over all decoder layers.

    Args:
        logits: (L, B, Q, C) per decoder layer; segments: (L, B, Q, 2) ``(c, w)``.
        actionness: (B, Q) or None (head disabled).
        targets: per item ``(labels, segments (c, w))``.
        aux: add the auxiliary losses of layers 0..L-2.

    Returns:
        ``loss`` (weighted total, to backprop) and detached ``loss_cls``, ``loss_seg``,
        ``loss_iou`` (last layer, unweighted), ``loss_actionness``, ``loss_aux`` (weighted sum
        of the auxiliary terms).
    """
    num_segments = float(max(sum(int(lab.numel()) for lab, _ in targets), 1))

    def weighted(layer: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        matches = hungarian_match(logits[layer], segments[layer], targets, costs)
        terms = layer_losses(
            logits[layer], segments[layer], targets, matches, num_segments, weights
        )
        total = weights.cls * terms["cls"] + weights.seg * terms["seg"] + weights.iou * terms["iou"]
        return total, terms

    total, last = weighted(-1)
    out = {f"loss_{k}": v.detach() for k, v in last.items()}
    if actionness is not None:
        loss_act = actionness_loss(actionness, segments[-1], targets)
        total = total + weights.actionness * loss_act
        out["loss_actionness"] = loss_act.detach()
    aux_total = logits.new_zeros(())
    if aux:
        for layer in range(logits.shape[0] - 1):
            aux_total = aux_total + weighted(layer)[0]
    out["loss_aux"] = aux_total.detach()
    return {"loss": total + aux_total, **out}


def targets_from_items(
    segments_grid: list[torch.Tensor], labels: list[torch.Tensor], lengths: list[int]
) -> list[Target]:
    """Item GT in grid units (step i at x = i) -> normalised ``(c, w)`` over the valid steps.

    Step i spans ``[i - 0.5, i + 0.5]`` on the grid, i.e. ``[i, i + 1] / L`` normalised.
    """
    out = []
    for seg, lab, length in zip(segments_grid, labels, lengths, strict=True):
        se = (seg.float().reshape(-1, 2) + 0.5) / float(length)  # (N, 2) normalised [s, e]
        cw = torch.stack([(se[:, 0] + se[:, 1]) / 2.0, se[:, 1] - se[:, 0]], dim=1)
        out.append((lab.long().reshape(-1), cw))
    return out
