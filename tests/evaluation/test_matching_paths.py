"""The evaluator's shortcuts against the plain reference: the single-candidate pass, the
multi-candidate rounds, the GT start grid, the string lookup and a prepared ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from evalhelpers import annotations, detections, video
from reference import reference_evaluate

from tal_bench.evaluation import evaluate_detections, matching, prepare_ground_truth, tiou_preset
from tal_bench.evaluation.strings import StringKeys, index_strings

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


@pytest.mark.parametrize("loop_contenders", [0, 10**9])  # vectorised rounds | plain loop
@pytest.mark.parametrize("seed", range(12))
def test_single_candidate_pass_and_rounds_agree_with_reference(seed, loop_contenders, monkeypatch):
    calls = {"first": 0, "rounds": 0}
    rounds_fn = "_assign" if loop_contenders == 0 else "_assign_in_order"
    first, rounds = matching._first_reaching, getattr(matching, rounds_fn)
    monkeypatch.setattr(matching, "LOOP_CONTENDERS", loop_contenders)

    def count_first(*a):
        calls["first"] += 1
        return first(*a)

    def count_rounds(*a):
        calls["rounds"] += 1
        return rounds(*a)

    monkeypatch.setattr(matching, "_first_reaching", count_first)
    monkeypatch.setattr(matching, rounds_fn, count_rounds)
    gt, dets = mixed_case(seed)
    for thresholds in (THUMOS, ANET, ANET[::-1], np.array([0.6, 0.1, 0.95, 0.3])):
        assert_same(gt, dets, thresholds)
    assert calls["first"] and calls["rounds"]  # both paths ran


def test_only_single_candidates_skip_the_rounds(monkeypatch):
    monkeypatch.setattr(matching, "_assign", None)  # must not be reached
    monkeypatch.setattr(matching, "_assign_in_order", None)
    gt = annotations([video("v", "validation", [("A", 0, 10), ("A", 50, 60)])])
    dets = detections(
        [
            ("v", "A", 0.0, 10.0, 0.5),
            ("v", "A", 1.0, 10.0, 0.9),  # first in visit order: takes GT 0 wherever it reaches
            ("v", "A", 0.0, 10.0, 0.9),  # tied score: the official tie order decides
            ("v", "A", 50.0, 58.0, 0.2),
        ]
    )
    assert_same(gt, dets, THUMOS)


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
    return (dets.video_ids, dets.labels, dets.t_start_s, dets.t_end_s, dets.scores)


def test_index_strings_is_an_exact_lookup():
    rng = np.random.default_rng(0)
    alphabet = list("ab_0é") + ["\u4e2d"]
    for _ in range(300):
        chars = alphabet[: int(rng.integers(2, 7))]
        width = int(rng.integers(0, 20))
        keys = list(
            dict.fromkeys(
                "".join(rng.choice(chars, int(rng.integers(0, width + 1))))
                for _ in range(int(rng.integers(1, 40)))
            )
        )
        values = [
            keys[i]
            if rng.random() < 0.7
            else "".join(rng.choice(alphabet, int(rng.integers(0, width + 2))))
            for i in rng.integers(0, len(keys), 200)
        ]
        lookup = {k: i for i, k in enumerate(keys)}
        expected = [lookup.get(v, -1) for v in values]
        assert index_strings(np.asarray(values), keys).tolist() == expected


def test_one_string_keys_serves_values_of_any_width():
    """The key tables are kept per value layout: reusing them must not change an answer."""
    keys = StringKeys(["v1", "video_0002", "é", "\u4e2d文", ""])
    cases = [
        ["v1", "video_0002", "x"],  # <U10, Latin-1
        ["v1", "é", "v1"],  # <U2: "video_0002" and "中文" cannot fit
        ["中文", "v1", "é"],  # wide characters
        ["video_0002", "video_0002_long", "v1"],  # wider than every key
        ["", "v1"],
        ["v1", "video_0002", "x"],  # the first layout again, from the kept table
    ]
    lookup = {k: i for i, k in enumerate(keys.keys)}
    for values in cases:
        expected = [lookup.get(v, -1) for v in values]
        assert keys.index(np.asarray(values)).tolist() == expected, values


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
            assert res.summary() == again.summary()
