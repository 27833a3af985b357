"""Inference post-processing of the ActionFormer family (ActionFormer,
happyharrycn/actionformer_release, libs/modeling/meta_archs.py ``inference_single_video`` and
libs/utils/nms.py ``batched_nms`` / ``seg_voting``; TriDet and TemporalMaxer use the same code).

Per video and pyramid level: class probabilities (sigmoid x mask) above ``pre_nms_thresh``, the
``pre_nms_topk`` best (point, class) pairs, their segments, those longer than
``duration_thresh`` grid steps. Over all levels: Gaussian soft-NMS per class (multi-class NMS,
the THUMOS setting) or over all classes followed by segment voting (class-agnostic NMS), then
the ``max_seg_num`` best detections.

The official soft-NMS (a C++ op) decays every remaining segment by ``exp(-IoU^2 / sigma)`` and
drops segments whose score falls below ``min_score``; here ``tal_bench.models.ops.soft_nms``
runs the same rule for many (video, class) groups side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tal_bench.models.ops.soft_nms import soft_nms_groups
from tal_bench.types import ItemDetections

# One video's candidates: segments (N, 2) grid steps, scores (N,), labels (N,) int64 (numpy)
Candidates = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class NmsSettings:
    """The NMS half of a detector's inference config (official test_cfg names)."""

    sigma: float  # Gaussian soft-NMS: decay exp(-IoU^2 / sigma)
    min_score: float  # segments decayed below this are dropped
    max_seg_num: int  # detections kept per video (and per class before the merge)
    multiclass: bool  # True: NMS within each class; False: across classes + voting
    voting_thresh: float  # IoU of the voters in class-agnostic mode (<= 0: no voting)


def top_candidates(
    probs: torch.Tensor, thresh: float, topk: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``topk`` best (point, class) pairs of one level with probability above ``thresh``.

    Args:
        probs: (T_l, K) class probabilities (already zero on padded steps).
        thresh: pre-NMS score threshold (strict).
        topk: pairs kept.

    Returns:
        ``(point_idx (n,), class_idx (n,), scores (n,))`` sorted by score, highest first.
    """
    flat = probs.flatten()  # (T_l * K,) point-major, as the official code
    idx = torch.nonzero(flat > thresh, as_tuple=True)[0]
    scores, order = flat[idx].sort(descending=True, stable=True)
    idx, scores = idx[order[:topk]], scores[:topk]
    k = probs.shape[1]
    return torch.div(idx, k, rounding_mode="floor"), idx % k, scores


def segments_from_offsets(
    t: torch.Tensor, offsets: torch.Tensor, stride: int, min_duration: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[t - left s, t + right s]`` of every candidate and which are long enough.

    Args:
        t: (n,) point positions in grid steps.
        offsets: (n, 2) distances in units of the level's stride ``s``.
        stride: the level's stride.
        min_duration: segments must be strictly longer than this (grid steps).

    Returns:
        ``(segments (n, 2), keep (n,) bool)``.
    """
    segs = torch.stack([t - offsets[:, 0] * stride, t + offsets[:, 1] * stride], dim=1)
    return segs, (segs[:, 1] - segs[:, 0]) > min_duration


def nms_videos(videos: list[Candidates], nms: NmsSettings) -> list[ItemDetections]:
    """Soft-NMS every video's candidates (all videos' groups in one vectorised run).

    Args:
        videos: per video ``(segments (N, 2), scores (N,), labels (N,))``.
        nms: the settings.

    Returns:
        One ``ItemDetections`` per video: at most ``max_seg_num`` detections, highest first.
    """
    groups, owner = [], []  # soft-NMS inputs and (video, row indices) of each group
    for v, (segs, scores, labels) in enumerate(videos):
        keys = np.unique(labels) if nms.multiclass else [None]
        for key in keys:
            rows = np.flatnonzero(labels == key) if key is not None else np.arange(len(scores))
            groups.append((segs[rows], scores[rows]))
            owner.append((v, rows))
    picks = soft_nms_groups(groups, nms.sigma, nms.max_seg_num, 0.0, nms.min_score)
    kept: list[list[Candidates]] = [[] for _ in videos]
    for (v, rows), (keep, decayed) in zip(owner, picks, strict=True):
        segs, scores, labels = videos[v]
        picked = segs[rows[keep]]
        if not nms.multiclass and nms.voting_thresh > 0:
            picked = seg_voting(picked, segs, scores, nms.voting_thresh)
        kept[v].append((picked, decayed, labels[rows[keep]]))
    return [_best(parts, nms.max_seg_num) for parts in kept]


def seg_voting(
    picked: np.ndarray, segs: np.ndarray, scores: np.ndarray, iou_thresh: float
) -> np.ndarray:
    """Segment voting: each kept segment becomes the average of all candidates overlapping it by
    at least ``iou_thresh``, weighted by score x IoU (box voting of object detection).

    Args:
        picked: (k, 2) segments kept by NMS.
        segs: (N, 2) all candidates before NMS (the voters).
        scores: (N,) their scores.
        iou_thresh: voters need IoU >= this with the kept segment.

    Returns:
        (k, 2) refined segments.
    """
    if len(picked) == 0:
        return picked
    inter = np.clip(
        np.minimum(picked[:, None, 1], segs[None, :, 1])
        - np.maximum(picked[:, None, 0], segs[None, :, 0]),
        0.0,
        None,
    )  # (k, N)
    union = (picked[:, 1] - picked[:, 0])[:, None] + (segs[:, 1] - segs[:, 0])[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    weights = (iou >= iou_thresh) * scores[None, :] * iou  # (k, N)
    total = weights.sum(axis=1, keepdims=True)
    refined = np.divide(weights @ segs, total, out=picked.copy(), where=total > 0)
    return refined


def _best(parts: list[Candidates], max_seg_num: int) -> ItemDetections:
    """The ``max_seg_num`` best detections over a video's groups, as ``ItemDetections``."""
    if not parts:
        return ItemDetections(torch.zeros(0, 2), torch.zeros(0), torch.zeros(0, dtype=torch.long))
    segs = np.concatenate([p[0] for p in parts]).reshape(-1, 2)
    scores = np.concatenate([p[1] for p in parts])
    labels = np.concatenate([p[2] for p in parts])
    top = np.argsort(-scores, kind="stable")[:max_seg_num]
    return ItemDetections(
        segments=torch.from_numpy(segs[top]).float(),
        scores=torch.from_numpy(scores[top]).float(),
        labels=torch.from_numpy(labels[top]).long(),
    )
