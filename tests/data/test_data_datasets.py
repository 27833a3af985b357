"""Registered datasets, real-format roots, one-line errors for bad input, the datasets CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from datahelpers import coded_features, make_annotations
from typer.testing import CliRunner

from tal_bench.cli import app
from tal_bench.config import DataConfig
from tal_bench.data import (
    DatasetProtocol,
    build_items,
    create_dataset,
    dataset_info,
    describe_datasets,
)
from tal_bench.data import synthetic as synth
from tal_bench.data.annotations import write_actionformer_json
from tal_bench.errors import TalBenchError
from tal_bench.registry import DATASETS

SPECS = [
    ("vid_a", "val", 40, 40.0, [(2.0, 5.0, "A")]),
    ("vid_b", "val", 30, 30.0, [(1.0, 4.0, "B")]),
    ("vid_c", "val", 30, 30.0, [(3.0, 9.0, "C")]),
    ("vid_d", "val", 30, 30.0, [(1.0, 2.0, "A")]),
    ("vid_t", "test", 20, 20.0, [(1.0, 2.0, "C")]),
]


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_missing_feature_files_are_counted(make_ds) -> None:
    ds = make_ds(SPECS)
    for vid in ("vid_b", "vid_c", "vid_d"):
        (ds.store.path / f"{vid}.npy").unlink()
    with pytest.raises(TalBenchError) as err:
        ds.validate("val")
    assert "3 of 4 videos have no feature file" in _one_line(err)
    assert "first: vid_b, vid_c, vid_d" in str(err.value)
    with pytest.raises(TalBenchError, match="3 of 4 videos"):
        build_items(ds, DataConfig(mode="window"), "val", ds.video_ids("val"), train=True)
    assert ds.validate("test")["videos"] == 1  # the other subset is complete


def test_feature_dimension_mismatch(make_ds) -> None:
    ds = make_ds(SPECS)
    np.save(ds.store.path / "vid_c.npy", coded_features(30, dim=5))
    with pytest.raises(TalBenchError) as err:
        ds.validate("val")
    assert "feature dimension mismatch" in _one_line(err) and "3 (vid_a), 5 (vid_c)" in str(
        err.value
    )


def test_nan_features_fail_when_an_item_is_loaded(make_ds) -> None:
    ds = make_ds(SPECS)
    bad = coded_features(40)
    bad[3, 0] = np.inf
    np.save(ds.store.path / "vid_a.npy", bad)
    items = build_items(
        ds, DataConfig(mode="window", window=16, window_stride=8), "val", ["vid_a"], train=False
    )
    with pytest.raises(TalBenchError, match=r"vid_a.*1 NaN/inf") as err:
        items[0]
    _one_line(err)


def test_unknown_and_empty_subsets(make_ds) -> None:
    ds = make_ds(SPECS)
    assert ds.video_ids("Validation") == ["vid_a", "vid_b", "vid_c", "vid_d"]  # raw name works
    with pytest.raises(TalBenchError) as err:
        ds.video_ids("training")
    assert _one_line(err) == "unknown subset 'training' in dataset 'hand'; available: test, val"
    with pytest.raises(TalBenchError, match="no videos to build"):
        build_items(ds, DataConfig(mode="window"), "val", [], train=True)


def test_unknown_dataset_suggests_names() -> None:
    with pytest.raises(TalBenchError) as err:
        create_dataset("thumos15")
    assert "did you mean 'thumos14'" in _one_line(err)
    with pytest.raises(TalBenchError, match="needs its folder: set data.root=DIR"):
        create_dataset("thumos14")


def _real_root(root: Path, ann_rel: str, feat_dir: str, prefix: str = "") -> None:
    ann = make_annotations(SPECS)
    for rec in ann.videos.values():
        rec.fps = 30.0
    write_actionformer_json(ann, root / ann_rel)
    (root / feat_dir).mkdir(parents=True)
    for vid, _sub, num, _dur, _gts in SPECS:
        np.save(root / feat_dir / f"{prefix}{vid}.npy", coded_features(num, dim=6))


def test_thumos14_actionformer_layout(tmp_path: Path) -> None:
    _real_root(tmp_path, "annotations/thumos14.json", "i3d_features")
    ds = create_dataset("thumos14", str(tmp_path))
    assert ds.feature_meta.input_dim == 6 and ds.feature_meta.offset_frames == 8.0
    assert ds.protocol == DatasetProtocol("val", "test", "thumos", "native")
    assert ds.classes == ["A", "B", "C"]
    assert ds.validate("val") == {
        "subset": "val",
        "videos": 4,
        "feature_steps": 130,
        "input_dim": 6,
    }
    item = build_items(ds, DataConfig(mode="window"), "test", ["vid_t"], train=False)[0]
    assert item["t0_s"] == pytest.approx(8 / 30) and item["step_s"] == pytest.approx(4 / 30)
    with pytest.raises(TalBenchError, match=r"unknown option\(s\) window_size"):
        create_dataset("thumos14", str(tmp_path), window_size=3)
    with pytest.raises(TalBenchError, match="is not a folder"):
        create_dataset("thumos14", str(tmp_path / "nope"))


def test_anet13_layout_with_prefix_and_resize(tmp_path: Path) -> None:
    _real_root(tmp_path, "annotations/anet1.3_tsp_filtered.json", "tsp_features", prefix="v_")
    ds = create_dataset("anet13", str(tmp_path))
    assert ds.protocol == DatasetProtocol("train", "val", "anet", "resize")
    assert ds.feature_meta.feat_stride == 16
    items = build_items(ds, DataConfig(mode="resize", resize_len=16), "val", ["vid_a"], True)
    assert items[0]["feats"].shape == (6, 16) and items[0]["step_s"] == pytest.approx(40 / 16)
    # a missing annotation file says which path it looked for
    (tmp_path / "annotations" / "anet1.3_tsp_filtered.json").unlink()
    with pytest.raises(TalBenchError, match="anet1.3_tsp_filtered.json does not exist"):
        create_dataset("anet13", str(tmp_path))


def test_registry_description_rows() -> None:
    names = DATASETS.names()
    assert names == sorted(names)
    assert {"synthetic-thumos14", "synthetic-thumos14-tiny", "thumos14", "anet13"} <= set(names)
    rows = {r["name"]: r for r in describe_datasets()}
    assert set(rows["thumos14"]) == {"name", "description", "protocol", "input_dim",
                                     "needs_root"}  # fmt: skip
    assert rows["thumos14"]["needs_root"] and not rows["synthetic-thumos14"]["needs_root"]
    assert rows["synthetic-thumos14"]["input_dim"] == synth.SynthParams().dim
    assert rows["synthetic-thumos14-tiny"]["input_dim"] == synth.TINY_PARAMS.dim
    assert rows["anet13"]["protocol"]["items"] == "resize"
    assert rows["synthetic-thumos14"]["protocol"] == {
        "train_subset": "val",
        "test_subset": "test",
        "tiou": "thumos",
        "items": "native",
    }


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TALBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_synthetic_options_and_roots(cache: Path, tmp_path: Path) -> None:
    with pytest.raises(TalBenchError, match=r"unknown option\(s\) noize"):
        create_dataset("synthetic-thumos14-tiny", noize=0.1)
    out = tmp_path / "explicit"
    synth.generate_dataset(out, dataclasses.replace(synth.TINY_PARAMS, dim=8))
    assert create_dataset("synthetic-thumos14-tiny", str(out)).feature_meta.input_dim == 8
    with pytest.raises(TalBenchError, match="only apply when"):
        create_dataset("synthetic-thumos14-tiny", str(out), dim=16)


def test_dataset_info(cache: Path) -> None:
    info = dataset_info("synthetic-thumos14-tiny")
    assert info["feature_meta"]["input_dim"] == 32 and len(info["classes"]) == 5
    ds = create_dataset("synthetic-thumos14-tiny")
    for sub in ("val", "test"):
        row = info["subsets"][sub]
        assert row["videos"] == len(ds.video_ids(sub))
        assert row["feature_steps"] == sum(ds.num_features(v) for v in ds.video_ids(sub))
        assert row["instances"] == sum(
            len(ds.annotations.videos[v].labels) for v in ds.video_ids(sub)
        )
        assert 0.5 < row["background_fraction"] < 0.9


runner = CliRunner()


def test_cli_synth_and_info(cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli-out"
    args = ["datasets", "synth", "--out", str(out), "--scale", "0.03", "--num-classes", "3"]
    result = runner.invoke(app, [*args, "--dim", "8", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["params"]["dim"] == 8 and summary["stats"]["classes"] == 3
    assert (out / "synth_meta.json").is_file() and (out / "annotations" / "thumos14.json").is_file()
    # the same folder again: one red line, exit 2, nothing touched
    again = runner.invoke(app, [*args, "--json"])
    assert again.exit_code == 2 and "already exists and is not empty" in again.stderr
    assert again.stdout == ""
    (tmp_path / "a-file").write_text("")
    bad = runner.invoke(app, ["datasets", "synth", "--out", str(tmp_path / "a-file" / "x")])
    assert bad.exit_code == 2 and "cannot write to" in bad.stderr
    info = runner.invoke(app, ["datasets", "info", "synthetic-thumos14-tiny", "--json"])
    assert info.exit_code == 0, info.output
    assert json.loads(info.stdout)["subsets"]["val"]["videos"] == 12
    unknown = runner.invoke(app, ["datasets", "info", "synthetic-thumos"])
    assert unknown.exit_code == 2 and "did you mean" in unknown.stderr
