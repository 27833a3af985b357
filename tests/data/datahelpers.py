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
