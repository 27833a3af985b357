"""Small builders shared by the evaluation tests (annotations and detections in memory)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tal_bench.data.annotations import normalize_subset
from tal_bench.evaluation import make_detections
from tal_bench.types import Annotations, Detections, VideoRecord

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
THUMOS_AF = SHARED / "data" / "annotations" / "thumos14" / "actionformer" / "thumos14.json"
ANET_GT = SHARED / "data" / "annotations" / "activitynet-1.3" / "derived"
ANET_GT = ANET_GT / "activity_net.v1-3.from_tsp.json"
ANET_SAMPLE = (
    SHARED / "data" / "predictions" / "activitynet-1.3" / "sample_detection_prediction.json"
)


def video(vid: str, subset: str, rows: list[tuple[str, float, float]], duration: float = 100.0):
    """A ``VideoRecord`` from (label, start_s, end_s) rows."""
    return VideoRecord(
        video_id=vid,
        subset=normalize_subset(subset),
        subset_raw=subset,
        duration_s=duration,
        fps=None,
        segments_s=np.asarray([[s, e] for _, s, e in rows], dtype=np.float64).reshape(-1, 2),
        labels=[label for label, _, _ in rows],
    )


def annotations(videos: list[VideoRecord]) -> Annotations:
    """``Annotations`` over ``videos`` with the sorted label set as classes."""
    classes = sorted({label for v in videos for label in v.labels})
    return Annotations({v.video_id: v for v in videos}, classes, "activitynet")


def detections(rows: list[tuple[str, str, float, float, float]]) -> Detections:
    """``Detections`` from (video, label, start_s, end_s, score) rows."""
    if not rows:
        return make_detections([], [], [], [], [])
    vids, labels, starts, ends, scores = zip(*rows, strict=True)
    return make_detections(vids, starts, ends, labels, scores)


def hand_example() -> tuple[Annotations, Detections]:
    """A hand-checked example of the official ``eval_detection.py`` matching.

    Validation GT: v1 = {A[10,20], A[30,40], B[50,60]}, v2 = {A[0,10], B[20,30]}, v4 = none;
    v3 = A[0,5] is in training. Predictions for A by score: 0.95 on v3 (outside the subset),
    0.9 [10,20] (tIoU 1), 0.8 [11,21] (its best GT is taken, the next has tIoU 0),
    0.7 [30,38.3] (tIoU 0.83), 0.6 v2 [0,5.2] (tIoU 0.52), 0.5 on v4 (no GT). B: 0.9 [50,60]
    (tIoU 1) and 0.4 v2 [25,35] (tIoU 1/3). C on v1 has no GT: dropped.
    """
    gt = annotations(
        [
            video("v1", "validation", [("A", 10, 20), ("A", 30, 40), ("B", 50, 60)]),
            video("v2", "validation", [("A", 0, 10), ("B", 20, 30)]),
            video("v3", "training", [("A", 0, 5)]),
            video("v4", "validation", []),
        ]
    )
    dets = detections(
        [
            ("v3", "A", 0.0, 5.0, 0.95),
            ("v1", "A", 10.0, 20.0, 0.9),
            ("v1", "A", 11.0, 21.0, 0.8),
            ("v1", "A", 30.0, 38.3, 0.7),
            ("v2", "A", 0.0, 5.2, 0.6),
            ("v4", "A", 0.0, 3.0, 0.5),
            ("v1", "B", 50.0, 60.0, 0.9),
            ("v2", "B", 25.0, 35.0, 0.4),
            ("v1", "C", 0.0, 10.0, 0.99),
        ]
    )
    return gt, dets
