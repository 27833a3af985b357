"""The train pipeline: bit-for-bit repeatable runs, fraction draws."""

from __future__ import annotations

import numpy as np

from tal_bench.pipelines.resolve import resolve_run_config
from tal_bench.pipelines.train import execute

TINY = "synthetic-thumos14-tiny"


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
