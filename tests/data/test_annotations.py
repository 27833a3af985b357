"""Annotation readers: every real file variant (counts of the real files),
the OpenTAD / TadTR / official layouts, the writer, subset selection and one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tal_bench.data.annotations import (
    load_annotations,
    normalize_subset,
    parse_annotations,
    select_subset,
    write_actionformer_json,
)
from tal_bench.errors import TalBenchError

ANN = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "annotations"
needs_shared = pytest.mark.skipif(
    not ANN.is_dir(), reason=f"shared annotation folder not found at {ANN}"
)

# ActionFormer label_id = index in this alphabetical list
THUMOS_CLASSES = [
    "BaseballPitch",
    "BasketballDunk",
    "Billiards",
    "CleanAndJerk",
    "CliffDiving",
    "CricketBowling",
    "CricketShot",
    "Diving",
    "FrisbeeCatch",
    "GolfSwing",
    "HammerThrow",
    "HighJump",
    "JavelinThrow",
    "LongJump",
    "PoleVault",
    "Shotput",
    "SoccerPenalty",
    "TennisSwing",
    "ThrowDiscus",
    "VolleyballSpiking",
]


def _counts(ann, subset):
    videos, _ = select_subset(ann, subset)
    return len(videos), sum(len(v.labels) for v in videos)


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("Validation", "val"),
        ("val", "val"),
        ("validation", "val"),
        ("training", "train"),
        ("train", "train"),
        ("Test", "test"),
        ("testing", "test"),
        ("test", "test"),
        ("Holdout", "holdout"),
    ],
)
def test_normalize_subset(raw, norm):
    assert normalize_subset(raw) == norm


# ----------------------------------------------------------------------------- real files


@needs_shared
def test_actionformer_thumos14_json():
    ann = load_annotations(ANN / "thumos14" / "actionformer" / "thumos14.json")
    assert ann.source_format == "actionformer" and ann.meta["version"] == "Thumos14-30fps"
    assert len(ann.videos) == 412 and ann.classes == THUMOS_CLASSES
    assert _counts(ann, "Test") == (212, 3358) and _counts(ann, "val") == (200, 3007)
    assert "video_test_0001292" not in ann.videos  # only Ambiguous rows in the raw data
    v = ann.videos["video_test_0000004"]
    assert (v.subset, v.subset_raw, v.fps, v.duration_s) == ("test", "Test", 30.0, 33.83)
    assert v.labels[0] == "CricketBowling" and v.label_ids[0] == 5
    np.testing.assert_array_equal(v.segments_s[0], [0.2, 1.1])
    assert all(ann.classes[i] == lab for vv in ann.videos.values()
               for i, lab in zip(vv.label_ids, vv.labels, strict=True))  # fmt: skip


@needs_shared
def test_gtad_thumos_gt_with_string_segments_and_no_duration():
    ann = load_annotations(ANN / "thumos14" / "gtad" / "thumos_gt.json")
    assert ann.source_format == "gtad" and len(ann.classes) == 20
    assert _counts(ann, "test") == (210, 3311) and _counts(ann, "train") == (200, 3007)
    assert {"video_test_0000270", "video_test_0001496"}.isdisjoint(ann.videos)
    v = ann.videos["video_test_0000896"]
    np.testing.assert_array_equal(v.segments_s[0], [18.6, 24.8])
    assert math.isnan(v.duration_s) and ann.meta["num_videos_without_duration"] == 410


@needs_shared
def test_derived_official_activitynet_json():
    ann = load_annotations(ANN / "activitynet-1.3" / "derived" / "activity_net.v1-3.from_tsp.json")
    assert ann.source_format == "activitynet" and len(ann.videos) == 19994
    assert _counts(ann, "training") == (10024, 15410)
    assert _counts(ann, "validation") == (4926, 7654)
    assert _counts(ann, "testing") == (5044, 0)
    assert len(ann.classes) == 200 and ann.classes == sorted(ann.classes)
    assert "sJFgo9H6zNo" in ann.videos and "v_sJFgo9H6zNo" not in ann.videos  # bare YouTube ids
    with pytest.raises(TalBenchError, match="no annotated instances"):
        select_subset(ann, "testing", require_instances=True)


@needs_shared
def test_bmn_file_without_database_is_refused():
    with pytest.raises(TalBenchError, match="has no 'database' key \\(found: v_"):
        load_annotations(ANN / "activitynet-1.3" / "bmn" / "anet_anno_action.json")


# ----------------------------------------------------------------------------- other layouts


def test_opentad_layout_skips_ambiguous():
    data = {
        "database": {
            "video_test_1": {
                "subset": "validation",
                "duration": 10.0,
                "frame": 300,
                "annotations": [
                    {"label": "Ambiguous", "segment": [0, 1]},
                    {"label": "Diving", "segment": [2, 3]},
                ],
            },
            "video_validation_1": {
                "subset": "training",
                "duration": 5.0,
                "frame": 150,
                "annotations": [{"label": "Billiards", "segment": [1, 4]}],
            },
        }
    }
    ann = parse_annotations(data)
    assert ann.source_format == "opentad" and ann.meta["num_ambiguous_skipped"] == 1
    assert ann.classes == ["Billiards", "Diving"]  # sorted names: no ids in this layout
    assert ann.videos["video_test_1"].labels == ["Diving"]
    assert ann.subsets() == ["train", "val"] and ann.videos["video_test_1"].fps is None


def test_tadtr_layout_keeps_its_classes_order():
    data = {
        "classes": ["Z", "A"],
        "database": {
            "v": {"subset": "val", "duration": 9.0, "fps": 25.0,
                  "annotations": [{"label": "A", "segment": [1, 2]}]},
        },
    }  # fmt: skip
    ann = parse_annotations(data)
    assert ann.source_format == "tadtr" and ann.classes == ["Z", "A"]
    assert ann.videos["v"].subset == "val" and ann.videos["v"].label_ids is None


def test_official_layout_with_taxonomy():
    data = {
        "version": "VERSION 1.3",
        "taxonomy": [{"nodeName": "Archery"}],
        "database": {
            "abc": {"subset": "testing", "duration": 3.5, "annotations": []},
            "def": {"subset": "validation", "duration": 7.0,
                    "annotations": [{"label": "Archery", "segment": [0.5, 6.0]}]},
        },
    }  # fmt: skip
    ann = parse_annotations(data)
    assert ann.source_format == "activitynet" and ann.classes == ["Archery"]
    assert ann.videos["abc"].segments_s.shape == (0, 2)


# ----------------------------------------------------------------------------- writer


def test_write_actionformer_json_round_trip(tmp_path):
    data = {
        "database": {
            "a": {"subset": "Test", "duration": 12.5, "fps": 30.0,
                  "annotations": [{"label": "B", "segment": [1.0, 2.0]}]},
            "b": {"subset": "Validation", "duration": 8.0,
                  "annotations": [{"label": "A", "segment": [0.5, 1.5]}]},
        }
    }  # fmt: skip
    ann = parse_annotations(data)
    ann.classes = ["A", "B", "C"]  # C has no instance: kept by the written 'classes' list
    write_actionformer_json(ann, tmp_path / "sub" / "out.json", version="v-test")
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["out.json"]
    raw = json.loads((tmp_path / "sub" / "out.json").read_text())
    row = raw["database"]["a"]["annotations"][0]
    assert row == {"label": "B", "segment": [1.0, 2.0], "segment(frames)": [30.0, 60.0],
                   "label_id": 1}  # fmt: skip
    back = load_annotations(tmp_path / "sub" / "out.json")
    assert back.source_format == "actionformer" and back.classes == ["A", "B", "C"]
    assert back.meta["version"] == "v-test"
    for vid, v in ann.videos.items():
        w = back.videos[vid]
        assert (w.subset_raw, w.duration_s, w.fps, w.labels) == (
            v.subset_raw, v.duration_s, v.fps, v.labels)  # fmt: skip
        np.testing.assert_array_equal(w.segments_s, v.segments_s)


def test_writer_refuses_labels_outside_classes(tmp_path):
    ann = parse_annotations(
        {"database": {"a": {"subset": "test", "annotations": [{"label": "X", "segment": [0, 1]}]}}}
    )
    ann.classes = ["Y"]
    with pytest.raises(TalBenchError, match="label 'X' is not in ann.classes"):
        write_actionformer_json(ann, tmp_path / "o.json")


# ----------------------------------------------------------------------------- errors


def _db(**video):
    return {"database": {"v": {"subset": "test", "duration": 5.0, **video}}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"database": {"v": {"duration": 1.0}}}, "video 'v' has no 'subset' field"),
        ([1, 2], "has no 'database' key \\(found: list\\)"),
        (_db(annotations=[{"label": "A", "segment": [0, "x"]}]), "segment is not a number"),
        (_db(annotations=[{"label": "A", "segment": [0, 1, 2]}]), "needs 'segment'"),
        (_db(annotations=[{"segment": [0, 1]}]), "annotation 0 has no string 'label'"),
        (_db(annotations=[{"label": "A", "segment": [0, 1], "label_id": 0},
                          {"label": "B", "segment": [0, 1], "label_id": 0}]),
         "label_id 0 / label 'B' conflict"),
        (_db(annotations=[{"label": "A", "segment": [0, 1], "label_id": 0},
                          {"label": "A", "segment": [2, 3]}]), "mixes annotations"),
        ({"classes": ["A"], **_db(annotations=[{"label": "B", "segment": [0, 1]}])},
         "label 'B' not in the 'classes' list"),
    ],
)  # fmt: skip
def test_bad_annotation_data_raise_one_line_errors(data, message):
    with pytest.raises(TalBenchError, match=message) as err:
        parse_annotations(data, path="x.json")
    assert "\n" not in str(err.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(TalBenchError, match="does not exist"):
        load_annotations(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text('{"database": {\n  "v": }')
    with pytest.raises(TalBenchError, match="not valid JSON: Expecting value at line 2 column 8"):
        load_annotations(tmp_path / "bad.json")


def test_select_subset_raw_first_then_normalised_and_unknown():
    ann = parse_annotations(
        {
            "database": {
                "a": {"subset": "Test", "annotations": []},
                "b": {"subset": "test", "annotations": []},
                "c": {"subset": "Validation", "annotations": []},
            }
        }
    )
    assert [v.video_id for v in select_subset(ann, "Test")[0]] == ["a"]  # exact raw match
    assert select_subset(ann, "Validation")[1] == "raw"
    videos, how = select_subset(ann, "val")
    assert [v.video_id for v in videos] == ["c"] and how == "normalized"
    with pytest.raises(TalBenchError, match="available: 'Test' \\(test\\), 'Validation' \\(val\\)"):
        select_subset(ann, "training")
