"""`talbench train` and `talbench ls` end to end (CliRunner, --json parsed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tal_bench.cli import app
from tal_bench.data import create_dataset
from tal_bench.evaluation import evaluate_detections, load_predictions, tiou_preset
from tal_bench.records import load_meta, load_rows

TINY = "synthetic-thumos14-tiny"
runner = CliRunner()


def _invoke(args: list[str]) -> dict | list:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_train_dummy_writes_a_consistent_record(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--model", "dummy", "--dataset", TINY, "--out", str(out), "--json"]
    summary = _invoke([*args, "--set", "train.epochs=2", "--threads", "1"])
    for key in ("average_mAP", "mAP", "train_time_s", "peak_mem_mib", "params", "classifier"):
        assert key in summary
    assert summary["classifier"] == "none (class-aware model)"
    assert summary["epochs"] == 2 and summary["fraction_pct"] == 100.0
    assert summary["map_avg_pct"] == summary["average_mAP"]
    assert list(summary["mAP"]) == ["0.30", "0.40", "0.50", "0.60", "0.70"]
    assert summary["average_mAP"] == pytest.approx(np.mean(list(summary["mAP"].values())))
    # dummy parameters: a 1x1 conv C -> K plus the width, C = 32 and K = 5 on the tiny set
    ds = create_dataset(TINY)
    dim, k = ds.feature_meta.input_dim, len(ds.classes)
    assert summary["params"] == dim * k + k + 1
    # the record: meta, 2 epoch rows + 1 result row, detections, checkpoint
    assert load_meta(out)["config"]["train"]["epochs"] == 2
    rows = load_rows(out)
    assert rows["kind"].tolist() == ["epoch", "epoch", "result"]
    # re-scoring detections.json independently gives the summary's mAP
    dets = load_predictions(out / "detections.json")
    again = evaluate_detections(ds.annotations, "test", dets, tiou_preset("thumos"))
    assert 100 * again.average_mAP == pytest.approx(summary["average_mAP"], abs=1e-9)
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["model_name"] == "dummy" and ckpt["epoch"] == 2
    assert ckpt["state_dict"]["score.weight"].shape == (k, dim, 1)


def test_train_etad_tiny_uses_the_internal_classifier(tmp_path):
    args = ["train", "--model", "etad", "--dataset", TINY, "--out", str(tmp_path / "e"), "--json"]
    summary = _invoke([*args, "--set", "train.epochs=1", "--threads", "1"])
    assert summary["classifier"] == "internal-mlp"
    assert 0.0 <= summary["average_mAP"] <= 100.0
    assert summary["num_detections"] > 0


def test_unknown_model_and_bad_override_are_one_line_errors(tmp_path):
    result = runner.invoke(app, ["train", "--model", "etda", "--dataset", TINY, "--json"])
    assert result.exit_code == 2
    assert "did you mean 'etad'" in result.output
    result = runner.invoke(app, ["train", "--model", "dummy", "--set", "train.epoch=2"])
    assert result.exit_code == 2
    assert "did you mean 'epochs'" in result.output


def test_ls_models_counts_parameters():
    rows = _invoke(["ls", "models", "--preset", "paper", "--input-dim", "2048", "--json"])
    by_name = {r["name"]: r for r in rows}
    assert {"dummy", "etad"} <= set(by_name)
    assert by_name["dummy"]["params"] == 2048 * 20 + 20 + 1  # conv weight + bias + width
    assert by_name["etad"]["class_agnostic"] is True
    result = runner.invoke(app, ["ls", "models", "dumy"])
    assert result.exit_code == 2 and "did you mean 'dummy'" in result.output


def test_ls_datasets_lists_the_synthetic_sets():
    names = [r["name"] for r in _invoke(["ls", "datasets", "--json"])]
    assert "synthetic-thumos14" in names and TINY in names
