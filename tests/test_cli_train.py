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


# (id, subset, duration_s, [(start_s, end_s, label)]): every action a quarter of its video, so
# the dummy detector's one learned width fits them all after resizing (32 of 128 steps).
# "long" would be 36 windows of 128 features in window mode; resized it is one item.
ANET_VIDEOS = [
    ("tr1", "training", 40.0, [(5.0, 15.0, "Run"), (25.0, 35.0, "Jump")]),
    ("tr2", "training", 60.0, [(10.0, 25.0, "Jump")]),
    ("tr3", "training", 32.0, [(2.0, 10.0, "Run"), (20.0, 28.0, "Run")]),
    ("long", "training", 4800.0, [(100.0, 1300.0, "Run"), (2000.0, 3200.0, "Jump")]),
    ("va1", "validation", 48.0, [(5.0, 17.0, "Run")]),
    ("va2", "validation", 44.0, [(20.0, 31.0, "Jump")]),
    ("te1", "testing", 30.0, []),
]


def _anet_root(root) -> None:
    """ActionFormer's ActivityNet-1.3 layout: official-format JSON + v_<id>.npy (T, C)."""
    rng = np.random.default_rng(0)
    database = {}
    (root / "tsp_features").mkdir(parents=True)
    for vid, subset, duration, gts in ANET_VIDEOS:
        anns = [{"segment": [s, e], "label": lab} for s, e, lab in gts]
        database[vid] = {"subset": subset, "duration": duration, "annotations": anns}
        num = (int(duration * 15) - 16) // 16 + 1  # 16-frame clips every 16 frames at 15 fps
        centres_s = (np.arange(num) * 16 + 8) / 15
        feats = rng.normal(0.0, 0.1, size=(num, 8)).astype(np.float32)
        for s, e, lab in gts:  # a class channel that is on inside its actions
            feats[(centres_s >= s) & (centres_s <= e), ["Run", "Jump"].index(lab)] += 1.0
        np.save(root / "tsp_features" / f"v_{vid}.npy", feats)
    taxonomy = [{"nodeName": "Run"}, {"nodeName": "Jump"}]
    data = {"version": "VERSION 1.3", "taxonomy": taxonomy, "database": database}
    (root / "annotations").mkdir()
    (root / "annotations" / "anet1.3_tsp_filtered.json").write_text(json.dumps(data))


def test_anet13_trains_resized_on_training_and_scores_at_anet_thresholds(tmp_path):
    root, out = tmp_path / "anet", tmp_path / "run"
    _anet_root(root)
    args = ["train", "--model", "dummy", "--dataset", "anet13", "--out", str(out), "--json"]
    # no data.* / eval.* settings: only where the data is, and the dummy's width (32 steps)
    sets = ["--set", f"data.root={root}", "--set", "model.init_width=32", "--threads", "1"]
    summary = _invoke([*args, *sets])
    # the dataset's protocol, resolved and recorded: resized videos, training -> validation,
    # tIoU 0.50:0.05:0.95; one item per video so no window merge after the detector
    config = load_meta(out)["config"]
    assert config["data"]["mode"] == "resize"
    assert (config["data"]["train_subset"], config["data"]["test_subset"]) == ("train", "val")
    assert config["eval"]["tiou"] == "anet"
    assert (config["eval"]["window_merge"], config["eval"]["merge_params"]) == ("none", {})
    assert summary["num_train_videos"] == 4 and summary["num_train_items"] == 4
    assert summary["num_test_videos"] == 2
    thresholds = [f"{0.5 + 0.05 * i:.2f}" for i in range(10)]
    assert list(summary["mAP"]) == thresholds
    assert all(f"map_pct_at_{t}" in summary for t in thresholds)
    assert summary["average_mAP"] == pytest.approx(np.mean(list(summary["mAP"].values())))
    assert summary["average_mAP"] > 0
    ds = create_dataset("anet13", str(root))
    dets = load_predictions(out / "detections.json")
    assert set(dets.video_ids) <= {"va1", "va2"}
    again = evaluate_detections(ds.annotations, "val", dets, np.linspace(0.5, 0.95, 10))
    assert 100 * again.average_mAP == pytest.approx(summary["average_mAP"], abs=1e-9)
