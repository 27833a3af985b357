"""The pipeline's window merge rules: window extents from predict_videos and TadTR's overlap NMS."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tal_bench.pipelines.resolve import resolve_run_config
from tal_bench.pipelines.train import execute, merge_videos_overlap_nms, predict_videos
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


class _Fixed(torch.nn.Module):
    """Every window reports the same two same-class detections at grid [2, 6] and [2.2, 6.2]."""

    def predict(self, items):
        segs = torch.tensor([[2.0, 6.0], [2.2, 6.2]])
        return [ItemDetections(segs, torch.tensor([0.9, 0.8]), torch.tensor([3, 3])) for _ in items]


def test_extents_and_overlap_merge() -> None:
    items = [_window(0), _window(4), _window(12, valid=5)]
    extents: dict = {}
    per_video = predict_videos(_Fixed(), items, batch_size=2, extents=extents)
    # window at feature w covers grid [-0.5, valid - 0.5] = [w, w + valid] s
    assert extents["v"] == [(0.0, 8.0), (4.0, 12.0), (12.0, 17.0)]
    segs = np.concatenate([p[0] for p in per_video["v"]])
    expected = [[2.5, 6.5], [2.7, 6.7], [6.5, 10.5], [6.7, 10.7], [14.5, 18.5], [14.7, 18.7]]
    np.testing.assert_allclose(segs, expected)
    merged = merge_videos_overlap_nms(per_video, extents, 0.4)
    kept, scores, labels = merged["v"]
    # [2.5, 6.5] and [6.5, 10.5] touch the overlap [4, 8] of windows 1-2: NMS keeps each best
    # of its duplicate pair; the third window touches no overlap (window 2 ends at 12), so its
    # duplicate pair stays.
    np.testing.assert_allclose(sorted(kept.tolist()), [[2.5, 6.5], [6.5, 10.5], [14.5, 18.5],
                                                       [14.7, 18.7]])  # fmt: skip
    assert (labels == 3).all() and (np.diff(scores) <= 0).all()


def test_unknown_window_merge_is_a_user_error() -> None:
    from tal_bench.errors import TalBenchError

    cfg = resolve_run_config("dummy", "cpu", ["eval.window_merge=nms"])
    with pytest.raises(TalBenchError, match="window_merge"):
        execute(cfg, progress=False)
