"""ETAD targets and losses, as in the official code (sming256/ETAD, lib/loss/model_loss.py).

Units: snippet edges (snippet i spans ``[i, i + 1]``; an item's grid coordinate x maps to the
edge coordinate x + 0.5). All balancing is over the whole batch, flattened. Random keep-masks
draw uniforms from ``generator`` (or the global CPU RNG) on the CPU and move them to the loss
device, so a seeded CPU run repeats bit for bit. A uniform ``r`` keeps a sample when
``r < ratio``, which has the official probability ``ratio`` (the official ``r > 1 - ratio``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

EPS = 1e-6  # inside the logs, as the official code
TEM_REGION = 3.0  # boundary region width in snippets (±1.5 around each GT boundary)


@dataclass(frozen=True)
class LossWeights:
    """Per-stage loss weights (official: 1, 5, 10 per boundary term, 0.5)."""

    iou_cls: float = 1.0
    iou_reg: float = 5.0
    bnd_reg: float = 10.0
    bnd_cls: float = 0.5


def _uniform(n: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=generator).to(device)  # (n,)


def tem_targets(gt_list: list[torch.Tensor], length: int) -> torch.Tensor:
    """Startness/endness targets: max IoA of snippet ``[i, i+1]`` with ``[b - 1.5, b + 1.5]``.

    Args:
        gt_list: per video (N_b, 2) GT ``[start, end]`` in snippet-edge units.
        length: T, the padded number of steps.

    Returns:
        (B, 2, T) targets in [0, 1]: channel 0 start, channel 1 end.
    """
    out = []
    for gt in gt_list:
        lo = torch.arange(length, dtype=torch.float32, device=gt.device)[:, None]  # (T, 1)
        if gt.numel() == 0:
            out.append(torch.zeros(2, length, device=gt.device))
            continue
        rows = []
        for bound in (gt[:, 0], gt[:, 1]):
            r_lo, r_hi = bound[None, :] - TEM_REGION / 2, bound[None, :] + TEM_REGION / 2
            inter = (torch.minimum(lo + 1.0, r_hi) - torch.maximum(lo, r_lo)).clamp(min=0.0)
            rows.append(inter.max(dim=1).values)  # (T,) IoA = intersection / 1 snippet
        out.append(torch.stack(rows))
    return torch.stack(out)  # (B, 2, T)


def balanced_bce(prob: torch.Tensor, target: torch.Tensor, pos_thresh: float = 0.5) -> torch.Tensor:
    """Batch-balanced BCE: ½·mean over positives + ½·mean over negatives (model_loss.py).

    Args:
        prob: (N,) probabilities.
        target: (N,) targets; positive where ``target > pos_thresh``.

    Returns:
        Scalar loss; the mean negative (positive) term alone when a side is empty.
    """
    pos = target > pos_thresh
    loss_pos = -torch.log(prob[pos] + EPS)
    loss_neg = -torch.log(1.0 - prob[~pos] + EPS)
    if loss_pos.numel() == 0:
        return loss_neg.mean()
    if loss_neg.numel() == 0:
        return loss_pos.mean()
    return 0.5 * loss_pos.mean() + 0.5 * loss_neg.mean()


def sampled_bce(
    prob: torch.Tensor, pos: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """BCE with negatives kept at probability N_pos / N_neg (about 1:1) (model_loss.py).

    Args:
        prob: (N,) probabilities.
        pos: (N,) bool positives.

    Returns:
        Scalar ``-(Σ_pos log p + Σ_kept log(1-p)) / (N_pos + N_kept)``; with no positives,
        the mean of ``-log(1 - p)`` over all.
    """
    n_pos = int(pos.sum())
    neg = ~pos
    if n_pos == 0:
        return -torch.log(1.0 - prob + EPS).mean()
    ratio = n_pos / max(int(neg.sum()), 1)
    kept = neg & (_uniform(prob.numel(), prob.device, generator) < ratio)
    total = -(torch.log(prob[pos] + EPS).sum() + torch.log(1.0 - prob[kept] + EPS).sum())
    return total / (n_pos + int(kept.sum()))


def iou_regression_loss(
    prob: torch.Tensor, giou: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """MSE to gIoU over three bands: all of > 0.7, (0.3, 0.7] and <= 0.3 kept at N_high/N_band.

    Args:
        prob: (N,) predicted IoU.
        giou: (N,) target IoU.

    Returns:
        Scalar mean squared error over the kept set (plain mean when no high-IoU proposal).
    """
    sq_err = (prob - giou) ** 2  # (N,)
    high = giou > 0.7
    n_high = int(high.sum())
    if n_high == 0:
        return sq_err.mean()
    mid = (giou > 0.3) & ~high
    low = giou <= 0.3
    r = _uniform(prob.numel(), prob.device, generator)  # one uniform per proposal
    keep_mid = mid & (r < n_high / max(int(mid.sum()), 1))
    keep_low = low & (r < n_high / max(int(low.sum()), 1))
    kept = high | keep_mid | keep_low
    return sq_err[kept].mean()


def pair_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise tIoU of (N, 2) and (N, 2) segments -> (N,) (0 for empty unions)."""
    inter = (torch.minimum(a[:, 1], b[:, 1]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0.0)
    union = (a[:, 1] - a[:, 0]).clamp(min=0.0) + (b[:, 1] - b[:, 0]).clamp(min=0.0) - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def assign_gt(
    anchors: torch.Tensor, batch_idx: torch.Tensor, gt_list: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Give each initial anchor the GT of its video with the highest IoU (fixed for all stages).

    Args:
        anchors: (N, 2) initial anchors.
        batch_idx: (N,) video index.
        gt_list: per video (N_b, 2) GT.

    Returns:
        ``gt`` (N, 2) assigned GT (zeros where the video has none) and ``has_gt`` (N,) bool.
    """
    n_max = max((g.shape[0] for g in gt_list), default=0)
    if n_max == 0:
        return torch.zeros_like(anchors), torch.zeros_like(batch_idx, dtype=torch.bool)
    gt_pad = anchors.new_zeros(len(gt_list), n_max, 2)  # (B, G, 2)
    valid = torch.zeros(len(gt_list), n_max, dtype=torch.bool, device=anchors.device)
    for b, g in enumerate(gt_list):
        gt_pad[b, : g.shape[0]] = g
        valid[b, : g.shape[0]] = True
    cand = gt_pad[batch_idx]  # (N, G, 2)
    n, g_max = cand.shape[:2]
    iou = pair_iou(anchors[:, None, :].expand(n, g_max, 2).reshape(-1, 2), cand.reshape(-1, 2))
    iou = torch.where(valid[batch_idx], iou.view(n, g_max), torch.full_like(iou.view(n, g_max), -1))
    best = iou.argmax(dim=1)  # (N,)
    return cand[torch.arange(n, device=anchors.device), best], valid[batch_idx].any(dim=1)


def regression_targets(anchors: torch.Tensor, gt: torch.Tensor, scale: float) -> torch.Tensor:
    """(Δs*, Δe*, Δc*, Δw*) of model_loss.py; lengths floored at 1e-6 of the normalised map.

    Args:
        anchors: (N, 2) stage input anchors.
        gt: (N, 2) assigned GT.
        scale: T, so that the 1e-6 floor is on normalised lengths as in the official code.

    Returns:
        (N, 4) targets.
    """
    len_a = (anchors[:, 1] - anchors[:, 0]).clamp(min=1e-6 * scale)
    len_g = (gt[:, 1] - gt[:, 0]).clamp(min=1e-6 * scale)
    d_s = (gt[:, 0] - anchors[:, 0]) / len_a
    d_e = (gt[:, 1] - anchors[:, 1]) / len_a
    d_w = torch.log(len_g / len_a + 1e-6)
    return torch.stack([d_s, d_e, (d_s + d_e) / 2.0, d_w], dim=1)  # (N, 4)


def boundary_targets(
    anchors: torch.Tensor, batch_idx: torch.Tensor, tem_tgt: torch.Tensor
) -> torch.Tensor:
    """TEM targets read at ``floor(s)`` and ``floor(e)`` clamped to [0, T-1]: (N, 2)."""
    length = tem_tgt.shape[-1]
    idx = torch.floor(anchors).long().clamp(0, length - 1)  # (N, 2)
    return torch.stack(
        [tem_tgt[batch_idx, 0, idx[:, 0]], tem_tgt[batch_idx, 1, idx[:, 1]]], dim=1
    )  # (N, 2)


def stage_loss(
    anchors: torch.Tensor,
    gt: torch.Tensor,
    has_gt: torch.Tensor,
    iou_pred: torch.Tensor,
    reg_pred: torch.Tensor,
    bnd_tgt: torch.Tensor,
    reg_threshold: float,
    scale: float,
    iou_pos_threshold: float = 0.9,
    weights: LossWeights | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Loss of one cascade stage (model_loss.py), unweighted terms plus the weighted total.

    Args:
        anchors: (N, 2) the stage's input anchors.
        gt: (N, 2) assigned GT; has_gt: (N,) bool.
        iou_pred: (N, 2) ``[p_iou_cls, p_iou_reg]``; reg_pred: (N, 6) ``[Δs, Δe, Δc, Δw, ps, pe]``.
        bnd_tgt: (N, 2) boundary-classification targets (``boundary_targets``).
        reg_threshold: gIoU above which a proposal gets a boundary-regression loss (0.7/0.8/0.9).
        scale: T (see ``regression_targets``).
        iou_pos_threshold: gIoU above which IoU classification is positive (0.9).
        weights: loss weights; None = official.
        generator: random source for the keep-masks.

    Returns:
        ``{"total", "iou_cls", "iou_reg", "bnd_reg", "bnd_cls"}`` scalars (``bnd_reg`` is the sum
        of the four Smooth-L1 terms, ``bnd_cls`` the sum of the start and end BCEs).
    """
    w = weights or LossWeights()
    giou = torch.where(has_gt, pair_iou(anchors, gt), torch.zeros_like(anchors[:, 0]))  # (N,)
    iou_cls = sampled_bce(iou_pred[:, 0], giou > iou_pos_threshold, generator)
    iou_reg = iou_regression_loss(iou_pred[:, 1], giou, generator)
    pos = giou > reg_threshold
    if bool(pos.any()):
        tgt = regression_targets(anchors[pos], gt[pos], scale)  # (P, 4)
        per_term = F.smooth_l1_loss(reg_pred[pos, :4], tgt, reduction="none", beta=1.0).mean(0)
        bnd_reg = per_term.sum()
    else:
        bnd_reg = reg_pred[:, :4].sum() * 0.0
    bnd_cls = sampled_bce(reg_pred[:, 4], bnd_tgt[:, 0] > 0.5, generator) + sampled_bce(
        reg_pred[:, 5], bnd_tgt[:, 1] > 0.5, generator
    )
    total = w.iou_cls * iou_cls + w.iou_reg * iou_reg + w.bnd_reg * bnd_reg + w.bnd_cls * bnd_cls
    return {
        "total": total,
        "iou_cls": iou_cls,
        "iou_reg": iou_reg,
        "bnd_reg": bnd_reg,
        "bnd_cls": bnd_cls,
    }
