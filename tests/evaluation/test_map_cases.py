"""Public behaviour of the evaluator against the plain reference: shared candidates, far and
degenerate times, tied and non-finite scores, reversed GT, index tables that differ from the
GT's, and a prepared ground truth scoring many prediction sets."""

from __future__ import annotations

import numpy as np
import pytest
from evalhelpers import annotations, detections, hand_example, video
from reference import reference_evaluate

from tal_bench.cli.evaluate import summary
from tal_bench.evaluation import evaluate_detections, prepare_ground_truth, tiou_preset
from tal_bench.evaluation.io import row_names
from tal_bench.types import Detections

THUMOS = tiou_preset("thumos")
ANET = tiou_preset("anet")


def assert_same(gt, dets, thresholds, subset="validation"):
    ref = reference_evaluate(gt, subset, dets, thresholds)
    res = evaluate_detections(gt, subset, dets, thresholds)
    assert res.classes == ref["classes"]
    np.testing.assert_allclose(res.ap, ref["ap"], rtol=0, atol=1e-12)
    return res


def mixed_case(seed: int, offset: float = 0.0):
    """Well separated GT (one candidate per jittered copy) plus a few tight GT pairs and
    predictions bridging them (two candidates), with tied and duplicated scores."""
    rng = np.random.default_rng(seed)
    videos, rows = [], []
    for v in range(6):
        vid = f"vid_{v:03d}"
        gt_rows = []
        for i in range(12):
            label = "AB"[i % 2]
            start = offset + 30.0 * i + rng.uniform(0, 5)
            gt_rows.append((label, start, start + rng.uniform(4, 10)))
        pair_start = offset + 400.0 + 20 * v
        gt_rows += [("A", pair_start, pair_start + 5), ("A", pair_start + 4, pair_start + 9)]
        videos.append(video(vid, "validation", gt_rows))
        for label, s, e in gt_rows:
            length = e - s
            for _ in range(int(rng.integers(1, 4))):  # copies with spread tIoUs
                shift = rng.normal(0, 0.25) * length
                rows.append((vid, label, s + shift, e + shift, float(rng.choice([0.5, 0.7]))))
        rows.append((vid, "A", pair_start + 1, pair_start + 8, 0.9))  # bridges both GT
        rows.append((vid, "A", pair_start + 1, pair_start + 8, 0.9))  # duplicate
        rows.append((vid, "A", pair_start + 2, pair_start + 7, float(rng.uniform())))
        for _ in range(15):  # false positives, some in blocks without GT
            s = offset + rng.uniform(0, 450)
            rows.append((vid, str(rng.choice(["A", "B"])), s, s + 3, float(rng.uniform())))
    rows.append(("elsewhere", "A", 0.0, 5.0, 0.99))  # video outside the GT
    order = rng.permutation(len(rows))
    return annotations(videos), detections([rows[i] for i in order])


@pytest.mark.parametrize("seed", range(12))
def test_single_and_shared_candidates_agree_with_reference(seed):
    gt, dets = mixed_case(seed)
    for thresholds in (THUMOS, ANET, ANET[::-1], np.array([0.6, 0.1, 0.95, 0.3])):
        assert_same(gt, dets, thresholds)


@pytest.mark.parametrize("offset", [1e6, 1e9, -1e12])
def test_large_time_values_and_degenerate_segments(offset):
    gt, dets = mixed_case(3, offset=offset)
    extra = detections(
        [
            ("vid_000", "A", np.nan, offset + 5.0, 0.95),
            ("vid_000", "A", offset + 5.0, np.inf, 0.94),
            ("vid_000", "B", offset + 5.0, offset + 5.0, 0.93),
            ("vid_001", "A", 1e300, 2e300, 0.92),
            ("vid_001", "A", -np.inf, 0.0, 0.91),
        ]
    )
    cols = [np.r_[a, b] for a, b in zip(_cols(dets), _cols(extra), strict=True)]
    assert_same(gt, detections(list(zip(*cols, strict=True))), THUMOS)


def _cols(dets):
    """The columns in the order ``detections`` takes its rows."""
    videos, labels = row_names(dets)
    return (videos, labels, dets.t_start_s, dets.t_end_s, dets.scores)


@pytest.mark.parametrize("dedup", [False, True])
def test_prepared_ground_truth_scores_many_prediction_sets(dedup):
    """One ``prepare_ground_truth`` reused for several prediction sets gives, each time, what
    ``evaluate_detections`` and the reference give."""
    gt, _ = mixed_case(0)
    index = prepare_ground_truth(gt, "validation", dedup=dedup)
    for seed in range(1, 6):
        _, dets = mixed_case(seed)
        for thresholds in (THUMOS, ANET):
            ref = reference_evaluate(gt, "validation", dets, thresholds, dedup=dedup)
            res = index.evaluate(dets, thresholds)
            assert res.classes == ref["classes"]
            np.testing.assert_allclose(res.ap, ref["ap"], rtol=0, atol=1e-12)
            again = evaluate_detections(gt, "validation", dets, thresholds, dedup=dedup)
            np.testing.assert_array_equal(res.ap, again.ap)
            assert summary(res) == summary(again)


@pytest.mark.parametrize("seed", range(8))
def test_ties_with_unmatchable_predictions_agree_with_reference(seed):
    """Matchable predictions tied with predictions on other videos / with dropped labels."""
    rng = np.random.default_rng(seed)
    videos = [
        video(f"v{v}", "validation", [("AB"[i % 2], 10.0 * i, 10.0 * i + 5) for i in range(4)])
        for v in range(3)
    ]
    rows = []
    for _ in range(300):
        vid = rng.choice(["v0", "v1", "v2", "other"])
        start = rng.uniform(0, 40)
        label = rng.choice(["A", "A", "B", "C"])  # C: no GT, dropped
        rows.append((vid, label, start, start + rng.uniform(1, 6), rng.integers(0, 6) / 5))
    assert_same(annotations(videos), detections(rows), THUMOS)


@pytest.mark.parametrize("seed", range(6))
def test_non_finite_and_signed_zero_scores_follow_the_official_sort(seed):
    """NaN, +-inf and +-0 scores: the order is ``scores.argsort()[::-1]``, as in the loop."""
    gt, dets = mixed_case(seed)
    rng = np.random.default_rng(seed)
    dets.scores[:] = np.where(
        rng.random(len(dets)) < 0.5,
        rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0, 0.3], len(dets)),
        dets.scores,
    )
    assert_same(gt, dets, THUMOS)


def test_reversed_gt_matches_through_nan_like_the_official_code():
    # GT [10, 5] and prediction [0, 5]: intersection 0, union -5 + 5 - 0 = 0, tIoU NaN: a match,
    # although the GT starts after the prediction ends
    gt = annotations([video("v", "validation", [("A", 10, 5), ("A", 20, 30)])])
    dets = detections([("v", "A", 0.0, 5.0, 0.9), ("v", "A", 20.0, 30.0, 0.8)])
    res = assert_same(gt, dets, THUMOS)
    np.testing.assert_array_equal(res.ap, 1.0)


def test_indices_are_read_through_the_detections_own_name_lists():
    """Name lists in another order than the GT's, with unknown names and a class-agnostic row."""
    gt, dets = hand_example()
    ref = evaluate_detections(gt, "validation", dets, ANET)
    videos, labels = row_names(dets)
    video_ids, classes = ["elsewhere", *sorted(set(videos))], ["Z", *sorted(set(labels))]
    shuffled = Detections(
        video_idx=np.array([video_ids.index(v) for v in videos] + [0]),
        t_start_s=np.r_[dets.t_start_s, 0.0],
        t_end_s=np.r_[dets.t_end_s, 5.0],
        label_idx=np.array([classes.index(c) for c in labels] + [-1]),
        scores=np.r_[dets.scores, 1.0],
        video_ids=video_ids,
        classes=classes,
    )
    res = evaluate_detections(gt, "validation", shuffled, ANET)
    np.testing.assert_array_equal(res.ap, ref.ap)
    assert (res.num_dropped_pred, res.dropped_labels) == (2, ["", "C"])


def test_predictions_on_videos_without_gt_of_their_class_are_false_positives():
    # B has GT only in the first video; B predictions on the last videos find none
    gt = annotations(
        [video("v0", "validation", [("A", 0, 10), ("B", 20, 30)])]
        + [video(f"v{i}", "validation", [("A", 0, 10)]) for i in range(1, 4)]
    )
    dets = detections(
        [("v3", "B", 20.0, 30.0, 0.9), ("v2", "B", 0.0, 10.0, 0.8), ("v0", "B", 20.0, 30.0, 0.7)]
        + [(f"v{i}", "A", 0.0, 10.0, 0.5) for i in range(4)]
    )
    res = assert_same(gt, dets, THUMOS)
    np.testing.assert_allclose(res.ap[:, 1], 1 / 3, rtol=0, atol=1e-15)  # one TP, third in line
    np.testing.assert_array_equal(res.ap[:, 0], 1.0)
