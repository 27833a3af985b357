"""The embedded synthetic dataset: determinism, THUMOS-like statistics, cache, learnability."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from datahelpers import frame_labels, lda_probe

from tal_bench.config import DataConfig
from tal_bench.data import build_items, create_dataset
from tal_bench.data import synthetic as synth
from tal_bench.data.annotations import load_annotations, write_actionformer_json
from tal_bench.data.datasets import annotation_stats
from tal_bench.data.fractions import sample_fraction
from tal_bench.errors import TalBenchError
from tal_bench.types import Annotations

REAL_THUMOS = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "data"
    / "annotations"
    / "thumos14"
    / "actionformer"
    / "thumos14.json"
)
SMALL = synth.SynthParams(scale=0.15, num_classes=5, dim=32)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("TALBENCH_CACHE", str(root))
    return root


def test_same_params_give_identical_bytes(tmp_path: Path) -> None:
    synth.generate_dataset(tmp_path / "a", synth.TINY_PARAMS, "t")
    synth.generate_dataset(tmp_path / "b", synth.TINY_PARAMS, "t")
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert a == b and len(a) == 3 + 12 + 13  # json + meta + dataset.toml + 25 feature files
    synth.generate_dataset(
        tmp_path / "c", synth.SynthParams(**{**vars(synth.TINY_PARAMS), "seed": 1})
    )
    c = _digest(tmp_path / "c")
    assert c["features/video_validation_0000001.npy"] != a["features/video_validation_0000001.npy"]


def test_default_annotations_look_like_thumos() -> None:
    ann = synth.sample_annotations(synth.SynthParams())
    stats = annotation_stats(ann)
    val, test = stats["subsets"]["val"], stats["subsets"]["test"]
    assert (val["videos"], test["videos"]) == (200, 212)
    assert val["classes_present"] == test["classes_present"] == 20
    for row in (val, test):  # real THUMOS-14: 15.0 / 15.8 per video, 2.9 / 3.2 s, 72 / 69 %
        assert 10 <= row["instances_per_video_mean"] <= 22
        assert 5 <= row["instances_per_video_median"] <= 14
        assert 2.0 <= row["median_action_s"] <= 4.0
        assert 120 <= row["median_duration_s"] <= 220
        assert 0.65 <= row["background_fraction"] <= 0.82
    # long tail of durations (real: 9-1673 s)
    durs = np.array([v.duration_s for v in ann.videos.values()])
    assert durs.max() > 600 and durs.min() < 40
    # THUMOS has 10 training videos per class; the balanced assignment gives every class >= 10
    videos_with = [sum(c in v.labels for v in ann.subset("val")) for c in ann.classes]
    assert min(videos_with) >= 10


def test_duplicate_labels_pairs_and_overlaps() -> None:
    ann = synth.sample_annotations(synth.SynthParams())
    cliff = diving_dupes = overlaps = pairs = total = 0
    for rec in ann.videos.values():
        segs = [tuple(s) for s in rec.segments_s.tolist()]
        for seg, lab in zip(segs, rec.labels, strict=True):
            if lab == "CliffDiving":
                cliff += 1
                diving_dupes += any(
                    s == seg and x == "Diving" for s, x in zip(segs, rec.labels, strict=True)
                )
        for i in range(1, len(segs)):
            total += 1
            overlaps += segs[i][0] < segs[i - 1][1] and segs[i] != segs[i - 1]
            pairs += rec.labels[i - 1] == "CricketBowling" and rec.labels[i] == "CricketShot"
    assert cliff > 100 and diving_dupes == cliff  # every CliffDiving segment is also Diving
    assert 0.01 < overlaps / total < 0.08  # real THUMOS: 107 of 2807 neighbours (3.8 %)
    assert pairs > 50  # deliveries: bowling followed by the shot


def test_cache_generates_once_and_loads(cache: Path) -> None:
    ds = create_dataset("synthetic-thumos14-tiny")
    folder = cache / "datasets" / f"synthetic-thumos14-tiny-{synth.TINY_PARAMS.key()}"
    assert ds.store.path == folder / "features"
    stamp = (folder / "synth_meta.json").stat().st_mtime_ns
    again = create_dataset("synthetic-thumos14-tiny")
    assert (folder / "synth_meta.json").stat().st_mtime_ns == stamp  # not regenerated
    assert again.video_ids("val") == ds.video_ids("val") and len(ds.video_ids("val")) == 12
    assert ds.feature_meta.input_dim == 32 and ds.feature_meta.feat_stride == 4
    assert ds.classes == sorted(synth.CLASS_PRIORITY[:5])
    for vid in ds.video_ids("test"):
        rec = ds.annotations.videos[vid]
        feats = ds.load_features(vid)
        assert feats.dtype == np.float32 and feats.shape[1] == 32
        assert len(feats) == synth.SYNTH_META.num_features(rec.duration_s, 30.0)
    items = build_items(ds, DataConfig(mode="window"), "val", ds.video_ids("val"), train=True)
    assert len(items) > 0 and items[0]["feats"].shape == (32, 128)
    # another knob value is another cache folder
    create_dataset("synthetic-thumos14-tiny", noise=0.3)
    assert len(list((cache / "datasets").glob("synthetic-thumos14-tiny-*"))) == 2


def test_key_depends_on_every_param_and_version(monkeypatch: pytest.MonkeyPatch) -> None:
    base = synth.SynthParams()
    keys = {base.key()}
    for name, value in [("scale", 0.5), ("dim", 32), ("seed", 3), ("noise", 0.3)]:
        keys.add(synth.SynthParams(**{**vars(base), name: value}).key())
    assert len(keys) == 5
    from tal_bench.data import synth_params  # SynthParams lives there (no numpy: fast --help)

    monkeypatch.setattr(synth_params, "GENERATOR_VERSION", synth.GENERATOR_VERSION + 1)
    assert base.key() not in keys


def test_failed_generation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(ann: Annotations, params: synth.SynthParams, feat_dir: Path) -> int:
        (feat_dir / "partial.npy").write_bytes(b"x")
        raise RuntimeError("killed")

    monkeypatch.setattr(synth, "_write_features", boom)
    with pytest.raises(RuntimeError):
        synth.generate_dataset(tmp_path / "out", synth.TINY_PARAMS)
    assert list(tmp_path.iterdir()) == []


def test_stale_temp_folders_are_removed(cache: Path) -> None:
    stale = cache / "datasets" / ".tmp-synthetic-thumos14-tiny-dead"
    stale.mkdir(parents=True)
    old = time.time() - 7 * 3600
    os.utime(stale, (old, old))
    synth.ensure_synthetic(synth.TINY_PARAMS, "synthetic-thumos14-tiny")
    assert not stale.exists()


def test_losing_a_generation_race_keeps_the_winner(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # while this process renders, another one publishes the same folder first
    folder = cache / "datasets" / f"synthetic-thumos14-tiny-{synth.TINY_PARAMS.key()}"
    real_write = synth._write_features

    def racing(ann: Annotations, params: synth.SynthParams, feat_dir: Path) -> int:
        monkeypatch.setattr(synth, "_write_features", real_write)
        synth.generate_dataset(folder, params, "synthetic-thumos14-tiny")  # the winner
        return real_write(ann, params, feat_dir)

    monkeypatch.setattr(synth, "_write_features", racing)
    out = synth.ensure_synthetic(synth.TINY_PARAMS, "synthetic-thumos14-tiny")
    winner = _digest(folder)
    assert out == folder and winner == _digest(out)
    assert [p.name for p in (cache / "datasets").iterdir()] == [folder.name]  # no temp left


@pytest.mark.slow
def test_concurrent_generation_is_safe(cache: Path) -> None:
    code = (
        "from tal_bench.data import synthetic as s;"
        "print(s.ensure_synthetic(s.TINY_PARAMS, 'synthetic-thumos14-tiny'))"
    )
    env = {**os.environ, "TALBENCH_CACHE": str(cache)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0] and outs[0] == outs[1]
    assert sorted(x.name for x in (cache / "datasets").iterdir()) == [Path(outs[0]).name]
    assert synth.open_synthetic(outs[0], "t").validate("val")["videos"] == 12


def test_learnable_but_not_trivial(tmp_path: Path) -> None:
    # per-frame linear discriminant: far above chance, imperfect, better with more videos
    synth.generate_dataset(tmp_path / "d", SMALL)
    ds = synth.open_synthetic(tmp_path / "d", "small")

    def frames(ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        xs = [ds.load_features(v).astype(np.float64) for v in ids]
        recs = [ds.annotations.videos[v] for v in ids]
        ys = [frame_labels(r, ds.classes, len(x)) for r, x in zip(recs, xs, strict=True)]
        return np.concatenate(xs), np.concatenate(ys)

    test = frames(ds.video_ids("test"))
    few = sample_fraction(ds.annotations, "val", 20, 0, 0).video_ids  # 6 of 30 videos
    small = lda_probe(frames(few), test, 5)
    full = lda_probe(frames(ds.video_ids("val")), test, 5)
    assert full["majority"] + 0.08 < full["fg_vs_bg"] < 0.98
    assert 0.4 < full["fg_class_acc"] < 0.95  # chance: 0.2
    assert full["fg_class_acc"] > small["fg_class_acc"] + 0.04


def _small_ann_file(tmp_path: Path, source: Path, keep: int) -> Path:
    ann = load_annotations(source)
    ids = sorted(ann.videos)[:keep] + sorted(ann.videos)[-keep:]
    sub = Annotations({v: ann.videos[v] for v in ids}, ann.classes, "actionformer")
    write_actionformer_json(sub, tmp_path / "ann.json")
    return tmp_path / "ann.json"


@pytest.mark.skipif(not REAL_THUMOS.is_file(), reason=f"real annotations missing: {REAL_THUMOS}")
def test_synthesize_over_real_annotations(tmp_path: Path) -> None:
    path = _small_ann_file(tmp_path, REAL_THUMOS, keep=2)
    meta = synth.synthesize_features(path, tmp_path / "out", dim=16, seed=0)
    assert meta["params"]["dim"] == 16 and meta["feature_meta"]["input_dim"] == 16
    ds = synth.open_synthetic(tmp_path / "out", "over-real")
    src = load_annotations(path)
    assert set(ds.annotations.videos) == set(src.videos) and ds.classes == src.classes
    for vid, rec in src.videos.items():
        assert ds.num_features(vid) == synth.SYNTH_META.num_features(rec.duration_s, rec.fps)
        np.testing.assert_allclose(ds.annotations.videos[vid].segments_s, rec.segments_s)


def test_synthesize_over_a_file_without_fps(tmp_path: Path) -> None:
    doc = {
        "database": {
            "a": {"subset": "training", "duration": 20.0, "annotations": [
                {"segment": [2.0, 6.0], "label": "Run"}]},
            "b": {"subset": "validation", "duration": 12.5, "annotations": [
                {"segment": [1.0, 3.0], "label": "Jump"}]},
        }
    }  # fmt: skip
    (tmp_path / "anet.json").write_text(json.dumps(doc))
    synth.synthesize_features(tmp_path / "anet.json", tmp_path / "out", dim=8)
    ds = synth.open_synthetic(tmp_path / "out", "anet-like")
    assert ds.subsets() == ["train", "val"] and ds.feature_meta.input_dim == 8
    assert ds.num_features("a") == (600 - 16) // 4 + 1  # 30 fps when the file has none


def test_bad_generation_requests(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(TalBenchError, match="not empty"):
        synth.generate_dataset(tmp_path / "full", synth.TINY_PARAMS)
    (tmp_path / "file").write_text("")
    with pytest.raises(TalBenchError, match="cannot write to"):
        synth.generate_dataset(tmp_path / "file" / "sub" / "out", synth.TINY_PARAMS)
    with pytest.raises(TalBenchError, match="class_sep must be in"):
        synth.generate_dataset(tmp_path / "o", synth.SynthParams(class_sep=2.0))
    with pytest.raises(TalBenchError, match="unknown synthetic option"):
        synth.synthesize_features(REAL_THUMOS, tmp_path / "o", nosie=0.1)
    with pytest.raises(TalBenchError, match="no synth_meta.json"):
        synth.open_synthetic(tmp_path, "x")
    assert not (tmp_path / "o").exists()
