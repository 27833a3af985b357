"""Helpers for the data-layer tests: tiny hand-made datasets.

The default geometry is fps 1, stride 1, one-frame clips, offset 0: feature i is centred at
i seconds, so grid coordinates of a window starting at feature w are ``t_s - w``, which keeps the
hand-worked examples readable. Feature values encode (t, c) as ``t * 1000 + c``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tal_bench.data.datasets import TalDataset
from tal_bench.data.features import FeatureMeta, FeatureStore, save_npy_features
from tal_bench.types import Annotations, VideoRecord

UNIT_META = FeatureMeta(fps=1.0, feat_stride=1, clip_len=1, offset_frames=0.0, input_dim=3)
CLASSES = ["A", "B", "C"]

# (video_id, subset, num_feats, duration_s, [(start_s, end_s, label), ...])
VideoSpec = tuple[str, str, int, float, list[tuple[float, float, str]]]


def coded_features(num: int, dim: int = 3) -> np.ndarray:
    """(T, C) float32 with value t * 1000 + c, so slices can be checked exactly."""
    t = np.arange(num, dtype=np.float32)[:, None]
    c = np.arange(dim, dtype=np.float32)[None, :]
    return t * 1000 + c


def make_annotations(specs: list[VideoSpec]) -> Annotations:
    videos = {}
    for vid, subset, _num, duration_s, gts in specs:
        segs = np.array([[s, e] for s, e, _ in gts], dtype=np.float64).reshape(-1, 2)
        videos[vid] = VideoRecord(
            video_id=vid,
            subset=subset,
            subset_raw=subset,
            duration_s=duration_s,
            fps=None,
            segments_s=segs,
            labels=[lab for _, _, lab in gts],
        )
    return Annotations(videos=videos, classes=list(CLASSES), source_format="synthetic")


def write_dataset(root: Path, specs: list[VideoSpec], meta: FeatureMeta = UNIT_META) -> TalDataset:
    """Write coded .npy features for ``specs`` under ``root/features`` and open a TalDataset."""
    feat_dir = root / "features"
    feat_dir.mkdir(exist_ok=True)
    for vid, _subset, num, _dur, _gts in specs:
        save_npy_features(feat_dir / f"{vid}.npy", coded_features(num, meta.input_dim))
    return TalDataset("hand", make_annotations(specs), FeatureStore(feat_dir), meta)


def frame_labels(rec: VideoRecord, classes: list[str], num: int, fps: float = 30.0) -> np.ndarray:
    """(T,) class index of each feature centre (frame 4 i + 8), len(classes) = background."""
    t_s = (np.arange(num) * 4 + 8) / fps
    y = np.full(num, len(classes))
    for (s, e), lab in zip(rec.segments_s, rec.labels, strict=True):
        y[(t_s >= s) & (t_s <= e) & (y == len(classes))] = classes.index(lab)
    return y


def lda_probe(
    train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], num_classes: int
) -> dict[str, float]:
    """Per-frame linear discriminant (class means, pooled covariance, class priors).

    Returns:
        {"fg_vs_bg": accuracy of action/background, "majority": share of background frames,
        "fg_class_acc": class accuracy on action frames}.
    """
    x, y = train
    xt, yt = test
    k = num_classes + 1
    mus = np.stack([x[y == c].mean(0) if (y == c).any() else x.mean(0) for c in range(k)])
    resid = x - mus[y]
    cov = resid.T @ resid / len(x) + 1e-3 * np.eye(x.shape[1])
    w = mus @ np.linalg.inv(cov)  # (K+1, C)
    prior = np.array([(y == c).mean() + 1e-6 for c in range(k)])
    bias = -0.5 * np.einsum("kc,kc->k", w, mus) + np.log(prior)
    pred = (xt @ w.T + bias).argmax(1)
    fg = yt < num_classes
    return {
        "fg_vs_bg": float(((pred < num_classes) == fg).mean()),
        "majority": float(1 - fg.mean()),
        "fg_class_acc": float((pred[fg] == yt[fg]).mean()),
    }


# A folder dataset in ActionFormer's layout (tal_bench.data.folder): 8 features per second
# (fps 8, stride 1, one-frame clips), so a 6 s video has 48 features.
FOLDER_TOML = 'fps = 8.0\nfeat_stride = 1\nclip_len = 1\nfeatures = "feats"\n'
FOLDER_VIDEOS: list[VideoSpec] = [
    *[(f"v{i}", "Validation", 48, 6.0, [(1.0, 2.5, "A"), (3.5, 5.0, "B")]) for i in range(4)],
    *[(f"t{i}", "Test", 48, 6.0, [(0.5, 2.0, "B"), (3.0, 4.5, "A")]) for i in range(3)],
]


def write_folder(
    root: Path,
    videos: list[VideoSpec] | None = None,
    dim: int = 8,
    toml: str | None = FOLDER_TOML,
    seed: int = 0,
) -> Path:
    """Write ``root/annotations/anno.json`` (ActionFormer's fields), ``root/feats/<id>.npy``
    (random (T, dim) float32) and ``root/dataset.toml``; returns ``root``."""
    import json

    videos = FOLDER_VIDEOS if videos is None else videos
    rng = np.random.default_rng(seed)
    (root / "annotations").mkdir(parents=True)
    (root / "feats").mkdir()
    database = {}
    for vid, subset, num, duration_s, gts in videos:
        anns = [
            {"label": lab, "segment": [s, e], "label_id": sorted(CLASSES).index(lab)}
            for s, e, lab in gts
        ]
        database[vid] = {"subset": subset, "duration": duration_s, "annotations": anns}
        feats = rng.standard_normal((num, dim)).astype(np.float32)
        save_npy_features(root / "feats" / f"{vid}.npy", feats)
    payload = {"version": "test", "database": database}
    (root / "annotations" / "anno.json").write_text(json.dumps(payload))
    if toml is not None:
        (root / "dataset.toml").write_text(toml)
    return root
