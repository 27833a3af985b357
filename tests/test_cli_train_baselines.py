"""`talbench train` end to end for TadTR and BMN on the tiny embedded dataset."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from tal_bench.cli import app
from tal_bench.data import create_dataset
from tal_bench.evaluation import evaluate_detections, load_predictions, tiou_preset

TINY = "synthetic-thumos14-tiny"
runner = CliRunner()


def _train(model: str, out) -> dict:
    args = ["train", "--model", model, "--dataset", TINY, "--out", str(out), "--json"]
    result = runner.invoke(app, [*args, "--set", "train.epochs=1", "--threads", "1"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_train_tadtr_tiny_is_class_aware_and_rescoreable(tmp_path):
    summary = _train("tadtr", tmp_path / "t")
    assert summary["classifier"] == "none (class-aware model)"
    assert summary["num_detections"] > 0 and 0.0 <= summary["average_mAP"] <= 100.0
    ds = create_dataset(TINY)
    dets = load_predictions(tmp_path / "t" / "detections.json")
    assert set(dets.classes) <= set(ds.classes) and (dets.label_idx >= 0).all()
    again = evaluate_detections(ds.annotations, "test", dets, tiou_preset("thumos"))
    assert 100 * again.average_mAP == summary["average_mAP"]
    ckpt = torch.load(tmp_path / "t" / "checkpoint.pt", weights_only=True)
    assert ckpt["model_name"] == "tadtr"


def test_train_bmn_tiny_uses_the_internal_classifier(tmp_path):
    summary = _train("bmn", tmp_path / "b")
    assert summary["classifier"] == "internal-mlp"
    assert summary["num_detections"] > 0 and 0.0 <= summary["average_mAP"] <= 100.0
    ckpt = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert "sample_mask" not in ckpt["state_dict"]  # rebuilt from the config, not stored


def test_bmn_with_a_window_other_than_tscale_is_one_clear_error(tmp_path):
    args = ["train", "--model", "bmn", "--dataset", TINY, "--out", str(tmp_path / "x")]
    result = runner.invoke(app, [*args, "--set", "data.window=32", "--threads", "1"])
    assert result.exit_code == 2
    assert "data.window = model.tscale" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x").exists()  # refused before anything is written
