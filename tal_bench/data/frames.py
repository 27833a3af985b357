"""Raw video data: datasets whose items are snippet clips instead of feature vectors.

A frames dataset is a ``TalDataset`` whose ``load_feature_range`` returns snippet clips
``(T', 3, t, H, W)`` uint8 (``tal_bench.data.items`` then packs them as ``item["frames"]``,
``(L, 3, t, H, W)``, zero-padded like features). Snippets follow the feature convention
(``FeatureMeta``): snippet i is the clip of ``clip_len`` frames starting at frame
``i * feat_stride``, centred at ``i * feat_stride + offset_frames``; of it, ``t`` frames are
kept, evenly spread (``ClipSpec.offsets``). Three sources give the same item interface:

* ``NpyClipStore``: one ``<video>.npy`` of all clips ``(N, 3, t, H, W)`` uint8 per video (the
  embedded dataset's cache);
* ``FrameFolderSource``: folders of extracted frames, ``<root>/frames/<video>/*.jpg|png`` in
  name order at the dataset's fps, decoded and resized with Pillow (a matplotlib dependency);
* ``VideoFileSource``: ``<root>/videos/<video>.mp4|mkv|avi|webm|mov`` decoded with PyAV
  (``pip install "tal-bench[video]"``); frame k is the decoded frame at time k / fps.

Registered datasets:

* ``synthetic-thumos14-frames``: the embedded THUMOS-like dataset at a quarter scale (50 train
  / 53 test videos; ``scale`` option), rendered as 32 x 32 RGB clips of 4 frames per 1.07 s
  snippet (32 frames at 30 fps; ``height``, ``width``, ``frames``, ``feat_stride`` options) from
  the same signal its 64-d features come from (``tal_bench.data.synth_frames``). Generated into
  the cache on first use and reused, like the features. ``synthetic-thumos14-frames-tiny``:
  the tiny dataset's videos as 16 x 16 clips, for tests.
* ``frames``: real data under ``data.root``: ``annotations/thumos14.json`` (any format
  ``load_annotations`` reads; ``annotations`` option) and ``videos/`` or ``frames/``; 16-frame
  snippets every 16 frames at 30 fps, 4 frames of 64 x 64 each (options as above plus
  ``fps``, ``clip_len``). An optional ``features/`` folder of pre-extracted features serves the
  internal video-level classifier.

``load_features`` returns pre-extracted features for the video-level classifier of
class-agnostic detectors: the synthetic dataset's own 64-d features (a fixed external
classifier, as ETAD uses UntrimmedNet / CUHK scores), or ``features/`` of a real root; without
them ``eval.classifier`` must name a score file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import uuid
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tal_bench.data.annotations import load_annotations
from tal_bench.data.checks import check_segments
from tal_bench.data.datasets import THUMOS_PROTOCOL, DatasetSpec, TalDataset, _check_options
from tal_bench.data.features import FeatureMeta, FeatureStore
from tal_bench.data.synth_frames import ClipSpec
from tal_bench.errors import TalBenchError
from tal_bench.registry import DATASETS
from tal_bench.types import Annotations

FRAMES_VERSION = 1  # bump whenever rendered clips change (it keys the cache)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".webm", ".mov")
CLIPS_META = "clips_meta.json"


class ClipSource(Protocol):
    """Where the clips of a frames dataset come from."""

    path: Path

    def has(self, video_id: str) -> bool: ...

    def num_snippets(self, video_id: str) -> int: ...

    def load(self, video_id: str, start: int, stop: int, step: int = 1) -> np.ndarray: ...


def snippet_frames(
    meta: FeatureMeta, spec: ClipSpec, start: int, stop: int, step: int, num_frames: int
) -> np.ndarray:
    """Frame indices of snippets ``start:stop:step``: (N', t) int64, clamped to the video."""
    snippets = np.arange(start, stop, step)
    idx = snippets[:, None] * meta.feat_stride + spec.offsets(meta.clip_len)[None]
    return np.clip(idx, 0, max(num_frames - 1, 0))


def num_snippets_of(meta: FeatureMeta, num_frames: int) -> int:
    """Snippets of a video with ``num_frames`` frames (clips that fit entirely, >= 1)."""
    return max(1, (num_frames - meta.clip_len) // meta.feat_stride + 1)


class NpyClipStore:
    """``<path>/<video>.npy`` holding every clip of a video, ``(N, 3, t, H, W)`` uint8."""

    def __init__(self, path: Path, spec: ClipSpec) -> None:
        self.path, self.spec = Path(path), spec
        self._counts: dict[str, int] = {}

    def _file(self, video_id: str) -> Path:
        return self.path / f"{video_id}.npy"

    def has(self, video_id: str) -> bool:
        """Whether the video has a clip file."""
        return self._file(video_id).is_file()

    def num_snippets(self, video_id: str) -> int:
        """N, read from the file header."""
        if video_id not in self._counts:
            self._counts[video_id] = int(self._mmap(video_id).shape[0])
        return self._counts[video_id]

    def _mmap(self, video_id: str) -> np.ndarray:
        arr = np.load(self._file(video_id), mmap_mode="r", allow_pickle=False)
        want = (3, self.spec.frames, self.spec.height, self.spec.width)
        if arr.ndim != 5 or tuple(arr.shape[1:]) != want or arr.dtype != np.uint8:
            raise TalBenchError(
                f"{self._file(video_id)} holds {arr.dtype} {tuple(arr.shape)}; expected uint8 "
                f"(N, {', '.join(map(str, want))}); delete it to re-render"
            )
        return arr

    def load(self, video_id: str, start: int, stop: int, step: int = 1) -> np.ndarray:
        """Clips ``[start:stop:step]``: (N', 3, t, H, W) uint8 (a copy)."""
        return np.array(self._mmap(video_id)[start:stop:step])


def _resize_rgb(image: Any, spec: ClipSpec) -> np.ndarray:
    """A PIL image -> (3, H, W) uint8, bilinear."""
    from PIL import Image

    img = image.convert("RGB").resize((spec.width, spec.height), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


class FrameFolderSource:
    """``<path>/<video>/`` folders of extracted frames (name order = frame order)."""

    def __init__(self, path: Path, meta: FeatureMeta, spec: ClipSpec) -> None:
        self.path, self.meta, self.spec = Path(path), meta, spec
        self._files: dict[str, list[Path]] = {}

    def _frames(self, video_id: str) -> list[Path]:
        if video_id not in self._files:
            folder = self.path / video_id
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise TalBenchError(
                    f"{folder} holds no frames ({', '.join(IMAGE_SUFFIXES)}); extract them first"
                )
            self._files[video_id] = files
        return self._files[video_id]

    def has(self, video_id: str) -> bool:
        """Whether the video has a frame folder."""
        return (self.path / video_id).is_dir()

    def num_snippets(self, video_id: str) -> int:
        """Snippets that fit in the folder's frames."""
        return num_snippets_of(self.meta, len(self._frames(video_id)))

    def load(self, video_id: str, start: int, stop: int, step: int = 1) -> np.ndarray:
        """Clips ``[start:stop:step]``: (N', 3, t, H, W) uint8."""
        from PIL import Image

        files = self._frames(video_id)
        stop = min(stop, self.num_snippets(video_id))
        idx = snippet_frames(self.meta, self.spec, start, stop, step, len(files))  # (N', t)
        cache: dict[int, np.ndarray] = {}
        for k in np.unique(idx):
            with Image.open(files[int(k)]) as img:
                cache[int(k)] = _resize_rgb(img, self.spec)
        clips = np.stack([np.stack([cache[int(k)] for k in row], axis=1) for row in idx])
        return clips.reshape(len(idx), 3, self.spec.frames, self.spec.height, self.spec.width)


def _import_av() -> Any:
    try:
        import av
    except ImportError:
        raise TalBenchError(
            'decoding video files needs PyAV: pip install "tal-bench[video]" (or extract the '
            "frames into <root>/frames/<video>/ as JPEG/PNG)"
        ) from None
    return av


class VideoFileSource:
    """``<path>/<video>.<ext>`` video files decoded with PyAV; frame k = time k / fps."""

    def __init__(self, path: Path, meta: FeatureMeta, spec: ClipSpec) -> None:
        self.path, self.meta, self.spec = Path(path), meta, spec
        self._counts: dict[str, int] = {}

    def _file(self, video_id: str) -> Path | None:
        return next(
            (f for s in VIDEO_SUFFIXES if (f := self.path / f"{video_id}{s}").is_file()), None
        )

    def has(self, video_id: str) -> bool:
        """Whether the video has a file."""
        return self._file(video_id) is not None

    def num_snippets(self, video_id: str) -> int:
        """Snippets of the video's frames at the dataset fps (from the stream's duration)."""
        if video_id not in self._counts:
            av = _import_av()
            with av.open(str(self._file(video_id))) as container:
                stream = container.streams.video[0]
                if stream.duration is not None:
                    seconds = float(stream.duration * stream.time_base)
                else:
                    seconds = container.duration / av.time_base
            self._counts[video_id] = num_snippets_of(self.meta, int(round(seconds * self.meta.fps)))
        return self._counts[video_id]

    def load(self, video_id: str, start: int, stop: int, step: int = 1) -> np.ndarray:
        """Clips ``[start:stop:step]``: (N', 3, t, H, W) uint8; frame k is the last decoded
        frame that starts at or before k / fps."""
        av = _import_av()
        n_frames = self.num_snippets(video_id) * self.meta.feat_stride + self.meta.clip_len
        stop = min(stop, self.num_snippets(video_id))
        idx = snippet_frames(self.meta, self.spec, start, stop, step, n_frames)  # (N', t)
        wanted = np.unique(idx)
        got: dict[int, np.ndarray] = {}
        with av.open(str(self._file(video_id))) as container:
            stream = container.streams.video[0]
            first_s = float(wanted[0]) / self.meta.fps
            container.seek(int(first_s / stream.time_base), stream=stream, backward=True)
            last = None
            pending = list(wanted)
            for frame in container.decode(stream):
                t_s = float(frame.pts * stream.time_base) if frame.pts is not None else 0.0
                # every wanted frame whose time has been reached gets the latest frame
                while pending and pending[0] / self.meta.fps < t_s - 0.5 / self.meta.fps:
                    got[int(pending.pop(0))] = last if last is not None else self._rgb(frame)
                last = self._rgb(frame)
                if not pending:
                    break
            for k in pending:  # past the end of the stream: repeat the last frame
                got[int(k)] = last if last is not None else np.zeros((3, 1, 1), np.uint8)
        clips = np.stack([np.stack([got[int(k)] for k in row], axis=1) for row in idx])
        return clips.reshape(len(idx), 3, self.spec.frames, self.spec.height, self.spec.width)

    def _rgb(self, frame: Any) -> np.ndarray:
        rgb = frame.to_ndarray(width=self.spec.width, height=self.spec.height, format="rgb24")
        return rgb.transpose(2, 0, 1)  # (3, H, W)


class FramesDataset(TalDataset):
    """Annotations plus snippet clips (module docstring); items carry ``frames``.

    Args:
        name: registered name.
        annotations: the parsed annotation file.
        clips: where the clips come from.
        meta: snippet geometry (``input_dim`` is set to 0: the items hold no feature vectors).
        spec: frames per clip and their size.
        features: pre-extracted features for the video-level classifier, if any.

    The protocol is THUMOS's (train on ``val``, test on ``test``, tIoU 0.3:0.1:0.7, items the
    detector's native way; frames support ``window`` and ``full`` items, not ``resize``).
    """

    provides = "frames"

    def __init__(
        self,
        name: str,
        annotations: Annotations,
        clips: ClipSource,
        meta: FeatureMeta,
        spec: ClipSpec,
        features: FeatureStore | None = None,
    ) -> None:
        self.name = name
        self.notes = check_segments(annotations, annotations.path or name)
        self.annotations = annotations
        self.clips = clips
        self.store = clips  # dataset_info reads store.path
        self.features = features
        self.spec = spec.check()
        self.protocol = THUMOS_PROTOCOL
        self.feature_meta = dataclasses.replace(meta, input_dim=0)

    def num_features(self, video_id: str) -> int:
        """Snippets of one video."""
        return self.clips.num_snippets(video_id)

    def load_feature_range(self, video_id: str, start: int, stop: int, step: int = 1):
        """Clips ``[start:stop:step]`` of one video: (T', 3, t, H, W) uint8."""
        return self.clips.load(video_id, start, stop, step)

    def load_features(self, video_id: str) -> np.ndarray:
        """Pre-extracted (T, C) features of one video, for the video-level classifier."""
        if self.features is None:
            raise TalBenchError(
                f"dataset {self.name!r} has frames but no pre-extracted features for the "
                "internal video classifier; set eval.classifier=PATH to a score file (or add "
                "<root>/features/)"
            )
        return self.features.load(video_id)

    def validate_ids(self, video_ids: list[str]) -> None:
        """Every id has clips (cheap: file presence only)."""
        missing = [v for v in video_ids if not self.clips.has(v)]
        if missing:
            raise TalBenchError(
                f"{len(missing)} of {len(video_ids)} videos have no frames in {self.clips.path} "
                f"(first: {', '.join(missing[:3])}); add them or drop them from the annotations"
            )

    def validate(self, subset: str) -> dict[str, Any]:
        """Check a subset: known, non-empty, clips present; ``feature_steps`` counts snippets."""
        ids = self.video_ids(subset)
        self.validate_ids(ids)
        return {
            "subset": self.resolve_subset(subset),
            "videos": len(ids),
            "feature_steps": sum(self.num_features(v) for v in ids),
            "input_dim": 0,
            "clip_shape": [3, self.spec.frames, self.spec.height, self.spec.width],
        }


# ---------------------------------------------------------------- the embedded dataset -------

SYNTH_FRAMES_SCALE = 0.25  # 50 train / 53 test videos: the EGS grid takes ~6 min on 2 cores
SYNTH_SNIPPETS = FeatureMeta(fps=30.0, feat_stride=32, clip_len=32, offset_frames=16.0)


def _clips_key(spec: ClipSpec, meta: FeatureMeta) -> str:
    blob = json.dumps(
        {"v": FRAMES_VERSION, "spec": dataclasses.asdict(spec), "meta": dataclasses.asdict(meta)},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def render_synthetic_clips(folder: Path, spec: ClipSpec, meta: FeatureMeta) -> dict[str, Any]:
    """Render the clips of every video of a synthetic dataset folder into ``folder/clips-<key>``.

    Written through a temp folder renamed into place; a finished folder is reused.

    Returns:
        The contents of its ``clips_meta.json``.
    """
    from tal_bench.data import synth_frames, synthetic

    out_dir = folder / f"clips-{_clips_key(spec, meta)}"
    if (out_dir / CLIPS_META).is_file():
        return json.loads((out_dir / CLIPS_META).read_text())
    synth = json.loads((folder / "synth_meta.json").read_text())
    params = synthetic.SynthParams(**synth["params"])
    ann = load_annotations(folder / "annotations" / "thumos14.json")
    textures = synth_frames.make_textures(
        params.dim, spec, synthetic.rng_for(params.seed, "textures", params.dim, spec)
    )
    tmp = folder / f".tmp-clips-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        total = 0
        for vid, latent, _ in synthetic.video_signals(ann, params):
            rec = ann.videos[vid]
            num = meta.num_features(rec.duration_s, rec.fps or meta.fps)
            rng = synthetic.rng_for(params.seed, "frames", vid)
            clips = synth_frames.render_clips(
                latent, synthetic.SYNTH_META, meta, num, spec, textures, params.noise, rng
            )
            np.save(tmp / f"{vid}.npy", clips, allow_pickle=False)
            total += num
        info = {
            "frames_version": FRAMES_VERSION,
            "clip_spec": dataclasses.asdict(spec),
            "snippet_meta": dataclasses.asdict(meta),
            "snippets": total,
        }
        (tmp / CLIPS_META).write_text(json.dumps(info, indent=2, sort_keys=True))
        synthetic.publish(tmp, out_dir, CLIPS_META)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _clip_spec(name: str, frames: Any, height: Any, width: Any) -> ClipSpec:
    try:
        return ClipSpec(int(frames), int(height), int(width)).check()
    except ValueError as exc:
        raise TalBenchError(f"dataset {name!r}: {exc}") from None


def _synthetic_frames_factory(name: str, tiny: bool) -> Any:
    size = 16 if tiny else 32
    frame_opts = {"frames": 4, "height": size, "width": size, "feat_stride": 32}

    def factory(root: Path | None, **options: Any) -> FramesDataset:
        from tal_bench.data import synthetic

        params = synthetic.TINY_PARAMS if tiny else synthetic.SynthParams(scale=SYNTH_FRAMES_SCALE)
        base = {**dataclasses.asdict(params), **frame_opts}
        opts = _check_options(name, options, base)
        spec = _clip_spec(name, opts.pop("frames"), opts.pop("height"), opts.pop("width"))
        stride = int(opts.pop("feat_stride"))  # snippet = clip: stride frames each
        meta = dataclasses.replace(SYNTH_SNIPPETS, feat_stride=stride, clip_len=stride,
                                   offset_frames=stride / 2)  # fmt: skip
        if stride < spec.frames:
            raise TalBenchError(f"dataset {name!r}: feat_stride ({stride}) must be >= frames")
        if root is None:
            root = synthetic.ensure_synthetic(synthetic.SynthParams(**opts), name)
        elif not (root / "synth_meta.json").is_file():
            raise TalBenchError(f"{root} is not a synthetic dataset folder (no synth_meta.json)")
        render_synthetic_clips(root, spec, meta)
        ann = load_annotations(root / "annotations" / "thumos14.json")
        clips = NpyClipStore(root / f"clips-{_clips_key(spec, meta)}", spec)
        return FramesDataset(name, ann, clips, meta, spec, FeatureStore(root / "features"))

    return factory


def _real_frames_factory(root: Path | None, **options: Any) -> FramesDataset:
    defaults = {"annotations": "annotations/thumos14.json", "videos": "videos", "frames": 4,
                "frame_dir": "frames", "features": "features", "fps": 30.0, "feat_stride": 16,
                "clip_len": 16, "height": 64, "width": 64}  # fmt: skip
    opts = _check_options("frames", options, defaults)
    assert root is not None
    meta = FeatureMeta(float(opts["fps"]), int(opts["feat_stride"]), int(opts["clip_len"]),
                       int(opts["clip_len"]) / 2, 0)  # fmt: skip
    spec = _clip_spec("frames", opts["frames"], opts["height"], opts["width"])
    ann_path = root / opts["annotations"]
    if not ann_path.is_file():
        raise TalBenchError(f"annotation file {ann_path} does not exist; set its path")
    if (root / opts["videos"]).is_dir():
        clips: ClipSource = VideoFileSource(root / opts["videos"], meta, spec)
    elif (root / opts["frame_dir"]).is_dir():
        clips = FrameFolderSource(root / opts["frame_dir"], meta, spec)
    else:
        raise TalBenchError(
            f"{root} has neither {opts['videos']}/ (video files) nor {opts['frame_dir']}/ "
            "(folders of extracted frames)"
        )
    feats = root / opts["features"]
    store = FeatureStore(feats) if feats.is_dir() and any(feats.iterdir()) else None
    return FramesDataset("frames", load_annotations(ann_path), clips, meta, spec, store)


DATASETS.register("synthetic-thumos14-frames")(
    DatasetSpec(
        "synthetic-thumos14-frames",
        "embedded THUMOS-like dataset as raw frames: 50 train / 53 test videos, 20 classes, "
        "32x32 RGB clips of 4 frames per 1.07 s snippet, rendered from the same signal as its "
        "64-d features; generated into the cache on first use (~30 s)",
        THUMOS_PROTOCOL,
        None,
        False,
        _synthetic_frames_factory("synthetic-thumos14-frames", tiny=False),
    )
)
DATASETS.register("synthetic-thumos14-frames-tiny")(
    DatasetSpec(
        "synthetic-thumos14-frames-tiny",
        "tiny frames dataset for tests and smoke runs: synthetic-thumos14-tiny's videos (12 "
        "train / 13 test, 5 classes) as 16x16 clips of 4 frames per 1.07 s snippet",
        THUMOS_PROTOCOL,
        None,
        False,
        _synthetic_frames_factory("synthetic-thumos14-frames-tiny", tiny=True),
    )
)
DATASETS.register("frames")(
    DatasetSpec(
        "frames",
        "real frames: <root>/annotations/thumos14.json + <root>/videos/<video>.mp4 (PyAV) or "
        "<root>/frames/<video>/*.jpg|png; 16-frame snippets every 16 frames at 30 fps, 4 frames "
        "of 64x64 each",
        THUMOS_PROTOCOL,
        None,
        True,
        _real_frames_factory,
    )
)
