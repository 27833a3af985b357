"""Hard 1-D NMS and TadTR's cross-window fusion, by hand."""

from __future__ import annotations

import numpy as np

from tal_bench.models.ops.window_nms import classwise_nms, nms_1d, overlap_region_nms


def test_nms_1d_by_hand() -> None:
    segs = np.array([[0.0, 10.0], [1.0, 11.0], [20.0, 30.0], [0.0, 4.0]])
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    # [1, 11] vs [0, 10]: 9 / 11 = 0.82 > 0.4 -> dropped; [0, 4] vs [0, 10]: 0.4 -> kept (<=)
    assert nms_1d(segs, scores, 0.4).tolist() == [0, 2, 3]
    assert nms_1d(segs, scores, 0.85).tolist() == [0, 1, 2, 3]
    assert nms_1d(np.zeros((0, 2)), np.zeros(0), 0.4).tolist() == []


def test_classwise_nms_suppresses_within_a_label_only() -> None:
    segs = np.array([[0.0, 10.0], [1.0, 11.0], [1.0, 11.0]])
    kept = classwise_nms(segs, np.array([0.9, 0.8, 0.7]), np.array([0, 0, 1]), 0.4)
    assert sorted(kept.tolist()) == [0, 2]


def test_only_detections_touching_an_overlap_are_suppressed() -> None:
    windows = np.array([[10.0, 30.0], [0.0, 20.0]])  # unsorted on purpose: overlap [10, 20]
    segs = np.array(
        [
            [12.0, 16.0],  # in the overlap, best
            [12.5, 16.5],  # in the overlap, same class, tIoU 0.8 -> suppressed
            [12.5, 16.5],  # in the overlap, other class -> kept
            [2.0, 6.0],  # outside, best of a duplicate pair
            [2.2, 6.2],  # outside: duplicates outside overlaps are left alone
            [25.0, 29.0],  # outside
        ]
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = np.array([0, 0, 1, 0, 0, 0])
    kept = overlap_region_nms(segs, scores, labels, windows, 0.4)
    assert kept.tolist() == [0, 2, 3, 4, 5]  # sorted by score


def test_a_single_window_keeps_everything() -> None:
    segs = np.array([[0.0, 5.0], [0.5, 5.5]])
    kept = overlap_region_nms(
        segs, np.array([0.2, 0.9]), np.array([0, 0]), np.array([[0, 9.0]]), 0.4
    )
    assert kept.tolist() == [1, 0]
