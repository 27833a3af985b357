"""Hard 1-D NMS and TadTR's cross-window fusion of one video's sliding windows.

TadTR (xlliu7/TadTR, ``datasets/tad_eval.py``, ``TADEvaluator.cross_window_fusion``) merges the
detections of a video's windows without touching most of them: for every pair of adjacent
windows it takes the detections that overlap the pair's shared region (positive intersection
with ``[next window start, current window end]``) and runs class-wise hard NMS (tIoU 0.4) on
those only; every other detection is kept as it is, and nothing is capped.

One difference from the official loop: a detection touching two overlap regions enters both
regions' NMS there and can come out twice; here it comes out once, if either NMS keeps it.
"""

from __future__ import annotations

import numpy as np


def nms_1d(segments: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy hard NMS: keep the best, drop the rest with tIoU above the threshold, repeat.

    Args:
        segments: (N, 2) ``[start, end]``.
        scores: (N,).
        iou_threshold: a candidate is dropped when its tIoU with a kept segment exceeds this.

    Returns:
        (K,) int64 indices of the kept segments, best first (ties by index).
    """
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    lengths = segments[:, 1] - segments[:, 0]
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        inter = np.minimum(segments[best, 1], segments[rest, 1]) - np.maximum(
            segments[best, 0], segments[rest, 0]
        )
        union = lengths[best] + lengths[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def classwise_nms(
    segments: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float
) -> np.ndarray:
    """:func:`nms_1d` within each label; indices of all kept detections (any order)."""
    kept = [
        idx[nms_1d(segments[idx], scores[idx], iou_threshold)]
        for idx in (np.flatnonzero(labels == lab) for lab in np.unique(labels))
    ]
    return np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)


def overlap_region_nms(
    segments: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    windows: np.ndarray,
    iou_threshold: float,
) -> np.ndarray:
    """Which detections of one video survive TadTR's cross-window fusion.

    Args:
        segments: (N, 2) detections of all the video's windows, seconds.
        scores: (N,); labels: (N,) class ids.
        windows: (W, 2) ``[start, end]`` seconds of the windows that produced them.
        iou_threshold: class-wise hard-NMS threshold (TadTR: 0.4).

    Returns:
        (K,) int64 indices of the kept detections, sorted by score (best first).
    """
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 2)
    windows = windows[np.argsort(windows[:, 0], kind="stable")]
    keep = np.ones(len(segments), dtype=bool)
    touched = np.zeros(len(segments), dtype=bool)
    survived = np.zeros(len(segments), dtype=bool)
    for (_, cur_end), (next_start, _) in zip(windows[:-1], windows[1:], strict=True):
        inter = np.minimum(segments[:, 1], cur_end) - np.maximum(segments[:, 0], next_start)
        region = np.flatnonzero(inter > 0)
        if region.size == 0:
            continue
        touched[region] = True
        kept = classwise_nms(segments[region], scores[region], labels[region], iou_threshold)
        survived[region[kept]] = True
    keep &= ~touched | survived
    idx = np.flatnonzero(keep)
    return idx[np.argsort(-np.asarray(scores)[idx], kind="stable")]
