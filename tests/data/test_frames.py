"""Frames datasets: rendering (deterministic, the features' own signal), frame folders, video
files (PyAV, skipped without it), frames items and the errors of unsupported combinations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tal_bench.config import DataConfig
from tal_bench.data import build_items, create_dataset
from tal_bench.data.features import FeatureMeta
from tal_bench.data.frames import FrameFolderSource, VideoFileSource, snippet_frames
from tal_bench.data.synth_frames import ClipSpec, make_textures, render_clips
from tal_bench.errors import TalBenchError

TINY = "synthetic-thumos14-frames-tiny"


@pytest.fixture(scope="module")
def frames_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def _open(cache: Path, monkeypatch: pytest.MonkeyPatch, **options):
    monkeypatch.setenv("TALBENCH_CACHE", str(cache))
    return create_dataset(TINY, **options)


def test_rendering_is_deterministic_and_cached(
    frames_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = _open(frames_cache, monkeypatch)
    again = _open(tmp_path / "other-cache", monkeypatch)  # rendered from scratch elsewhere
    vids = ds.video_ids("val")
    assert vids == again.video_ids("val") and len(vids) == 12
    for vid in vids[:3]:
        n = ds.num_features(vid)
        clips = ds.load_feature_range(vid, 0, n)
        assert clips.shape == (n, 3, 4, 16, 16) and clips.dtype == np.uint8
        assert np.array_equal(clips, again.load_feature_range(vid, 0, n))
    # one 1.07 s snippet per 32 frames: a video of d seconds has (30 d - 32) // 32 + 1
    rec = ds.annotations.videos[vids[0]]
    assert ds.num_features(vids[0]) == (round(rec.duration_s * 30) - 32) // 32 + 1
    # the classifier's features are the plain tiny dataset's, bit for bit
    plain = create_dataset("synthetic-thumos14-tiny")
    assert np.array_equal(ds.load_features(vids[0]), plain.load_features(vids[0]))
    mtime = (ds.clips.path / f"{vids[0]}.npy").stat().st_mtime_ns
    _open(frames_cache, monkeypatch)  # reopening reuses the cache
    assert (ds.clips.path / f"{vids[0]}.npy").stat().st_mtime_ns == mtime


def test_a_latent_channel_draws_its_texture() -> None:
    spec, meta = ClipSpec(frames=2, height=8, width=8), FeatureMeta(30.0, 4, 16, 8.0, 3)
    textures = make_textures(3, spec, np.random.default_rng(0))
    snippets = FeatureMeta(30.0, 8, 8, 4.0, 0)
    zero = np.zeros((10, 3), dtype=np.float32)
    one = zero.copy()
    one[:, 1] = -0.3  # channel 1, negative part: texture 2 * 1 + 1
    base, lit = (
        render_clips(z, meta, snippets, 2, spec, textures, 0.0, np.random.default_rng(7)).astype(
            float
        )
        for z in (zero, one)
    )  # same generator: same pixel noise
    gain = 0.16 / (np.sqrt(3) * 0.29)
    expected = 255 * gain * 0.3 * textures[3]  # (3, H, W), for every frame
    for s in range(2):
        for f in range(2):
            diff = lit[s, :, f] - base[s, :, f]
            assert np.abs(diff - expected).max() <= 1.0 + 1e-9  # one uint8 rounding each


def _write_frames(folder: Path, count: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    for k in range(count):
        color = (k, 2 * k, 255 - k)
        Image.new("RGB", (20, 12), color).save(folder / f"img_{k:05d}.png")


def test_frame_folder_clips_pick_the_right_frames(tmp_path: Path) -> None:
    _write_frames(tmp_path / "vid", 40)
    meta, spec = FeatureMeta(30.0, 8, 8, 4.0, 0), ClipSpec(frames=2, height=6, width=10)
    source = FrameFolderSource(tmp_path, meta, spec)
    assert source.has("vid") and not source.has("nope")
    assert source.num_snippets("vid") == (40 - 8) // 8 + 1 == 5
    clips = source.load("vid", 1, 5, 2)  # snippets 1 and 3
    assert clips.shape == (2, 3, 2, 6, 10)
    # snippet i, frame j: frame 8 i + floor((j + 0.5) * 8 / 2) = 8 i + 2 + 4 j
    for row, snippet in enumerate((1, 3)):
        for j in range(2):
            k = 8 * snippet + 2 + 4 * j
            assert clips[row, :, j].reshape(3, -1).tolist() == [[k] * 60, [2 * k] * 60,
                                                                 [255 - k] * 60]  # fmt: skip
    assert snippet_frames(meta, spec, 4, 6, 1, 40).tolist() == [[34, 38], [39, 39]]  # clamped


def test_video_file_clips_decode_with_pyav(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    path = tmp_path / "videos" / "vid.mkv"
    path.parent.mkdir()
    levels = [int(v) for v in np.linspace(10, 240, 48)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=30)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv444p"
        for level in levels:  # grey frames getting brighter: frame k is recognisable
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), level, np.uint8), "rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    meta, spec = FeatureMeta(30.0, 8, 8, 4.0, 0), ClipSpec(frames=2, height=8, width=8)
    source = VideoFileSource(tmp_path / "videos", meta, spec)
    assert source.num_snippets("vid") == (48 - 8) // 8 + 1 == 6
    clips = source.load("vid", 2, 5)  # snippets 2, 3, 4 (seeking past the first keyframe)
    for row, snippet in enumerate((2, 3, 4)):
        for j in range(2):
            k = 8 * snippet + 2 + 4 * j
            assert abs(float(clips[row, :, j].mean()) - levels[k]) <= 3.0


def test_frames_items_pad_and_resize_is_refused(
    frames_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = _open(frames_cache, monkeypatch)
    vid = min(ds.video_ids("test"), key=ds.num_features)
    n = ds.num_features(vid)
    cfg = DataConfig(dataset=TINY, mode="window", window=n + 5, window_stride=n + 5)
    item = build_items(ds, cfg, "test", [vid], train=False)[0]
    assert item["frames"].shape == (n + 5, 3, 4, 16, 16) and item["feats"].shape == (0, n + 5)
    assert torch.all(item["frames"][n:] == 0) and item["mask"].sum() == n
    assert torch.equal(item["frames"][:n], torch.from_numpy(ds.load_feature_range(vid, 0, n)))
    with pytest.raises(TalBenchError, match="not resize"):
        build_items(ds, DataConfig(dataset=TINY, mode="resize"), "test", [vid], train=False)


def test_a_frames_dataset_needs_a_video_encoder(
    frames_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tal_bench.pipelines.resolve import resolve_run_config
    from tal_bench.pipelines.train import train_and_evaluate

    monkeypatch.setenv("TALBENCH_CACHE", str(frames_cache))
    cfg = resolve_run_config("dummy", "cpu", [f"data.dataset={TINY}"])
    with pytest.raises(TalBenchError, match="needs a video encoder"):
        train_and_evaluate(cfg, progress=False)


def test_real_frames_root_opens_as_a_dataset(tmp_path: Path) -> None:
    from tal_bench.data.annotations import write_actionformer_json
    from tal_bench.types import Annotations, VideoRecord

    _write_frames(tmp_path / "frames" / "vid", 40)
    rec = VideoRecord("vid", "val", "Validation", 40 / 30.0, 30.0, np.array([[0.3, 0.9]]), ["A"])
    write_actionformer_json(Annotations({"vid": rec}, ["A"], "actionformer"),
                            tmp_path / "annotations" / "thumos14.json")  # fmt: skip
    with pytest.raises(TalBenchError, match=">= 8 x 8 pixels"):
        create_dataset("frames", str(tmp_path), height=6)
    ds = create_dataset("frames", str(tmp_path), feat_stride=8, clip_len=8, frames=2, height=8,
                        width=10)  # fmt: skip
    assert isinstance(ds.clips, FrameFolderSource) and ds.features is None
    assert ds.validate("val")["feature_steps"] == 5
    data = DataConfig(dataset="frames", mode="window", window=8, window_stride=8)
    item = build_items(ds, data, "val", ["vid"], train=False)[0]
    assert item["frames"].shape == (8, 3, 2, 8, 10) and int(item["mask"].sum()) == 5
    assert int(item["frames"][1, 0, 0, 0, 0]) == 8 + 2  # snippet 1, frame 0 = frame 10
    with pytest.raises(TalBenchError, match="eval.classifier"):
        ds.load_features("vid")
    with pytest.raises(TalBenchError, match="neither videos/"):
        create_dataset("frames", str(tmp_path / "annotations"), annotations="thumos14.json")
