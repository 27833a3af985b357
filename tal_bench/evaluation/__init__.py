"""Evaluation: the official ActivityNet detection mAP, tIoU thresholds, prediction files."""

from tal_bench.evaluation.io import load_predictions as load_predictions
from tal_bench.evaluation.io import make_detections as make_detections
from tal_bench.evaluation.io import write_predictions_json as write_predictions_json
from tal_bench.evaluation.map import EvalResult as EvalResult
from tal_bench.evaluation.map import GroundTruthIndex as GroundTruthIndex
from tal_bench.evaluation.map import dedup_mask as dedup_mask
from tal_bench.evaluation.map import evaluate_detections as evaluate_detections
from tal_bench.evaluation.map import prepare_ground_truth as prepare_ground_truth
from tal_bench.evaluation.tiou import pairwise_tiou as pairwise_tiou
from tal_bench.evaluation.tiou import tiou_preset as tiou_preset
