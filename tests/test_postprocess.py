"""Post-processing after the detector: seconds, window merge (window mode only), class fusion."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from tal_bench.config import EvalConfig
from tal_bench.errors import TalBenchError
from tal_bench.pipelines.resolve import resolve_run_config
from tal_bench.postprocess import (
    WINDOW_MERGES,
    ItemPart,
    SoftNmsParams,
    WindowMerge,
    cap_per_video,
    item_part,
    merge_soft_nms,
    merge_windows,
    register_window_merge,
    to_detections,
)
from tal_bench.types import ItemDetections


def _part(segs: list[list[float]], scores: list[float], labels: list[int]) -> ItemPart:
    return ItemPart(np.array(segs, dtype=float), np.array(scores), np.array(labels), (0.0, 0.0))


def test_soft_nms_merge_per_label():
    # two windows of one video: an overlapping pair of class 0 and one class-1 detection
    parts = [
        _part([[0.0, 10.0], [20.0, 30.0]], [0.9, 0.5], [0, 1]),
        _part([[5.0, 10.0]], [0.8], [0]),
    ]
    segs, scores, labels = merge_soft_nms({"v": parts}, SoftNmsParams(sigma=0.5), 10)["v"]
    # class 0: [0, 10] kept at 0.9; [5, 10] has tIoU 0.5 with it -> 0.8 exp(-0.25 / 0.5)
    # class 1 is never decayed by class 0.
    # 0.8 exp(-0.5) = 0.485 < 0.5, so the class-1 detection ranks second.
    assert scores.tolist() == pytest.approx([0.9, 0.5, 0.8 * math.exp(-0.5)])
    assert labels.tolist() == [0, 1, 0]
    assert segs.tolist() == [[0.0, 10.0], [20.0, 30.0], [5.0, 10.0]]
    top1 = merge_soft_nms({"v": parts}, SoftNmsParams(sigma=0.5), 1)["v"]
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


def test_item_part_to_seconds_clips_and_spans():
    item = {
        "mask": torch.tensor([True] * 6 + [False] * 2),
        "t0_s": 2.0,
        "step_s": 0.5,
        "duration_s": 4.0,
    }
    det = ItemDetections(
        segments=torch.tensor([[0.0, 2.0], [3.0, 9.0], [7.0, 8.0]]),
        scores=torch.tensor([0.9, 0.8, 0.7]),
        labels=torch.tensor([-1, -1, -1]),
    )
    part = item_part(item, det)
    # t = 2 + 0.5 x: [2, 3]; [3.5, 6.5] clipped to the 4 s video -> [3.5, 4]; [5.5, 6] is past
    # the end, empty after clipping, dropped
    assert part.segments_s.tolist() == [[2.0, 3.0], [3.5, 4.0]]
    assert part.scores.tolist() == pytest.approx([0.9, 0.8])
    # six valid steps cover grid [-0.5, 5.5] -> [1.75, 4.75] s, clipped to [0, 4]
    assert part.span_s == (1.75, 4.0)


def test_single_item_videos_are_not_suppressed_again():
    # resize mode (ActivityNet): one item per video, already soft-NMSed by the detector. Its
    # overlapping proposals must reach the evaluator with their scores unchanged.
    cfg = resolve_run_config("etad", "cpu", ["data.dataset=anet13"])
    assert (cfg.data.mode, cfg.eval.window_merge, cfg.eval.merge_params) == ("resize", "none", {})
    parts = {"v": [_part([[0.0, 10.0], [1.0, 10.0], [0.0, 9.0]], [0.9, 0.8, 0.85], [-1] * 3)]}
    segs, scores, _ = merge_windows(parts, cfg.eval)["v"]
    assert scores.tolist() == [0.9, 0.85, 0.8]  # sorted, not decayed
    assert segs.tolist() == [[0.0, 10.0], [0.0, 9.0], [1.0, 10.0]]
    # window mode (THUMOS) merges the windows with the detector's rule
    window = resolve_run_config("etad", "cpu")
    assert (window.data.mode, window.eval.window_merge) == ("window", "soft_nms")
    assert window.eval.merge_params == {"sigma": 0.3}
    _, decayed, _ = merge_windows(parts, window.eval)["v"]
    assert decayed[0] == 0.9 and decayed[1] < 0.85


def test_explicit_settings_win_and_params_merge_key_by_key():
    cfg = resolve_run_config("etad", "cpu", ["data.dataset=anet13", "eval.window_merge=soft_nms"])
    assert cfg.eval.merge_params == {"sigma": 0.3}  # the detector's sigma for its own rule
    cfg = resolve_run_config("etad", "cpu", ["eval.merge_params.sigma=0.5", "eval.top_k_classes=3"])
    assert cfg.eval.merge_params == {"sigma": 0.5} and cfg.eval.top_k_classes == 3
    with pytest.raises(TalBenchError, match=r"eval\.merge_params\.sgma") as err:
        resolve_run_config("etad", "cpu", ["eval.merge_params.sgma=0.5"])
    assert "\n" not in str(err.value)
    with pytest.raises(TalBenchError, match="unknown window-merge rule 'soft-nms'"):
        resolve_run_config("etad", "cpu", ["eval.window_merge=soft-nms"])


def test_classifier_fits_the_detector():
    assert resolve_run_config("dummy", "cpu").eval.classifier == "none"
    assert resolve_run_config("dummy", "cpu").eval.top_k_classes is None
    assert resolve_run_config("etad", "cpu").eval.classifier == "internal"
    with pytest.raises(TalBenchError, match="class-aware"):
        resolve_run_config("dummy", "cpu", ["eval.classifier=internal"])
    with pytest.raises(TalBenchError, match="needs a video-level classifier"):
        resolve_run_config("etad", "cpu", ["eval.classifier=none"])


@dataclass(frozen=True)
class _KeepFirstParams:
    count: int = 1


def _keep_first(videos: dict, params: _KeepFirstParams, max_dets: int) -> dict:
    """A toy rule: the first ``count`` detections of each video's first window."""
    del max_dets
    out = {}
    for vid, parts in videos.items():
        first = parts[0]
        out[vid] = (
            first.segments_s[: params.count],
            first.scores[: params.count],
            first.labels[: params.count],
        )
    return out


def test_a_registered_rule_is_used_with_its_params():
    if "keep_first_test" not in WINDOW_MERGES:
        register_window_merge(WindowMerge("keep_first_test", _KeepFirstParams, _keep_first, "test"))
    cfg = resolve_run_config(
        "dummy", "cpu", ["eval.window_merge=keep_first_test", "eval.merge_params.count=2"]
    )
    assert cfg.eval.merge_params == {"count": 2}
    parts = {"v": [_part([[0, 1], [1, 2], [2, 3]], [0.1, 0.2, 0.3], [0, 0, 0]), _part([], [], [])]}
    segs, scores, _ = merge_windows(parts, cfg.eval)["v"]
    assert scores.tolist() == [0.1, 0.2]
    with pytest.raises(TalBenchError, match="max_dets_per_video"):
        merge_windows(parts, EvalConfig(window_merge="keep_first_test"))
