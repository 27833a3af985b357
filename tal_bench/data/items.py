"""Training / evaluation items: sliding windows, resized videos and (truncated) whole videos.

The one seconds <-> feature-grid conversion of the project lives here: feature i of an item sits
at grid coordinate x = i and ``t_s = t0_s + x * step_s``.

* ``window`` (THUMOS, OpenTAD's sliding-window recipe used by ETAD): windows of ``window``
  features every ``window_stride`` (``test_window_stride`` for evaluation items when set:
  TadTR slides its test windows with less overlap than its training windows); the last window is
  right-aligned; videos shorter than a window are zero-padded with a mask. A ground-truth
  segment is kept only if at least ``window_min_inside`` of it (OpenTAD 90 %, TadTR 75 %) lies
  inside the window, and is then truncated to the window; training drops windows with none.
* ``resize`` (ActivityNet, ETAD): the whole video is resampled to ``resize_len`` bins with
  torchvision ``roi_align(aligned=True)`` semantics over the box [0, T] (sming256/ETAD,
  lib/dataset/anet_1_3/dataset.py):
  each bin is the mean of ceil(T / L) linearly interpolated samples evenly placed in the bin.
  Bin b covers seconds [b, b + 1] * duration / L, so t0_s = step_s / 2 (its centre).
* ``full`` (ActionFormer): whole videos of variable length; in training a random crop of at most
  ``max_len`` features (90-100 % of shorter videos) that keeps >= 50 % of at least one action,
  tried up to 200 times, as ActionFormer's ``truncate_feats`` does
  (happyharrycn/actionformer_release, libs/datasets/data_utils.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from tal_bench.config import DataConfig
from tal_bench.errors import TalBenchError
from tal_bench.types import VideoItem

if TYPE_CHECKING:
    from tal_bench.data.datasets import TalDataset

TRUNC_THRESH = 0.5  # ActionFormer truncation: >= 50 % of one action must stay in the crop
TRUNC_TRIES = 200
CROP_RATIO = (0.9, 1.0)  # ActionFormer's crop of videos shorter than max_len


def grid_to_seconds(x: Any, t0_s: float, step_s: float) -> Any:
    """Grid coordinate(s) of an item -> seconds from the video start (float, ndarray, tensor)."""
    return t0_s + x * step_s


def seconds_to_grid(t_s: Any, t0_s: float, step_s: float) -> Any:
    """Seconds from the video start -> grid coordinate(s) of an item (inverse of the above)."""
    return (t_s - t0_s) / step_s


@dataclass
class _Video:
    """What items need to know about one video (feature counts after downsampling)."""

    video_id: str
    num_feats: int  # T after keeping every k-th feature
    duration_s: float
    fps: float
    segments_s: np.ndarray  # (N, 2) float64
    labels: np.ndarray  # (N,) int64

    def t0_s(self, ds: TalDataset, first: int, downsample: int) -> float:
        """Seconds at the centre of kept feature ``first``."""
        meta = ds.feature_meta
        return (first * meta.feat_stride * downsample + meta.offset_frames) / self.fps


def _videos(ds: TalDataset, video_ids: list[str], downsample: int) -> list[_Video]:
    if downsample < 1:
        raise TalBenchError(f"data.downsample must be >= 1, got {downsample}")
    class_index = {name: i for i, name in enumerate(ds.annotations.classes)}
    out = []
    for vid in video_ids:
        rec = ds.annotations.videos[vid]
        num = ds.num_features(vid)
        labels = np.array([class_index[name] for name in rec.labels], dtype=np.int64)
        segs = np.asarray(rec.segments_s, dtype=np.float64).reshape(-1, 2)
        fps = rec.fps or ds.feature_meta.fps
        out.append(_Video(vid, -(-num // downsample), rec.duration_s, fps, segs, labels))
    return out


def clip_segments(
    segs: np.ndarray, lo: float, hi: float, min_inside: float
) -> tuple[np.ndarray, np.ndarray]:
    """Keep segments with at least ``min_inside`` of their length in [lo, hi], clipped to it.

    Args:
        segs: (N, 2) segments (any unit).
        lo: start of the allowed interval.
        hi: end of the allowed interval.
        min_inside: fraction of a segment's length that must lie inside; 0 keeps every
            segment that touches the interval with positive length.

    Returns:
        (kept (K, 2) clipped segments, keep (N,) bool).
    """
    segs = np.asarray(segs, dtype=np.float64).reshape(-1, 2)
    start = np.clip(segs[:, 0], lo, hi)
    end = np.clip(segs[:, 1], lo, hi)
    inside = end - start
    length = segs[:, 1] - segs[:, 0]
    if min_inside > 0:
        # zero-length segments count as inside when they lie in the interval
        keep = (inside >= min_inside * length - 1e-9) & (segs[:, 0] <= hi) & (segs[:, 1] >= lo)
    else:
        keep = inside > 0
    return np.stack([start, end], axis=1)[keep], keep


def _make_item(
    video: _Video,
    feats: np.ndarray,
    length: int,
    segs_x: np.ndarray,
    labels: np.ndarray,
    t0_s: float,
    step_s: float,
    window_start: int,
) -> VideoItem:
    """Pad ``feats`` (T, C) to ``length`` steps and package one item.

    Frames datasets give snippet clips (T, 3, t, H, W) uint8 instead: they are padded to
    ``item["frames"]`` (L, 3, t, H, W) and ``feats`` is an empty (0, L) tensor.
    """
    num = feats.shape[0]
    extra = {}
    if feats.ndim == 5:
        frames = np.zeros((length, *feats.shape[1:]), dtype=np.uint8)  # (L, 3, t, H, W)
        frames[:num] = feats
        extra["frames"] = torch.from_numpy(frames)
        padded = np.zeros((0, length), dtype=np.float32)  # (0, L)
    else:
        padded = np.zeros((feats.shape[1], length), dtype=np.float32)  # (C, L)
        padded[:, :num] = feats.T
    mask = torch.zeros(length, dtype=torch.bool)  # (L,)
    mask[:num] = True
    return VideoItem(
        **extra,
        video_id=video.video_id,
        feats=torch.from_numpy(padded),
        mask=mask,
        segments=torch.as_tensor(segs_x, dtype=torch.float32).reshape(-1, 2),  # (N, 2)
        labels=torch.as_tensor(labels, dtype=torch.int64).reshape(-1),  # (N,)
        duration_s=float(video.duration_s),
        t0_s=float(t0_s),
        step_s=float(step_s),
        window_start=int(window_start),
    )


class _Items(Dataset):
    """Shared bits: the dataset, its videos, and ``entries`` (one per item)."""

    def __init__(self, ds: TalDataset, video_ids: list[str], downsample: int) -> None:
        self.ds = ds
        self.downsample = downsample
        self.videos = _videos(ds, video_ids, downsample)
        self.entries: list[tuple[int, int]] = []  # (video index, first kept feature)

    def __len__(self) -> int:
        return len(self.entries)

    def _load(self, video: _Video, first: int, count: int) -> np.ndarray:
        """Kept features ``first .. first + count - 1`` of one video, (T', C) float32."""
        k = self.downsample
        return self.ds.load_feature_range(video.video_id, first * k, (first + count) * k, k)

    def step_s(self, video: _Video) -> float:
        return self.ds.feature_meta.step_s(video.fps, self.downsample)


class WindowItems(_Items):
    """THUMOS-style sliding windows (see the module docstring)."""

    def __init__(
        self,
        ds: TalDataset,
        video_ids: list[str],
        window: int,
        stride: int,
        downsample: int = 1,
        train: bool = False,
        min_inside: float = 0.9,
    ) -> None:
        super().__init__(ds, video_ids, downsample)
        if window < 1 or stride < 1:
            raise TalBenchError(f"window ({window}) and window strides ({stride}) must be >= 1")
        if not 0.0 < min_inside <= 1.0:
            raise TalBenchError(f"data.window_min_inside must be in (0, 1], got {min_inside}")
        self.window, self.stride, self.train = window, stride, train
        self.min_inside = min_inside
        for vi, video in enumerate(self.videos):
            for start in window_starts(video.num_feats, window, stride):
                if not train or len(self._window_gt(video, start)[1]):
                    self.entries.append((vi, start))

    def _window_gt(self, video: _Video, start: int) -> tuple[np.ndarray, np.ndarray]:
        """Segments (grid units of the window) and labels kept in the window at ``start``."""
        t0_s, step_s = video.t0_s(self.ds, start, self.downsample), self.step_s(video)
        segs_x = seconds_to_grid(video.segments_s, t0_s, step_s)  # (N, 2)
        valid = min(self.window, video.num_feats - start)
        lo, hi = -0.5, valid - 0.5  # each feature covers +-half a step around its centre
        if start == 0:  # the first window reaches back to the video start
            lo = min(lo, seconds_to_grid(0.0, t0_s, step_s))
        if start + self.window >= video.num_feats:  # and the last one to its end
            hi = max(hi, seconds_to_grid(video.duration_s, t0_s, step_s))
        kept, keep = clip_segments(segs_x, lo, hi, self.min_inside)
        return kept, video.labels[keep]

    def __getitem__(self, idx: int) -> VideoItem:
        vi, start = self.entries[idx]
        video = self.videos[vi]
        feats = self._load(video, start, self.window)  # (<=L, C)
        segs, labels = self._window_gt(video, start)
        t0_s = video.t0_s(self.ds, start, self.downsample)
        return _make_item(video, feats, self.window, segs, labels, t0_s, self.step_s(video), start)


def window_starts(num_feats: int, window: int, stride: int) -> list[int]:
    """First feature of every window; the last window is right-aligned to the video end."""
    if num_feats <= window:
        return [0]
    starts = list(range(0, num_feats - window + 1, stride))
    if starts[-1] + window < num_feats:
        starts.append(num_feats - window)
    return starts


def resize_features(feats: torch.Tensor, length: int) -> torch.Tensor:
    """Resample (C, T) features to (C, length) like ``roi_align(aligned=True)`` on box [0, T].

    Bin b spans [b, b + 1] * T / length on the continuous axis where feature j sits at j + 0.5;
    it averages n = ceil(T / length) samples at its sub-bin centres, each linearly interpolated
    between the two nearest features (clamped at both ends). Computed in float64.

    Args:
        feats: (C, T) features.
        length: output bins L.

    Returns:
        (C, L) float32.
    """
    dim, num = feats.shape
    n = math.ceil(num / length)
    bin_w = num / length
    b = torch.arange(length, dtype=torch.float64)[:, None]  # (L, 1)
    k = torch.arange(n, dtype=torch.float64)[None, :]  # (1, n)
    pos = (b * bin_w + (k + 0.5) * bin_w / n - 0.5).reshape(-1)  # (L*n,) feature-index axis
    pos = pos.clamp(min=0.0)
    low = pos.floor().long().clamp(max=num - 1)
    high = (low + 1).clamp(max=num - 1)
    frac = torch.where(low >= num - 1, torch.zeros_like(pos), pos - low)
    x = feats.to(torch.float64)
    samples = x[:, low] * (1 - frac) + x[:, high] * frac  # (C, L*n)
    return samples.reshape(dim, length, n).mean(dim=2).to(torch.float32)  # (C, L)


class ResizeItems(_Items):
    """ANet-style: every video resized to ``length`` bins (see the module docstring)."""

    def __init__(
        self,
        ds: TalDataset,
        video_ids: list[str],
        length: int,
        downsample: int = 1,
        train: bool = False,
    ) -> None:
        super().__init__(ds, video_ids, downsample)
        if length < 1:
            raise TalBenchError(f"data.resize_len must be >= 1, got {length}")
        self.length, self.train = length, train
        for vi, video in enumerate(self.videos):
            if not train or len(self._gt(video)[1]):
                self.entries.append((vi, 0))

    def _gt(self, video: _Video) -> tuple[np.ndarray, np.ndarray]:
        step_s = video.duration_s / self.length
        segs, keep = clip_segments(video.segments_s, 0.0, video.duration_s, 0.0)
        return seconds_to_grid(segs, step_s / 2, step_s), video.labels[keep]

    def __getitem__(self, idx: int) -> VideoItem:
        video = self.videos[self.entries[idx][0]]
        feats = torch.from_numpy(self._load(video, 0, video.num_feats))  # (T, C)
        resized = resize_features(feats.T, self.length).numpy().T  # (L, C)
        segs, labels = self._gt(video)
        step_s = video.duration_s / self.length
        return _make_item(video, resized, self.length, segs, labels, step_s / 2, step_s, 0)


class FullVideoItems(_Items):
    """Whole videos; in training, ActionFormer's random truncation (module docstring).

    Crops are drawn from ``generator`` when an item is read, so a run is repeatable with
    ``num_workers=0``; DataLoader workers would each hold a copy of the generator.
    """

    def __init__(
        self,
        ds: TalDataset,
        video_ids: list[str],
        max_len: int,
        downsample: int = 1,
        train: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(ds, video_ids, downsample)
        if max_len < 1:
            raise TalBenchError(f"data.max_len must be >= 1, got {max_len}")
        self.max_len, self.train, self.generator = max_len, train, generator
        for vi, video in enumerate(self.videos):
            if not train or len(video.segments_s):
                self.entries.append((vi, 0))

    def _crop(self, video: _Video) -> tuple[int, int]:
        """(first feature, length) of this draw's crop."""
        num = video.num_feats
        if not self.train:
            return 0, num
        gen = self.generator
        if num > self.max_len:
            length = self.max_len
        else:
            ratio = CROP_RATIO[0] + (CROP_RATIO[1] - CROP_RATIO[0]) * torch.rand(1, generator=gen)
            length = max(1, min(num, int(round(num * float(ratio)))))
        if length == num:
            return 0, num
        segs_x = seconds_to_grid(
            video.segments_s, video.t0_s(self.ds, 0, self.downsample), self.step_s(video)
        )
        for _ in range(TRUNC_TRIES):
            start = int(torch.randint(0, num - length + 1, (1,), generator=gen))
            if len(clip_segments(segs_x, start - 0.5, start + length - 0.5, TRUNC_THRESH)[0]):
                break
        return start, length

    def __getitem__(self, idx: int) -> VideoItem:
        video = self.videos[self.entries[idx][0]]
        start, length = self._crop(video)
        feats = self._load(video, start, length)  # (T', C)
        t0_s, step_s = video.t0_s(self.ds, start, self.downsample), self.step_s(video)
        segs_x = seconds_to_grid(video.segments_s, t0_s, step_s)
        segs, labels = segs_x, video.labels
        if length < video.num_feats:
            segs, keep = clip_segments(segs_x, -0.5, length - 0.5, 0.0)
            labels = video.labels[keep]
        return _make_item(video, feats, feats.shape[0], segs, labels, t0_s, step_s, start)


def build_items(
    ds: TalDataset,
    data_cfg: DataConfig,
    subset: str,
    video_ids: list[str],
    train: bool,
    generator: torch.Generator | None = None,
) -> Dataset:
    """Build the items of ``video_ids`` (all from ``subset``) in the mode ``data_cfg.mode``.

    Args:
        ds: the dataset.
        data_cfg: mode, window / resize / truncation lengths, downsample.
        subset: the subset the ids come from (checked).
        video_ids: videos to use (e.g. a fraction draw).
        train: training items (drop windows / videos without GT, random truncation).
        generator: randomness for ``full`` mode truncation.

    Returns:
        A ``torch.utils.data.Dataset`` of ``VideoItem``.
    """
    in_subset = set(ds.video_ids(subset))
    outside = [v for v in video_ids if v not in in_subset]
    if not video_ids:
        raise TalBenchError(f"no videos to build {subset!r} items from; check the subset/fraction")
    if outside:
        raise TalBenchError(
            f"{len(outside)} video ids are not in subset {subset!r} (first: {outside[:3]})"
        )
    ds.validate_ids(video_ids)
    k = data_cfg.downsample
    if data_cfg.mode == "window":
        stride, inside = data_cfg.stride(train), data_cfg.window_min_inside
        return WindowItems(ds, video_ids, data_cfg.window, stride, k, train, inside)
    if data_cfg.mode == "resize":
        if getattr(ds, "provides", "features") == "frames":
            raise TalBenchError("frames datasets support data.mode window or full, not resize")
        return ResizeItems(ds, video_ids, data_cfg.resize_len, k, train)
    if data_cfg.mode == "full":
        return FullVideoItems(ds, video_ids, data_cfg.max_len, k, train, generator)
    if data_cfg.mode == "auto":
        raise TalBenchError(
            "data.mode 'auto' is resolved per run from the dataset and the detector "
            "(tal_bench.pipelines.resolve.apply_protocol); resolve the config first"
        )
    raise TalBenchError(f"unknown data.mode {data_cfg.mode!r}; use 'window', 'resize' or 'full'")


def collate_items(items: list[VideoItem]) -> list[VideoItem]:
    """DataLoader collate: keep the items as a list (models pad and mask themselves)."""
    return list(items)


def stack_items(items: list[VideoItem]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad items to the longest and stack them.

    Returns:
        (feats (B, C, T_max) float32, mask (B, T_max) bool).
    """
    length = max(int(it["feats"].shape[1]) for it in items)
    dim = int(items[0]["feats"].shape[0])
    feats = torch.zeros(len(items), dim, length, dtype=torch.float32)  # (B, C, T)
    mask = torch.zeros(len(items), length, dtype=torch.bool)  # (B, T)
    for i, it in enumerate(items):
        num = it["feats"].shape[1]
        feats[i, :, :num] = it["feats"]
        mask[i, :num] = it["mask"]
    return feats, mask
