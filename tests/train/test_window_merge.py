"""TadTR's window-merge rule in the post-processing stage: item spans and the overlap NMS."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tal_bench.errors import TalBenchError
from tal_bench.pipelines.resolve import resolve_run_config
from tal_bench.postprocess import item_part, merge_windows
from tal_bench.types import ItemDetections


def _window(start: int, valid: int = 8) -> dict:
    mask = torch.arange(8) < valid
    return {
        "video_id": "v",
        "feats": torch.zeros(2, 8),
        "mask": mask,
        "segments": torch.zeros(0, 2),
        "labels": torch.zeros(0, dtype=torch.long),
        "duration_s": 100.0,
        "t0_s": 0.5 + start,  # step 1 s, feature i centred at i + 0.5 s
        "step_s": 1.0,
        "window_start": start,
    }


def _parts(items: list[dict]) -> list:
    """Every window reports the same two same-class detections at grid [2, 6] and [2.2, 6.2]."""
    det = ItemDetections(
        torch.tensor([[2.0, 6.0], [2.2, 6.2]]), torch.tensor([0.9, 0.8]), torch.tensor([3, 3])
    )
    return [item_part(it, det) for it in items]


def test_tadtr_resolves_to_the_overlap_rule_and_merges_only_overlaps() -> None:
    cfg = resolve_run_config("tadtr", "paper")
    assert cfg.eval.window_merge == "overlap_nms" and cfg.eval.merge_params == {"iou": 0.4}
    parts = _parts([_window(0), _window(4), _window(12, valid=5)])
    # a window at feature w covers grid [-0.5, valid - 0.5] = [w, w + valid] s
    assert [p.span_s for p in parts] == [(0.0, 8.0), (4.0, 12.0), (12.0, 17.0)]
    segs = np.concatenate([p.segments_s for p in parts])
    expected = [[2.5, 6.5], [2.7, 6.7], [6.5, 10.5], [6.7, 10.7], [14.5, 18.5], [14.7, 18.7]]
    np.testing.assert_allclose(segs, expected)
    kept, scores, labels = merge_windows({"v": parts}, cfg.eval)["v"]
    # [2.5, 6.5] and [6.5, 10.5] touch the overlap [4, 8] of windows 1-2: NMS keeps each best of
    # its duplicate pair; the third window touches no overlap (window 2 ends at 12), so its
    # duplicate pair stays.
    np.testing.assert_allclose(
        sorted(kept.tolist()), [[2.5, 6.5], [6.5, 10.5], [14.5, 18.5], [14.7, 18.7]]
    )
    assert (labels == 3).all() and (np.diff(scores) <= 0).all()


def test_overlap_rule_parameters_are_checked() -> None:
    with pytest.raises(TalBenchError, match="iou"):
        resolve_run_config("tadtr", "paper", ["eval.merge_params.iou=1.5"])
    with pytest.raises(TalBenchError, match="sigma"):  # another rule's parameter
        resolve_run_config("tadtr", "paper", ["eval.merge_params.sigma=0.3"])
