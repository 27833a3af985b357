"""Video-level classifier: score-file formats, the internal MLP, and proposal x class fusion."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tal_bench.errors import TalBenchError
from tal_bench.models.video_classifier import (
    fuse_classes,
    internal_class_scores,
    load_class_scores,
    pool_video,
)
from tal_bench.types import Detections

CLASSES = ["Jump", "Run", "Swim"]


def _proposals() -> Detections:
    return Detections(
        video_idx=np.array([0, 0, 1]),
        t_start_s=np.array([1.0, 5.0, 0.5]),
        t_end_s=np.array([2.0, 9.0, 3.0]),
        label_idx=np.array([-1, -1, -1]),
        scores=np.array([0.8, 0.5, 0.9]),
        video_ids=["a", "b"],
        classes=[],
    )


def test_fusion_scores_are_products_of_top_k():
    scores = {"a": np.array([0.1, 0.7, 0.4]), "b": np.array([0.6, 0.2, 0.3])}
    fused = fuse_classes(_proposals(), scores, CLASSES, top_k=2)
    assert fused.video_ids == ["a", "b"] and fused.classes == CLASSES
    videos = [fused.video_ids[v] for v in fused.video_idx]
    labels = [fused.classes[c] for c in fused.label_idx]
    rows = sorted(
        zip(videos, fused.t_start_s, labels, fused.scores, strict=True),
        key=lambda r: (r[0], r[1], -r[3]),
    )
    # a: top-2 classes Run (0.7), Swim (0.4); b: Jump (0.6), Swim (0.3)
    expected = [
        ("a", 1.0, "Run", 0.8 * 0.7),
        ("a", 1.0, "Swim", 0.8 * 0.4),
        ("a", 5.0, "Run", 0.5 * 0.7),
        ("a", 5.0, "Swim", 0.5 * 0.4),
        ("b", 0.5, "Jump", 0.9 * 0.6),
        ("b", 0.5, "Swim", 0.9 * 0.3),
    ]
    assert [r[:3] for r in rows] == [e[:3] for e in expected]
    assert [r[3] for r in rows] == pytest.approx([e[3] for e in expected])
    # segments travel with their proposal
    assert sorted(set(zip(fused.t_start_s, fused.t_end_s, strict=True))) == [
        (0.5, 3.0),
        (1.0, 2.0),
        (5.0, 9.0),
    ]


def test_fusion_top_k_larger_than_classes_and_invalid():
    scores = {"a": np.array([0.1, 0.7, 0.4]), "b": np.array([0.6, 0.2, 0.3])}
    assert len(fuse_classes(_proposals(), scores, CLASSES, top_k=10)) == 3 * 3
    with pytest.raises(TalBenchError, match="top_k_classes"):
        fuse_classes(_proposals(), scores, CLASSES, top_k=0)
    none = fuse_classes(_proposals().take(np.zeros(0, dtype=np.int64)), scores, CLASSES, 2)
    assert len(none) == 0 and none.label_idx.dtype == np.int64


def test_cuhk_json_reorders_classes_and_matches_v_prefix(tmp_path):
    path = tmp_path / "cuhk.json"
    data = {"class": ["Swim", "Jump", "Run", "Other"], "results": {"v_abc": [0.1, 0.2, 0.3, 0.4]}}
    path.write_text(json.dumps(data))
    scores = load_class_scores(path, CLASSES, ["abc"])
    assert scores["abc"].tolist() == pytest.approx([0.2, 0.3, 0.1])


def test_plain_json_missing_classes_score_zero(tmp_path):
    path = tmp_path / "scores.json"
    path.write_text(json.dumps({"x": {"Run": 0.9}, "y": {"Swim": 0.5, "Jump": 0.25}}))
    scores = load_class_scores(path, CLASSES, ["x", "y"])
    assert scores["x"].tolist() == [0.0, 0.9, 0.0]
    assert scores["y"].tolist() == [0.25, 0.0, 0.5]
    with pytest.raises(TalBenchError, match="1 of 2 test videos"):
        load_class_scores(path, CLASSES, ["x", "z"])


def test_npy_with_suffix_index_and_columns(tmp_path):
    # UntrimmedNet layout: row = trailing number - 1, columns chosen by name
    matrix = np.arange(20, dtype=np.float64).reshape(4, 5) / 20  # (4 videos, 5 classes)
    np.save(tmp_path / "unet.npy", matrix)
    sidecar = {"index": "suffix", "columns": {"Jump": 4, "Run": 0, "Swim": 2}}
    (tmp_path / "unet.json").write_text(json.dumps(sidecar))
    scores = load_class_scores(tmp_path / "unet.npy", CLASSES, ["video_test_0000003"])
    assert scores["video_test_0000003"].tolist() == pytest.approx([14 / 20, 10 / 20, 12 / 20])


def test_npy_with_ids_and_missing_class(tmp_path):
    np.save(tmp_path / "s.npy", np.array([[0.3, 0.6]]))
    (tmp_path / "s.json").write_text(json.dumps({"video_ids": ["q"], "classes": ["Run", "Jump"]}))
    with pytest.raises(TalBenchError, match="Swim"):
        load_class_scores(tmp_path / "s.npy", CLASSES, ["q"])
    assert load_class_scores(tmp_path / "s.npy", ["Jump", "Run"], ["q"])["q"].tolist() == [0.6, 0.3]
    with pytest.raises(TalBenchError, match="does not exist"):
        load_class_scores(tmp_path / "none.json", CLASSES, ["q"])


def test_pool_video_is_max_mean_std():
    feats = np.array([[1.0, -2.0], [3.0, 0.0]])  # (T=2, C=2)
    # max (3, 0), mean (2, -1), population std (1, 1)
    assert pool_video(feats).tolist() == [3.0, 0.0, 2.0, -1.0, 1.0, 1.0]


def test_internal_classifier_ranks_the_present_class_first():
    rng = np.random.default_rng(0)
    feats: dict[str, np.ndarray] = {}
    train_ids, train_labels = [], []
    for i in range(30):
        label = i % 3
        x = rng.normal(0.0, 0.3, size=(20, 6)).astype(np.float32)
        x[5:12, label] += 2.0  # class k lights up channel k
        feats[f"tr{i}"] = x
        train_ids.append(f"tr{i}")
        train_labels.append([label])
    test_ids = []
    for label in range(3):
        x = rng.normal(0.0, 0.3, size=(20, 6)).astype(np.float32)
        x[8:14, label] += 2.0
        feats[f"te{label}"] = x
        test_ids.append(f"te{label}")
    scores = internal_class_scores(feats.__getitem__, train_ids, train_labels, test_ids, 3)
    assert [int(np.argmax(scores[f"te{k}"])) for k in range(3)] == [0, 1, 2]
    again = internal_class_scores(feats.__getitem__, train_ids, train_labels, test_ids, 3)
    assert all(np.array_equal(scores[v], again[v]) for v in test_ids)
