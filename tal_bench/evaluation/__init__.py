"""Evaluation: the official ActivityNet detection mAP (vectorised), tIoU, prediction files."""

from __future__ import annotations

from tal_bench.evaluation.io import (
    load_predictions,
    make_detections,
    write_predictions_json,
)
from tal_bench.evaluation.map import (
    EvalResult,
    GroundTruthIndex,
    dedup_mask,
    evaluate_detections,
    prepare_ground_truth,
    threshold_keys,
)
from tal_bench.evaluation.tiou import segment_tiou, tiou_preset

__all__ = [
    "EvalResult",
    "GroundTruthIndex",
    "dedup_mask",
    "evaluate_detections",
    "load_predictions",
    "make_detections",
    "prepare_ground_truth",
    "segment_tiou",
    "threshold_keys",
    "tiou_preset",
    "write_predictions_json",
]
