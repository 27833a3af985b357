"""The vectorised evaluator against hand-derived numbers, the plain reference loop and real data."""

from __future__ import annotations

import numpy as np
import pytest
from evalhelpers import (
    ANET_GT,
    ANET_SAMPLE,
    THUMOS_AF,
    annotations,
    detections,
    hand_example,
    video,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import reference_evaluate

from tal_bench.cli.evaluate import threshold_keys
from tal_bench.data.annotations import load_annotations, select_subset
from tal_bench.errors import TalBenchError
from tal_bench.evaluation import (
    dedup_mask,
    evaluate_detections,
    load_predictions,
    make_detections,
    pairwise_tiou,
    tiou_preset,
)

THUMOS = tiou_preset("thumos")
ANET = tiou_preset("anet")


def assert_same_as_reference(gt, subset, dets, thresholds, dedup=False):
    """Fast and reference agree on classes, counts and every AP (1e-12)."""
    ref = reference_evaluate(gt, subset, dets, thresholds, dedup=dedup)
    res = evaluate_detections(gt, subset, dets, thresholds, dedup=dedup)
    assert res.classes == ref["classes"]
    assert res.num_gt == ref["num_gt"]
    assert res.num_dropped_pred == ref["num_dropped_pred"]
    np.testing.assert_allclose(res.ap, ref["ap"], rtol=0, atol=1e-12)
    assert res.average_mAP == pytest.approx(ref["average_mAP"], abs=1e-12)
    return res


# ----------------------------------------------------------------------------- hand-derived


def test_hand_checked_example_from_evaluation_md():
    gt, dets = hand_example()
    res = assert_same_as_reference(gt, "validation", dets, ANET)
    # AP_A = 0.6 at 0.5, 1/3 for 0.55-0.80, 1/6 for 0.85-0.95; AP_B = 0.5 everywhere
    expected = np.r_[0.55, [(1 / 3 + 0.5) / 2] * 6, [(1 / 6 + 0.5) / 2] * 3]
    np.testing.assert_allclose(list(res.mAP.values()), expected, rtol=0, atol=1e-12)
    assert res.average_mAP == pytest.approx(0.405, abs=1e-12)
    assert res.classes == ["A", "B"]
    assert (res.num_gt, res.num_pred, res.num_dropped_pred) == (5, 9, 1)
    assert res.dropped_labels == ["C"]
    assert res.num_pred_outside_subset == 1  # the prediction on the training video v3
    assert res.num_videos == 3 and res.subset_match == "raw"


def test_a_locked_gt_is_skipped_and_the_next_best_is_tried():
    # g1 [0,10], g2 [2,12]; p1 [0,10] takes g1; p2 [0.5,10.5]: g1 9.5/10.5 (taken), then
    # g2 8.5/11.5 = 0.739: a TP at 0.5 (VOC would call it an FP), an FP at 0.75.
    gt = annotations([video("v", "test", [("A", 0, 10), ("A", 2, 12)])])
    dets = detections([("v", "A", 0, 10, 0.9), ("v", "A", 0.5, 10.5, 0.8)])
    res = assert_same_as_reference(gt, "test", dets, np.array([0.5, 0.75]))
    np.testing.assert_allclose(res.ap[:, 0], [1.0, 0.5], rtol=0, atol=1e-15)


def test_zero_length_prediction_on_zero_length_gt_matches_through_nan():
    # 0/0 = NaN tIoU is not below any threshold, so the official code counts a match (P8)
    gt = annotations([video("v", "test", [("A", 5, 5)])])
    dets = detections([("v", "A", 7, 7, 0.5)])
    assert np.isnan(pairwise_tiou(7.0, 7.0, 5.0, 5.0))
    res = assert_same_as_reference(gt, "test", dets, THUMOS)
    np.testing.assert_array_equal(res.ap, 1.0)


def test_class_without_predictions_scores_zero_and_counts_in_the_mean():
    gt = annotations([video("v", "test", [("A", 0, 10), ("B", 20, 30)])])
    res = evaluate_detections(gt, "test", detections([("v", "A", 0, 10, 1.0)]), THUMOS)
    np.testing.assert_array_equal(res.ap, [[1.0, 0.0]] * 5)
    assert res.average_mAP == 0.5


def test_no_predictions_at_all_gives_zero():
    gt = annotations([video("v", "test", [("A", 0, 10)])])
    res = evaluate_detections(gt, "test", detections([]), THUMOS)
    assert res.average_mAP == 0.0 and res.num_pred == 0


def test_duplicate_gt_counts_unless_dedup():
    # official: 2 GT, 1 prediction -> recall 1/2, AP 0.5; dedup: 1 GT -> AP 1
    gt = annotations([video("v", "test", [("A", 0, 10), ("A", 0.0005, 10.0005)])])
    dets = detections([("v", "A", 0, 10, 1.0)])
    assert assert_same_as_reference(gt, "test", dets, THUMOS).average_mAP == 0.5
    res = assert_same_as_reference(gt, "test", dets, THUMOS, dedup=True)
    assert res.average_mAP == 1.0 and res.num_gt_removed == 1


def test_dedup_mask_compares_with_kept_rows_only():
    labels = ["A", "A", "A", "B", "A", "A"]
    segs = np.array(
        [
            [0, 10],
            [0.0009, 10.0009],  # within 1e-3 of row 0: duplicate
            [0.0018, 10],  # within 1e-3 of the dropped row 1 only: kept
            [0, 10],  # other label: kept
            [5, 5.0005],  # shorter than 1e-3 s: dropped
            [0, 10.002],  # end differs by 2e-3: kept
        ]
    )
    np.testing.assert_array_equal(dedup_mask(labels, segs), [1, 0, 1, 1, 0, 1])


def test_pairwise_tiou_hand_values():
    pred, gt = np.array([[0, 10], [5, 15], [20, 21]]), np.array([[5, 15], [0, 10]])
    tiou = pairwise_tiou(pred[:, None, 0], pred[:, None, 1], gt[None, :, 0], gt[None, :, 1])
    np.testing.assert_allclose(tiou, [[5 / 15, 1], [1, 5 / 15], [0, 0]], rtol=0, atol=1e-15)


def test_tiou_presets_are_the_exact_linspace_arrays():
    assert THUMOS.tolist() == [0.3, 0.39999999999999997, 0.5, 0.6, 0.7]
    assert ANET[8] == 0.8999999999999999 and len(ANET) == 10
    assert tiou_preset("0.3, 0.5").tolist() == [0.3, 0.5]
    assert threshold_keys(THUMOS) == ["0.3", "0.4", "0.5", "0.6", "0.7"]


@pytest.mark.parametrize("spec", ["0.3,x", "", "0,0.5", "0.5,1.2", "0.5,0.5", "nan"])
def test_bad_tiou_specs_raise_one_line_errors(spec):
    with pytest.raises(TalBenchError) as err:
        tiou_preset(spec)
    assert "\n" not in str(err.value)


def test_subset_by_raw_or_normalised_name_and_errors():
    gt, dets = hand_example()
    raw = evaluate_detections(gt, "validation", dets, THUMOS)
    norm = evaluate_detections(gt, "val", dets, THUMOS)
    assert (raw.subset_match, norm.subset_match) == ("raw", "normalized")
    np.testing.assert_array_equal(raw.ap, norm.ap)
    with pytest.raises(TalBenchError, match="available: 'training' \\(train\\), 'validation'"):
        evaluate_detections(gt, "testing", dets, THUMOS)


# ----------------------------------------------------------------------------- randomised

LABELS = ["A", "B", "C"]
GRID = st.integers(0, 16).map(lambda x: x * 0.5)  # coarse grid: many tIoU ties
LENGTH = st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0])
SCORE = st.one_of(st.sampled_from([0.2, 0.5, 0.9]), st.floats(0, 1))  # ties and distinct

gt_row = st.tuples(st.sampled_from(LABELS[:2]), GRID, LENGTH)
gt_video = st.tuples(st.sampled_from(["validation", "training"]), st.lists(gt_row, max_size=8))
pred_row = st.tuples(
    st.sampled_from(["v0", "v1", "v2", "v3", "unknown"]),
    st.sampled_from(LABELS),
    GRID,
    st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0]),
    SCORE,
)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    st.lists(gt_video, min_size=1, max_size=4),
    st.lists(pred_row, max_size=40),
    st.sampled_from(["thumos", "anet", "0.1,0.5", "0.25", "0.7,0.3,0.5"]),  # any order
    st.booleans(),
)
def test_fast_matches_reference_on_random_cases(gt_videos, pred_rows, tiou, dedup):
    vids = []
    for i, (subset, rows) in enumerate(gt_videos):
        # duplicate the first row now and then: same-label duplicate GT
        rows = rows + rows[:1] if i % 2 else rows
        vids.append(video(f"v{i}", subset, [(lab, s, s + n) for lab, s, n in rows]))
    gt = annotations(vids)
    dets = detections([(v, lab, s, s + n, sc) for v, lab, s, n, sc in pred_rows])
    thresholds = tiou_preset(tiou)
    in_subset = [v for v in vids if v.subset_raw == "validation"]
    n_gt = sum(
        int(dedup_mask(v.labels, v.segments_s).sum()) if dedup else len(v.labels) for v in in_subset
    )
    if n_gt == 0:
        with pytest.raises(TalBenchError):
            evaluate_detections(gt, "validation", dets, thresholds, dedup=dedup)
        return
    assert_same_as_reference(gt, "validation", dets, thresholds, dedup=dedup)


def _small_case(rng: np.random.Generator):
    """A small random case: grid segments (ties), zero-length and duplicate GT, tied scores,
    labels without GT, videos outside the subset or unknown."""
    vids = []
    for i in range(int(rng.integers(1, 5))):
        n = int(rng.integers(0, 7))
        start = rng.integers(0, 16, n) * 0.5
        length = rng.choice([0.0, 0.5, 1.0, 2.0, 3.0], n, p=[0.1, 0.2, 0.3, 0.2, 0.2])
        labels = rng.choice(LABELS[:2], n)
        rows = [(str(a), s, s + d) for a, s, d in zip(labels, start, length, strict=True)]
        rows += rows[:1] if rng.random() < 0.3 else []  # same-label duplicate
        subset = str(rng.choice(["validation", "training"], p=[0.8, 0.2]))
        vids.append(video(f"v{i}", subset, rows))
    m = int(rng.integers(0, 30))
    start = rng.integers(0, 16, m) * 0.5
    scores = rng.choice([0.2, 0.5, 0.9], m) if rng.random() < 0.5 else rng.random(m)
    dets = make_detections(
        rng.choice(["v0", "v1", "v2", "v3", "unknown"], m),
        start,
        start + rng.choice([0.0, 0.5, 1.0, 2.0, 3.0], m, p=[0.05, 0.25, 0.3, 0.2, 0.2]),
        rng.choice(LABELS, m),
        scores,
    )
    return annotations(vids), dets


def test_fast_matches_reference_on_2000_seeded_small_cases():
    checked = 0
    for seed in range(2000):
        gt, dets = _small_case(np.random.default_rng(seed))
        dedup = seed % 4 == 0
        try:
            res = evaluate_detections(gt, "validation", dets, ANET, dedup=dedup)
        except TalBenchError:  # no GT instance in the subset: nothing to compare
            assert reference_evaluate(gt, "validation", dets, ANET, dedup=dedup)["num_gt"] == 0
            continue
        ref = reference_evaluate(gt, "validation", dets, ANET, dedup=dedup)
        assert res.classes == ref["classes"], seed
        assert np.abs(res.ap - ref["ap"]).max() <= 1e-12, f"seed {seed}"
        checked += 1
    assert checked > 1500


@pytest.mark.parametrize("seed", range(40))
def test_fast_matches_reference_on_crowded_blocks(seed):
    """Many GT per (class, video) on a grid: long tIoU rows with ties (NumPy's non-insertion
    argsort paths), crowded components, out-of-subset and unknown videos."""
    rng = np.random.default_rng(seed)
    vids = []
    for i in range(4):
        n = int(rng.integers(10, 45))
        start = rng.integers(0, 60, n) * 0.5
        rows = [(str(lab), s, s + d) for lab, s, d in zip(
            rng.choice(LABELS[:2], n), start, rng.choice([0.5, 1, 2, 4], n), strict=True
        )]  # fmt: skip
        vids.append(video(f"v{i}", "test" if i < 3 else "train", rows))
    gt = annotations(vids)
    m = int(rng.integers(50, 300))
    start = rng.integers(0, 60, m) * 0.5
    scores = rng.choice([0.1, 0.3, 0.7], m) if seed % 2 else rng.random(m)
    dets = make_detections(
        rng.choice(["v0", "v1", "v2", "v3", "v9"], m),
        start,
        start + rng.choice([0.5, 1, 2, 4], m),
        rng.choice(LABELS, m),
        scores,
    )
    assert_same_as_reference(gt, "test", dets, THUMOS, dedup=bool(seed % 3 == 0))


# ----------------------------------------------------------------------------- real data

needs_thumos = pytest.mark.skipif(
    not THUMOS_AF.is_file(), reason=f"shared THUMOS annotations not found at {THUMOS_AF}"
)
needs_anet = pytest.mark.skipif(
    not (ANET_GT.is_file() and ANET_SAMPLE.is_file()),
    reason=f"shared ActivityNet files not found at {ANET_GT} / {ANET_SAMPLE}",
)


def _jittered_copies(gt, subset, rng, copies=2, fps_per_video=10):
    videos, _ = select_subset(gt, subset)
    rows = []
    for v in videos:
        for (s, e), lab in zip(
            np.repeat(v.segments_s, copies, axis=0).tolist(),
            [lab for lab in v.labels for _ in range(copies)],
            strict=True,
        ):
            c, w = (s + e) / 2 + rng.normal(0, 0.2) * (e - s), (e - s) * np.exp(rng.normal(0, 0.3))
            rows.append((v.video_id, lab, c - w / 2, c + w / 2, rng.random()))
        for _ in range(fps_per_video):
            c, w = rng.uniform(0, v.duration_s), rng.uniform(1, 8)
            rows.append(
                (v.video_id, str(rng.choice(gt.classes)), c - w / 2, c + w / 2, rng.random())
            )
    return detections(rows)  # fmt: skip


@needs_thumos
def test_real_thumos_test_gt_agrees_with_reference():
    gt = load_annotations(THUMOS_AF)
    dets = _jittered_copies(gt, "Test", np.random.default_rng(0))
    res = assert_same_as_reference(gt, "Test", dets, THUMOS)
    assert (res.num_gt, res.num_videos, len(res.classes)) == (3358, 212, 20)
    assert 0.1 < res.average_mAP < 0.9
    # normalised name selects the same videos
    np.testing.assert_array_equal(evaluate_detections(gt, "test", dets, THUMOS).ap, res.ap)


@needs_thumos
def test_real_thumos_gt_as_predictions_scores_one():
    gt = load_annotations(THUMOS_AF)
    videos, _ = select_subset(gt, "test")
    rows = [(v.video_id, lab, s, e, 1.0) for v in videos
            for (s, e), lab in zip(v.segments_s.tolist(), v.labels, strict=True)]  # fmt: skip
    res = evaluate_detections(gt, "test", detections(rows), THUMOS)
    assert res.average_mAP == 1.0 and all(v == 1.0 for v in res.mAP.values())


@needs_anet
def test_official_sample_prediction_scores_exactly_one():
    gt = load_annotations(ANET_GT)
    dets = load_predictions(ANET_SAMPLE, keep_zero_length=True)
    res = evaluate_detections(gt, "validation", dets, ANET)
    assert (res.num_gt, len(dets), res.num_videos) == (7654, 7654, 4926)
    assert all(v == 1.0 for v in res.mAP.values()) and res.average_mAP == 1.0


@needs_anet
def test_official_sample_prediction_with_dedup_matches_actionformer_figure():
    # ActionFormer-style dedup gives 0.998825 (7630 GT, duplicates become FPs)
    gt = load_annotations(ANET_GT)
    dets = load_predictions(ANET_SAMPLE, keep_zero_length=True)
    res = evaluate_detections(gt, "validation", dets, ANET, dedup=True)
    assert (res.num_gt, res.num_gt_removed) == (7630, 24)
    assert round(res.average_mAP, 6) == 0.998825
