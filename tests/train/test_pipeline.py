"""The train pipeline: window merging, per-video caps, and bit-for-bit repeatable runs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tal_bench.pipelines.resolve import resolve_run_config
from tal_bench.pipelines.train import cap_per_video, execute, merge_video, to_detections

TINY = "synthetic-thumos14-tiny"


def test_merge_video_soft_nms_per_label():
    # two windows of one video: an overlapping pair of class 0 and one class-1 detection
    parts = [
        (np.array([[0.0, 10.0], [20.0, 30.0]]), np.array([0.9, 0.5]), np.array([0, 1])),
        (np.array([[5.0, 10.0]]), np.array([0.8]), np.array([0])),
    ]
    segs, scores, labels = merge_video(parts, sigma=0.5, max_dets=10)
    # class 0: [0, 10] kept at 0.9; [5, 10] has tIoU 0.5 with it -> 0.8 exp(-0.25 / 0.5)
    # class 1 is never decayed by class 0.
    # 0.8 exp(-0.5) = 0.485 < 0.5, so the class-1 detection ranks second.
    assert scores.tolist() == pytest.approx([0.9, 0.5, 0.8 * math.exp(-0.5)])
    assert labels.tolist() == [0, 1, 0]
    assert segs.tolist() == [[0.0, 10.0], [20.0, 30.0], [5.0, 10.0]]
    top1 = merge_video(parts, sigma=0.5, max_dets=1)
    assert top1[1].tolist() == pytest.approx([0.9])


def test_to_detections_and_cap_per_video():
    merged = {
        "a": (
            np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]),
            np.array([0.2, 0.9, 0.5]),
            np.array([1, 0, -1]),
        ),
        "b": (np.array([[1.0, 2.0]]), np.array([0.3]), np.array([1])),
    }
    dets = to_detections(merged, ["Run", "Jump"])
    assert (dets.video_ids, dets.classes) == (["a", "b"], ["Run", "Jump"])
    assert dets.video_idx.tolist() == [0, 0, 0, 1]
    assert dets.label_idx.tolist() == [1, 0, -1, 1]  # -1: a class-agnostic proposal
    capped = cap_per_video(dets, 2)
    kept = sorted(zip(capped.video_idx.tolist(), capped.scores.tolist(), strict=True))
    assert kept == [(0, 0.5), (0, 0.9), (1, 0.3)]
    assert len(cap_per_video(to_detections({}, ["Run"]), 3)) == 0


def test_same_seed_twice_is_bit_identical_and_fraction_is_drawn():
    sets = [f"data.dataset={TINY}", "train.epochs=2", "train.threads=1"]
    first = execute(resolve_run_config("dummy", "cpu", sets), progress=False)
    second = execute(resolve_run_config("dummy", "cpu", sets), progress=False)
    assert [r["loss"] for r in first.epochs] == [r["loss"] for r in second.epochs]
    assert first.summary["average_mAP"] == second.summary["average_mAP"]
    assert np.array_equal(first.detections.scores, second.detections.scores)
    half = execute(resolve_run_config("dummy", "cpu", [*sets, "data.fraction=50"]), False)
    total = first.summary["num_train_videos"]
    assert half.summary["num_train_videos"] == round(0.5 * total)
    assert half.summary["video_ids_hash"] != first.summary["video_ids_hash"]
