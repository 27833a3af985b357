"""Folder datasets (``--dataset DIR``), their dataset.toml and protocol, the segment rules and
the feature scan (``tal_bench.data.folder``, ``tal_bench.data.checks``)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from datahelpers import FOLDER_VIDEOS, make_annotations, write_folder
from typer.testing import CliRunner

from tal_bench.cli import app
from tal_bench.data import create_dataset, dataset_protocol
from tal_bench.data.checks import check_folder, check_segments, scan_features
from tal_bench.errors import TalBenchError

runner = CliRunner()


def test_folder_opens_with_its_toml(tmp_path):
    ds = create_dataset(str(write_folder(tmp_path / "ds", dim=5)))
    assert ds.feature_meta.input_dim == 5  # any width: read from the files
    assert (ds.feature_meta.fps, ds.feature_meta.feat_stride, ds.feature_meta.clip_len) == (
        8.0,
        1,
        1,
    )
    assert ds.feature_meta.offset_frames == 0.5  # clip_len / 2
    assert ds.video_ids("val") == ["v0", "v1", "v2", "v3"]
    assert ds.classes == ["A", "B"]
    assert ds.load_features("t1").shape == (48, 5)


def test_protocol_is_inferred_from_the_subsets(tmp_path):
    folder = write_folder(tmp_path / "thumos_like")
    proto = dataset_protocol(str(folder))
    # Validation + Test, as THUMOS: train on val, test on test, native items, THUMOS tIoU
    assert (proto.train_subset, proto.test_subset, proto.items, proto.tiou) == (
        "val",
        "test",
        "native",
        "thumos",
    )
    # ActivityNet-like: training / validation / testing without instances
    videos = [
        ("a", "training", 48, 6.0, [(1.0, 2.0, "A")]),
        ("b", "validation", 48, 6.0, [(1.0, 2.0, "B")]),
        ("c", "testing", 48, 6.0, []),
    ]
    anet = write_folder(tmp_path / "anet_like", videos, toml=_geometry('items = "resize"\n'))
    proto = dataset_protocol(str(anet))
    assert (proto.train_subset, proto.test_subset, proto.items, proto.tiou) == (
        "train",
        "val",
        "resize",
        "anet",
    )


def _geometry(extra: str = "") -> str:
    return 'fps = 8.0\nfeat_stride = 1\nclip_len = 1\nfeatures = "feats"\n' + extra


def test_toml_subsets_and_tiou_win(tmp_path):
    toml = _geometry('train_subset = "Test"\ntest_subset = "validation"\ntiou = "0.5,0.7"\n')
    proto = dataset_protocol(str(write_folder(tmp_path / "ds", toml=toml)))
    assert (proto.train_subset, proto.test_subset, proto.tiou) == ("test", "val", "0.5,0.7")


def test_one_subset_needs_the_toml_to_say_which(tmp_path):
    videos = [(f"v{i}", "Validation", 48, 6.0, [(1.0, 2.0, "A")]) for i in range(2)]
    folder = write_folder(tmp_path / "ds", videos)
    with pytest.raises(TalBenchError, match="set test_subset in dataset.toml"):
        dataset_protocol(str(folder))


def test_geometry_from_options_wins_and_is_required(tmp_path):
    folder = write_folder(tmp_path / "ds", toml='features = "feats"\n')
    with pytest.raises(TalBenchError, match="fps, feat_stride, clip_len"):
        create_dataset(str(folder))
    ds = create_dataset(str(folder), fps=25.0, feat_stride=8, clip_len=16)
    assert ds.feature_meta.step_s() == pytest.approx(8 / 25.0)
    assert ds.feature_meta.offset_frames == 8.0


def test_files_are_found_without_a_toml_when_unambiguous(tmp_path):
    folder = write_folder(tmp_path / "ds", toml=None)
    ds = create_dataset(str(folder), fps=8.0, feat_stride=1, clip_len=1)
    assert ds.store.path == folder / "feats"
    (folder / "more_feats").mkdir()
    np.save(folder / "more_feats" / "v0.npy", np.zeros((3, 2), np.float32))
    with pytest.raises(TalBenchError, match="several feature folders"):
        create_dataset(str(folder), fps=8.0, feat_stride=1, clip_len=1)


def test_synth_writes_a_folder_that_dataset_dir_reads(tmp_path):
    out = tmp_path / "synth"
    argv = ["datasets", "synth", "--out", str(out), "--scale", "0.06", "--dim", "16"]
    result = runner.invoke(app, [*argv, "--num-classes", "3", "--json"])
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    ds = create_dataset(str(out))
    assert ds.feature_meta.input_dim == 16
    assert (ds.feature_meta.fps, ds.feature_meta.feat_stride, ds.feature_meta.clip_len) == (
        30.0,
        4,
        16,
    )
    # the same videos, the same files as the synthetic loader opens
    synth = create_dataset("synthetic-thumos14", root=str(out))
    assert ds.video_ids("val") == synth.video_ids("val")
    assert written["stats"]["subsets"]["val"]["videos"] == len(ds.video_ids("val"))
    first = ds.video_ids("test")[0]
    np.testing.assert_array_equal(ds.load_features(first), synth.load_features(first))
    assert dataset_protocol(str(out)) == synth.protocol


def test_check_segments_counts_what_it_keeps():
    specs = [
        ("a", "val", 10, 10.0, [(1.0, 1.0, "A"), (9.0, 11.0, "B"), (-1.0, 2.0, "A")]),
        ("b", "val", 10, 10.0, [(12.0, 13.0, "A"), (2.0, 4.0, "B")]),
    ]
    notes = check_segments(make_annotations(specs), "f.json")
    assert notes == [
        "f.json: 1 zero-length segments (end = start) are kept",
        "f.json: 2 segments reach past their video's start or end; training clips them to "
        "the video, evaluation scores them as written",
        "f.json: 1 segments lie wholly outside their video (first in 'b'; a duration in the "
        "file is too short?); training cannot use them, evaluation scores them as written",
    ]


def test_check_segments_refuses_reversed_and_mostly_outside():
    reversed_ = [("a", "val", 10, 10.0, [(1.0, 2.0, "A"), (5.0, 4.0, "B")])]
    with pytest.raises(TalBenchError, match=r"'a' annotation 1 ends before it starts \(5 s"):
        check_segments(make_annotations(reversed_), "f.json")
    frames = [("a", "val", 10, 10.0, [(30.0, 60.0, "A"), (90.0, 120.0, "B"), (1.0, 2.0, "A")])]
    with pytest.raises(TalBenchError, match="2 of 3 segments lie outside"):
        check_segments(make_annotations(frames), "f.json")


def test_scan_features_collects_every_problem(tmp_path):
    folder = write_folder(tmp_path / "ds")
    (folder / "feats" / "v1.npy").write_bytes(b"garbage")
    np.save(folder / "feats" / "t0.npy", np.zeros((48, 3), np.float32))
    arr = np.load(folder / "feats" / "t2.npy")
    arr[0, 0] = np.inf
    np.save(folder / "feats" / "t2.npy", arr)
    (folder / "feats" / "v3.npy").unlink()
    ds = create_dataset(str(folder))
    scan = scan_features(ds, sorted(ds.annotations.videos), keep_going=True)
    kinds = ["have no feature file", "cannot read feature file", "widths differ", "NaN/inf"]
    assert len(scan.problems) == 4
    assert all(any(k in p for p in scan.problems) for k in kinds), scan.problems
    assert scan.videos == 4  # v0, v2, t0, t1 pass the value scan (t0's width is the odd one)
    with pytest.raises(TalBenchError, match="have no feature file"):
        scan_features(ds, sorted(ds.annotations.videos))  # the first problem


def test_check_folder_reports_statistics(tmp_path):
    folder = write_folder(tmp_path / "ds")
    report = check_folder(folder)
    assert report["problems"] == [] and report["notes"] == []
    # FOLDER_VIDEOS: 4 val videos with 2 instances, 3 test videos with 2, 48 steps each
    assert report["subsets"]["val"]["videos"] == 4 and report["subsets"]["val"]["instances"] == 8
    assert report["subsets"]["test"]["instances"] == 6
    assert report["features"]["feature_steps"] == 48 * len(FOLDER_VIDEOS)
    assert report["features"]["input_dim"] == 8
    # 48 features of a 6 s video at 8 fps, stride 1: the geometry fits, no note; at stride 2
    # the files hold twice what the durations give
    report = check_folder(folder, feat_stride=2)
    assert any("2.00x the features" in n for n in report["notes"]), report["notes"]


def test_datasets_check_cli(tmp_path):
    folder = write_folder(tmp_path / "ds")
    result = runner.invoke(app, ["datasets", "check", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["features"]["videos"] == len(FOLDER_VIDEOS)
    shutil.rmtree(folder / "feats")
    result = runner.invoke(app, ["datasets", "check", str(folder)])
    assert result.exit_code == 2 and "error:" in result.output


def test_train_on_a_folder_end_to_end(tmp_path):
    folder = write_folder(tmp_path / "ds")
    out = tmp_path / "run"
    argv = ["train", "--model", "dummy", "--dataset", str(folder), "--out", str(out), "--json"]
    result = runner.invoke(app, [*argv, "--set", "train.epochs=1", "--threads", "1"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["num_train_videos"] == 4 and summary["num_test_videos"] == 3
    meta = json.loads((out / "meta.json").read_text())
    assert meta["config"]["data"]["dataset"] == str(folder.resolve())
    assert meta["config"]["data"]["train_subset"] == "val"


def test_data_scaling_on_a_folder(tmp_path):
    folder = write_folder(tmp_path / "ds")
    out = tmp_path / "grid"
    argv = ["data-scaling", "--model", "dummy", "--dataset", str(folder), "--fractions", "50,100"]
    argv += ["--slices", "1", "--executor", "inline", "--out", str(out), "--json"]
    result = runner.invoke(app, [*argv, "--set", "train.epochs=1"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["ok"] == 2
    # 50 % of the 4 training videos is 2 (the study's round(p * N)), 100 % all 4
    videos = {g["fraction_pct"]: g["num_train_videos_mean"] for g in summary["groups"]}
    assert videos == {50.0: 2.0, 100.0: 4.0}
