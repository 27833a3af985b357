"""The embedded synthetic THUMOS-like dataset: THUMOS-14-shaped annotations + learnable features.

It is written in ActionFormer's release format (``annotations/thumos14.json`` + ``features/
<video>.npy`` of shape (T, C) float32) with a ``dataset.toml`` naming both and the feature
geometry, so ``--dataset DIR`` reads a written folder as it is (``tal_bench.data.folder``).

Annotations follow THUMOS-14 statistics measured once on ActionFormer's ``thumos14.json`` and
written here as numbers (20 classes, 200 "Validation" / 212 "Test" videos, 10 videos per class,
median duration ~160 s with a long tail, ~15 instances per video, median action ~3 s, ~70 %
background, ~4 % overlapping neighbours, CricketBowling followed by CricketShot, every CliffDiving
segment also labelled Diving).

Features (30 fps, stride 4, 16-frame clips; see ``synth_features``): each class has onset,
middle and offset directions plus a class-specific modulation; classes of one family share a
component (``class_sep``); every video perturbs the patterns (``video_style``) and every instance
varies in amplitude, speed and mixing; unannotated distractors (fragments, false starts, generic
bursts) sit in the background, which is a smooth low-rank process plus a scene offset; white
noise is added and everything is averaged over each 16-frame clip.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from tal_bench.data.annotations import load_annotations, write_actionformer_json
from tal_bench.data.datasets import TalDataset, annotation_stats, open_feature_dataset
from tal_bench.data.features import FeatureMeta, save_npy_features
from tal_bench.data.folder import DATASET_TOML
from tal_bench.data.synth_features import add_frame_noise, make_class_bank, render_latent
from tal_bench.data.synth_params import GENERATOR_VERSION, TINY_PARAMS, SynthParams  # noqa: F401  (re-exported)
from tal_bench.errors import TalBenchError
from tal_bench.types import Annotations, VideoRecord

log = logging.getLogger(__name__)

SYNTH_META = FeatureMeta(fps=30.0, feat_stride=4, clip_len=16, offset_frames=8.0, input_dim=64)

# Per class, measured on THUMOS-14 validation (videos grouped by their main class): family,
# median instance length (s), median video duration (s), median share of the video it covers.
THUMOS_CLASSES: dict[str, tuple[str, float, float, float]] = {
    "BaseballPitch": ("ball", 3.4, 67.0, 0.11), "BasketballDunk": ("ball", 1.7, 213.0, 0.22),
    "Billiards": ("swing", 3.2, 168.0, 0.17), "CleanAndJerk": ("lift", 9.7, 169.0, 0.34),
    "CliffDiving": ("dive", 2.6, 184.0, 0.20), "CricketBowling": ("cricket", 1.1, 149.0, 0.10),
    "CricketShot": ("cricket", 1.1, 91.0, 0.14), "Diving": ("dive", 2.4, 186.0, 0.32),
    "FrisbeeCatch": ("ball", 1.8, 60.0, 0.43), "GolfSwing": ("swing", 4.5, 121.0, 0.28),
    "HammerThrow": ("throw", 7.1, 208.0, 0.30), "HighJump": ("jump", 4.3, 391.0, 0.29),
    "JavelinThrow": ("throw", 6.2, 462.0, 0.20), "LongJump": ("jump", 6.5, 238.0, 0.33),
    "PoleVault": ("jump", 6.8, 229.0, 0.19), "Shotput": ("throw", 5.0, 114.0, 0.20),
    "SoccerPenalty": ("ball", 3.0, 67.0, 0.24), "TennisSwing": ("swing", 1.6, 85.0, 0.17),
    "ThrowDiscus": ("throw", 2.5, 96.0, 0.43), "VolleyballSpiking": ("ball", 1.3, 113.0, 0.28),
}  # fmt: skip
# Which classes a smaller num_classes keeps (the confusable pairs come early).
CLASS_PRIORITY = [
    "BasketballDunk", "CliffDiving", "Diving", "HighJump", "CricketBowling", "CricketShot",
    "LongJump", "GolfSwing", "JavelinThrow", "TennisSwing", "PoleVault", "HammerThrow",
    "VolleyballSpiking", "Billiards", "ThrowDiscus", "CleanAndJerk", "FrisbeeCatch", "Shotput",
    "SoccerPenalty", "BaseballPitch",
]  # fmt: skip
NUM_VIDEOS = {"Validation": 200, "Test": 212}
# video durations: lognormal around 1.1 x each class's median (the pooled median is then ~160 s)
DURATION_FACTOR, DURATION_LOG_STD, DURATION_RANGE_S = 1.1, 0.75, (9.0, 1700.0)
LENGTH_LOG_STD = 0.65  # within-class spread of log instance length
FG_LOG_STD, FG_RANGE = 0.45, (0.03, 0.6)  # per-video spread of the action share
OVERLAP_PROB = 0.04  # an instance starts inside its predecessor
SECOND_CLASS_PROB = 0.04  # a video also holds a few instances of a same-family class


def rng_for(*parts: Any) -> np.random.Generator:
    """A generator keyed by its parts (stable across runs, machines and call order)."""
    key = "|".join(str(p) for p in ("tal-bench-synth", GENERATOR_VERSION, *parts))
    return np.random.default_rng(int.from_bytes(hashlib.sha256(key.encode()).digest()[:16], "big"))


# ---------------------------------------------------------------- annotations -----------------


def _video_classes(n_videos: int, classes: list[str], rng: np.random.Generator) -> list[str]:
    """Primary class per video: balanced (THUMOS has 10 videos per class), shuffled."""
    reps = math.ceil(n_videos / len(classes))
    return list(rng.permutation(np.array(classes * reps)))[:n_videos]


def _pairs_cricket(primary: str, classes: list[str]) -> bool:
    return primary in ("CricketBowling", "CricketShot") and {
        "CricketBowling",
        "CricketShot",
    } <= set(classes)


def _event_labels(primary: str, classes: list[str], rng: np.random.Generator) -> list[str]:
    """Labels of one event: 80 % of cricket deliveries are a bowling then a shot."""
    if _pairs_cricket(primary, classes):
        return ["CricketBowling", "CricketShot"] if rng.random() < 0.8 else [primary]
    return [primary]


def _instance_length_s(label: str, rng: np.random.Generator) -> float:
    median_s = THUMOS_CLASSES[label][1]
    return float(np.clip(rng.lognormal(math.log(median_s), LENGTH_LOG_STD), 0.3, 60.0))


def _draw_events(duration_s: float, primary: str, classes: list[str], rng) -> list[list[tuple]]:
    """Per event, its [(label, length_s), ...]; the count follows the class's action share."""
    family = THUMOS_CLASSES[primary][0]
    mates = [c for c in classes if THUMOS_CLASSES[c][0] == family and c != primary]
    second = mates[rng.integers(len(mates))] if mates and rng.random() < SECOND_CLASS_PROB else None
    _, len_s, _, fg_share = THUMOS_CLASSES[primary]
    mean_len = len_s * math.exp(LENGTH_LOG_STD**2 / 2)
    if _pairs_cricket(primary, classes):
        mean_len *= 1.8  # cricket deliveries are two instances (80 % of events)
    share = float(np.clip(fg_share * rng.lognormal(0.0, FG_LOG_STD), *FG_RANGE))
    n_events = int(np.clip(round(share * duration_s / mean_len), 1, 250))
    events = []
    for _ in range(n_events):
        label = second if second and rng.random() < 0.25 else primary
        events.append(
            [(lab, _instance_length_s(lab, rng)) for lab in _event_labels(label, classes, rng)]
        )
    return events


def _sample_video(duration_s: float, primary: str, classes: list[str], rng) -> list[tuple]:
    """(start_s, end_s, label) of one video's instances: events separated by random gaps."""
    events = _draw_events(duration_s, primary, classes, rng)
    total = sum(length for event in events for _, length in event)
    squeeze = min(1.0, 0.6 * duration_s / total)  # actions never fill more than 60 %
    gaps = rng.dirichlet(np.ones(len(events) + 1)) * (duration_s - total * squeeze)
    out, t = [], float(gaps[0])
    for i, event in enumerate(events):
        if i and rng.random() < OVERLAP_PROB and out:  # start inside the previous instance
            t = max(0.0, t - (gaps[i] + 0.4 * (out[-1][1] - out[-1][0])))
        for label, length in event:
            end = t + length * squeeze
            out.append((round(t, 1), round(max(end, t + 0.1), 1), label))
            if label == "CliffDiving" and "Diving" in classes:  # THUMOS labels it twice
                out.append((out[-1][0], out[-1][1], "Diving"))
            t = end + rng.uniform(0.0, 0.3) * (len(event) > 1)
        t += float(gaps[i + 1])
    return [(s, min(e, round(duration_s, 1)), lab) for s, e, lab in out if s < duration_s - 0.1]


def sample_annotations(params: SynthParams) -> Annotations:
    """THUMOS-14-like annotations for ``params`` (no features)."""
    classes = sorted(CLASS_PRIORITY[: params.num_classes])
    dur_mult = min(1.0, math.sqrt(params.scale))
    videos: dict[str, VideoRecord] = {}
    for subset_raw, n_full in NUM_VIDEOS.items():
        sub = "val" if subset_raw == "Validation" else "test"
        n = max(params.num_classes, round(n_full * params.scale))
        primaries = _video_classes(n, classes, rng_for(params.seed, sub, "classes"))
        for i, primary in enumerate(primaries):
            rng = rng_for(params.seed, sub, i)
            median_s = DURATION_FACTOR * THUMOS_CLASSES[primary][2]
            dur = float(
                np.clip(rng.lognormal(math.log(median_s), DURATION_LOG_STD), *DURATION_RANGE_S)
            )
            dur = round(max(10.0, dur * dur_mult), 2)
            gts = _sample_video(dur, primary, classes, rng)
            vid = f"video_{subset_raw.lower()}_{i + 1:07d}"
            videos[vid] = VideoRecord(
                video_id=vid,
                subset=sub,
                subset_raw=subset_raw,
                duration_s=dur,
                fps=SYNTH_META.fps,
                segments_s=np.array([[s, e] for s, e, _ in gts], dtype=np.float64).reshape(-1, 2),
                labels=[lab for _, _, lab in gts],
                label_ids=np.array([classes.index(lab) for _, _, lab in gts], dtype=np.int64),
            )
    return Annotations(
        videos, classes, "synthetic", meta={"synth_params": dataclasses.asdict(params)}
    )


# ---------------------------------------------------------------- writing / cache -------------


def _families(classes: list[str]) -> list[str]:
    """THUMOS families where known; other class lists are grouped three by three."""
    return [
        THUMOS_CLASSES[c][0] if c in THUMOS_CLASSES else f"group{i // 3}"
        for i, c in enumerate(classes)
    ]


def video_signals(
    ann: Annotations, params: SynthParams
) -> Iterator[tuple[str, np.ndarray, np.random.Generator]]:
    """``(video_id, latent (T, C), generator)`` for every video in id order.

    ``latent`` is the noise-free signal on the feature grid (``render_latent``) and the
    generator is that video's, advanced past it: the features are
    ``add_frame_noise(latent, params, generator)``; the frames renderer draws from ``latent``.
    """
    bank_rng = rng_for(params.seed, "bank", params.dim, len(ann.classes))
    bank = make_class_bank(_families(ann.classes), params.dim, params.class_sep, bank_rng)
    index = {c: i for i, c in enumerate(ann.classes)}
    for vid in sorted(ann.videos):
        rec = ann.videos[vid]
        fps = rec.fps or SYNTH_META.fps
        num = SYNTH_META.num_features(rec.duration_s, fps)
        labels = np.array([index[x] for x in rec.labels], dtype=np.int64)
        rng = rng_for(params.seed, "feat", vid)
        latent = render_latent(num, fps, rec.segments_s, labels, bank, params, rng, SYNTH_META)
        yield vid, latent, rng


def _write_features(ann: Annotations, params: SynthParams, feat_dir: Path) -> int:
    """Render and save every video's features; returns the total number of feature steps."""
    total = 0
    for vid, latent, rng in video_signals(ann, params):
        save_npy_features(feat_dir / f"{vid}.npy", add_frame_noise(latent, params, rng))
        total += len(latent)
    return total


def _check_out_dir(out_dir: Path) -> None:
    """Refuse a non-empty target and an unwritable parent before generating anything."""
    if out_dir.exists() and not out_dir.is_dir():
        raise TalBenchError(f"--out {out_dir} is a file, not a folder; choose a new folder")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise TalBenchError(
            f"output folder {out_dir} already exists and is not empty; choose a new one or "
            "delete it"
        )
    parent = out_dir.parent
    probe = parent / f".tal-bench-probe-{uuid.uuid4().hex}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise TalBenchError(
            f"cannot write to {parent}: {exc.strerror}; choose another --out"
        ) from None


def publish(tmp: Path, out_dir: Path, marker: str = "synth_meta.json") -> bool:
    """Rename a finished temp folder into place; False if another writer got there first
    (``out_dir`` then holds ``marker``, the file a finished folder always has)."""
    try:
        os.rename(tmp, out_dir)  # atomic; replaces only an empty folder
        return True
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if out_dir.is_dir() and (out_dir / marker).is_file():
            return False
        raise


def _generate_into(
    out_dir: Path, ann: Annotations, params: SynthParams, name: str
) -> dict[str, Any]:
    """Write annotations + features + synth_meta.json via a temp folder renamed into place."""
    _check_out_dir(out_dir)
    tmp = out_dir.parent / f".tmp-{out_dir.name}-{uuid.uuid4().hex[:8]}"
    try:
        (tmp / "annotations").mkdir(parents=True)
        (tmp / "features").mkdir()
        start = time.perf_counter()
        steps = _write_features(ann, params, tmp / "features")
        version = f"{name}-v{GENERATOR_VERSION}"
        write_actionformer_json(ann, tmp / "annotations" / "thumos14.json", version=version)
        meta = {
            "name": name,
            "generator_version": GENERATOR_VERSION,
            "params": dataclasses.asdict(params),
            "key": params.key(),
            "feature_meta": dataclasses.asdict(replace(SYNTH_META, input_dim=params.dim)),
            "feature_steps": steps,
            "stats": annotation_stats(ann),
        }
        (tmp / "synth_meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        (tmp / DATASET_TOML).write_text(_dataset_toml(name))
        meta["generate_s"] = round(time.perf_counter() - start, 2)
        publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _dataset_toml(name: str) -> str:
    """What ``--dataset DIR`` reads (tal_bench.data.folder): the folder describes itself."""
    meta = SYNTH_META
    return (
        f"# {name}, written by `talbench datasets synth`; train on it with --dataset DIR\n"
        f"fps = {meta.fps!r}  # a video's own fps in the annotations wins\n"
        f"feat_stride = {meta.feat_stride}\n"
        f"clip_len = {meta.clip_len}\n"
        'annotations = "annotations/thumos14.json"\n'
        'features = "features"\n'
    )


def generate_dataset(
    out_dir: str | Path, params: SynthParams = SynthParams(), name: str = "synthetic-thumos14"
) -> dict[str, Any]:
    """Write a synthetic dataset to ``out_dir`` (which must not exist or be empty).

    Args:
        out_dir: target folder; written atomically (temp folder + rename).
        params: generator knobs.
        name: recorded in ``synth_meta.json`` and the annotation ``version``.

    Returns:
        The contents of ``synth_meta.json`` plus ``generate_s``.
    """
    params.check()
    return _generate_into(Path(out_dir), sample_annotations(params), params, name)


def synthesize_features(
    annotations_path: str | Path, out_dir: str | Path, dim: int = 64, seed: int = 0, **knobs: Any
) -> dict[str, Any]:
    """Synthesise features over a real annotation file (any format ``load_annotations`` reads).

    The annotations are rewritten in ActionFormer's layout as ``out_dir/annotations/
    thumos14.json`` (Ambiguous rows dropped by the reader); features go to ``out_dir/features/
    <video>.npy``, rendered at each video's own fps (30 when the file has none).

    Args:
        annotations_path: the annotation file.
        out_dir: target folder (must not exist or be empty).
        dim: feature channels.
        seed: generator seed.
        **knobs: other ``SynthParams`` fields (noise, distractor_rate, class_sep, ...).

    Returns:
        The contents of ``synth_meta.json`` plus ``generate_s``.
    """
    fields = {f.name for f in dataclasses.fields(SynthParams)} - {"scale", "num_classes"}
    unknown = sorted(set(knobs) - fields)
    if unknown:
        raise TalBenchError(
            f"unknown synthetic option(s) {', '.join(unknown)}; valid: {', '.join(sorted(fields))}"
        )
    params = SynthParams(dim=dim, seed=seed, **knobs).check()
    ann = load_annotations(annotations_path)
    return _generate_into(
        Path(out_dir), ann, params, f"synthetic-over-{Path(annotations_path).stem}"
    )


def cache_root() -> Path:
    """``$TALBENCH_CACHE``, else ``$XDG_CACHE_HOME/tal-bench``, else ``~/.cache/tal-bench``."""
    if os.environ.get("TALBENCH_CACHE"):
        return Path(os.environ["TALBENCH_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "tal-bench"
    return Path.home() / ".cache" / "tal-bench"


def ensure_synthetic(params: SynthParams, name: str) -> Path:
    """The cached folder of a synthetic dataset, generating it on first use.

    Folders are keyed by a hash of (params, generator version); concurrent or killed
    generations never leave a half-written folder in place (temp folder + atomic rename).
    """
    params.check()
    base = cache_root() / "datasets"
    out_dir = base / f"{name}-{params.key()}"
    if (out_dir / "synth_meta.json").is_file():
        return out_dir
    _remove_stale_temps(base)
    log.info("generating %s into %s (first use)", name, out_dir)
    try:
        generate_dataset(out_dir, params, name)
    except TalBenchError:
        if (out_dir / "synth_meta.json").is_file():  # another process finished it meanwhile
            return out_dir
        raise
    return out_dir


def _remove_stale_temps(base: Path, max_age_s: float = 6 * 3600) -> None:
    """Delete temp folders left by killed generations (older than ``max_age_s``)."""
    if not base.is_dir():
        return
    now = time.time()
    for tmp in base.glob(".tmp-*"):
        if now - tmp.stat().st_mtime > max_age_s:
            shutil.rmtree(tmp, ignore_errors=True)


def open_synthetic(folder: str | Path, name: str) -> TalDataset:
    """Open a folder written by ``generate_dataset`` / ``synthesize_features``."""
    folder = Path(folder)
    meta_path = folder / "synth_meta.json"
    if not meta_path.is_file():
        raise TalBenchError(
            f"{folder} is not a synthetic dataset (no synth_meta.json); write one with "
            "`talbench datasets synth --out DIR`"
        )
    meta = json.loads(meta_path.read_text())
    feature_meta = FeatureMeta(**meta["feature_meta"])
    return open_feature_dataset(
        name, folder / "annotations" / "thumos14.json", folder / "features", feature_meta
    )
