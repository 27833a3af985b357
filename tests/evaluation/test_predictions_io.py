"""Prediction files: official JSON, ActionFormer-style label ids, CSV, and their errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from evalhelpers import detections

from tal_bench.errors import TalBenchError
from tal_bench.evaluation import load_predictions, write_predictions_json
from tal_bench.evaluation.io import row_names

CLASSES = ["A", "B", "C"]


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def test_official_json_round_trip(tmp_path):
    dets = detections([("v1", "A", 1.0, 2.5, 0.9), ("v2", "B", 0.0, 4.0, 0.25)])
    write_predictions_json(dets, tmp_path / "p.json")
    back = load_predictions(tmp_path / "p.json")
    assert [x.tolist() for x in row_names(back)] == [["v1", "v2"], ["A", "B"]]
    np.testing.assert_array_equal(back.t_start_s, [1.0, 0.0])
    np.testing.assert_array_equal(back.t_end_s, [2.5, 4.0])
    np.testing.assert_array_equal(back.scores, [0.9, 0.25])
    assert list(tmp_path.iterdir()) == [tmp_path / "p.json"]  # no temp file left behind


def test_actionformer_style_label_ids_and_scores(tmp_path):
    obj = {
        "database": {
            "v1": {"annotations": [{"segment": [1, 2], "label_id": 2, "scores": 0.5}]},
            "v2": [{"segment": ["3", "4.5"], "label": 0, "score": 0.75}],
        }
    }
    dets = load_predictions(_write(tmp_path / "p.json", obj), classes=CLASSES)
    assert row_names(dets)[1].tolist() == ["C", "A"]
    np.testing.assert_array_equal(dets.t_end_s, [2.0, 4.5])
    np.testing.assert_array_equal(dets.scores, [0.5, 0.75])


def test_csv_with_names_and_with_ids(tmp_path):
    (tmp_path / "n.csv").write_text("video-id,t-start,t-end,label,score\nv1,1,2,B,0.5\n")
    (tmp_path / "i.csv").write_text("video-id,t-start,t-end,label,score\n007,1,2,1,0.5\n")
    assert load_predictions(tmp_path / "n.csv").classes == ["B"]
    dets = load_predictions(tmp_path / "i.csv", classes=CLASSES)
    assert (dets.classes, dets.video_ids) == (["B"], ["007"])


def test_degenerate_segments_name_the_count_and_first_video(tmp_path):
    obj = {
        "results": {
            "ok": [{"segment": [0, 1], "label": "A", "score": 1}],
            "bad1": [{"segment": [2, 2], "label": "A", "score": 1}],
            "bad2": [{"segment": [3, 1], "label": "A", "score": 1}],
        }
    }
    path = _write(tmp_path / "p.json", obj)
    with pytest.raises(TalBenchError, match=r"2 predictions have end <= start .*'bad1'"):
        load_predictions(path)
    # zero length may be kept on request (the official sample file needs it); reversed never
    with pytest.raises(TalBenchError, match=r"1 predictions have end < start .*'bad2'"):
        load_predictions(path, keep_zero_length=True)


@pytest.mark.parametrize(
    ("content", "classes", "message"),
    [
        ('{"results": {"v": [', None, r"not valid JSON: .* at line 1 column 20"),
        ('{"version": 1}', None, r"has no 'results' object \(found: version\)"),
        ('{"results": {"v": [{"segment": [0, 1], "label_id": 1, "score": 1}]}}', None, "--gt"),
        ('{"results": {"v": [{"segment": [0, 1], "label_id": 7, "score": 1}]}}', CLASSES, "0..2"),
        ('{"results": {"v": [{"segment": [0], "label": "A", "score": 1}]}}', None, "segment"),
        ('{"results": {"v": [{"segment": [0, 1], "label": "A", "score": NaN}]}}', None, "non-fin"),
        ('{"results": {"v": [{"segment": [0, 1], "label": "A"}]}}', None, "expected a number"),
    ],
)
def test_bad_json_predictions_raise_one_line_errors(tmp_path, content, classes, message):
    (tmp_path / "p.json").write_text(content)
    with pytest.raises(TalBenchError, match=message) as err:
        load_predictions(tmp_path / "p.json", classes=classes)
    assert "\n" not in str(err.value)


def test_bad_csv_and_missing_file(tmp_path):
    (tmp_path / "p.csv").write_text("video,start,end,label,score\nv,0,1,A,1\n")
    with pytest.raises(TalBenchError, match="lacks column.*video-id, t-start, t-end"):
        load_predictions(tmp_path / "p.csv")
    with pytest.raises(TalBenchError, match="does not exist"):
        load_predictions(tmp_path / "nope.json")
