"""``talbench evaluate`` end to end with CliRunner: JSON summary, human table, one-line errors."""

from __future__ import annotations

import json
import re

import pytest
from evalhelpers import hand_example
from typer.testing import CliRunner

from tal_bench.cli import app
from tal_bench.data.annotations import write_actionformer_json
from tal_bench.evaluation import write_predictions_json

runner = CliRunner()


@pytest.fixture
def files(tmp_path):
    """The hand-checked example as an ActionFormer-style GT file and a results JSON."""
    gt, dets = hand_example()
    write_actionformer_json(gt, tmp_path / "gt.json")
    write_predictions_json(dets, tmp_path / "pred.json")
    return tmp_path / "gt.json", tmp_path / "pred.json"


def _run(*args):
    return runner.invoke(app, ["evaluate", *map(str, args)])


def test_json_summary_of_the_hand_example(files):
    gt, pred = files
    result = _run("--gt", gt, "--pred", pred, "--subset", "validation", "--tiou", "anet", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert list(out["mAP"]) == ["0.5", "0.55", "0.6", "0.65", "0.7", "0.75", "0.8", "0.85",
                                "0.9", "0.95"]  # fmt: skip
    assert out["mAP"]["0.5"] == pytest.approx(0.55, abs=1e-12)
    assert out["mAP"]["0.9"] == pytest.approx(1 / 3, abs=1e-12)
    assert out["average_mAP"] == pytest.approx(0.405, abs=1e-12)
    assert (out["num_gt"], out["num_pred"], out["num_dropped_pred"]) == (5, 9, 1)
    assert out["subset"] == "validation" and out["classes"] == ["A", "B"]
    assert "average" in result.stderr and "40.50" in result.stderr  # human table on stderr


def test_normalised_subset_custom_thresholds_and_per_class(files):
    gt, pred = files
    result = _run("--gt", gt, "--pred", pred, "--subset", "val", "--tiou", "0.5", "--per-class",
                  "--json")  # fmt: skip
    out = json.loads(result.stdout)
    assert out["subset_match"] == "normalized" and out["average_mAP"] == pytest.approx(0.55)
    assert out["ap_per_class"] == {"A": [pytest.approx(0.6)], "B": [pytest.approx(0.5)]}
    assert "AP % per class" in result.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gt": "missing.json"}, "annotation file .*missing.json does not exist"),
        ({"pred": "missing.json"}, "prediction file .*missing.json does not exist"),
        ({"tiou": "0.3,abc"}, "bad tIoU spec '0.3,abc'"),
        ({"tiou": "1.5"}, r"must lie in \(0, 1\]"),
        ({"subset": "testing"}, "subset 'testing' is not in .*available: 'training' \\(train\\)"),
        ({"pred_text": '{"results": {"v1": [{"segment": [3, 3], "label": "A", "score": 1}]}}'},
         "1 predictions have end <= start \\(first in video 'v1'\\)"),
        ({"pred_text": "{\n  oops"}, "not valid JSON: .* line 2 column 3"),
        ({"gt_text": '{"videos": {}}'}, "has no 'database' key"),
    ],
)  # fmt: skip
def test_bad_inputs_exit_2_with_one_line(files, tmp_path, change, message):
    gt, pred = files
    if "pred_text" in change:
        (pred := tmp_path / "bad_pred.json").write_text(change["pred_text"])
    if "gt_text" in change:
        (gt := tmp_path / "bad_gt.json").write_text(change["gt_text"])
    args = {"gt": gt, "pred": pred, "subset": "validation", "tiou": "anet"}
    args.update({k: tmp_path / v if k in ("gt", "pred") else v for k, v in change.items()
                 if k in args})  # fmt: skip
    result = _run(*[x for k, v in args.items() for x in (f"--{k}", v)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(message, lines[0]), lines[0]
    assert result.stdout == ""
