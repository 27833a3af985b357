"""Shared data contracts between the stages. Imports nothing else from tal_bench.

Time conventions (one for the whole project):
* seconds: ``*_s`` names, measured from the start of the video.
* feature grid: the x coordinate on which feature i sits at x = i (ActionFormer convention).
  An item maps grid coordinates to seconds by ``t_s = item["t0_s"] + x * item["step_s"]``;
  ``tal_bench.data.items`` holds the one conversion function used everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NotRequired, TypedDict

import numpy as np

if TYPE_CHECKING:  # torch only in annotations: `talbench evaluate` and `--help` start fast
    import torch


@dataclass
class VideoRecord:
    """One annotated video, as read from any supported annotation format."""

    video_id: str
    subset: str  # normalised: "train" | "val" | "test" | other lower-case name
    subset_raw: str  # exactly as in the file ("Validation", "training", ...)
    duration_s: float
    fps: float | None  # None when the format carries no fps
    segments_s: np.ndarray  # (N, 2) float64 [start_s, end_s]
    labels: list[str]  # (N,) class names
    label_ids: np.ndarray | None = None  # (N,) int64 when the format has integer ids


@dataclass
class Annotations:
    """All videos of one annotation file plus the class list."""

    videos: dict[str, VideoRecord]
    classes: list[str]  # index = integer class id used inside tal_bench
    source_format: str  # "activitynet" | "actionformer" | "opentad" | "tadtr" | "synthetic"
    path: str | None = None
    meta: dict = field(default_factory=dict)

    def subsets(self) -> list[str]:
        return sorted({v.subset for v in self.videos.values()})

    def subset(self, name: str) -> list[VideoRecord]:
        return [v for v in self.videos.values() if v.subset == name]


class VideoItem(TypedDict):
    """One training/eval item (a window, a resized video or a whole video).

    Items of frames datasets also carry ``frames`` (T, 3, t, H, W) uint8 snippet clips (zeros
    on padded steps) and an empty (0, T) ``feats``.
    """

    frames: NotRequired[torch.Tensor]

    video_id: str
    feats: torch.Tensor  # (C, T) float32
    mask: torch.Tensor  # (T,) bool, True on real (non-padded) steps
    segments: torch.Tensor  # (N, 2) float32, grid coordinates relative to this item
    labels: torch.Tensor  # (N,) int64 class ids
    duration_s: float  # whole-video duration
    t0_s: float  # seconds at grid coordinate x = 0 of this item
    step_s: float  # seconds per grid step
    window_start: int  # index of the item's first feature in the video (0 for resize/full)


@dataclass
class ItemDetections:
    """A detector's raw output for one item, in that item's grid coordinates."""

    segments: torch.Tensor  # (K, 2) float32 grid coordinates
    scores: torch.Tensor  # (K,) float32
    labels: torch.Tensor  # (K,) int64 class ids, -1 = class-agnostic proposal


@dataclass
class Detections:
    """Detections over a whole dataset in seconds: what the evaluator scores.

    Rows carry integer indices into the two name lists; names appear only in files.
    """

    video_idx: np.ndarray  # (M,) int64 index into ``video_ids``
    t_start_s: np.ndarray  # (M,) float64
    t_end_s: np.ndarray  # (M,) float64
    label_idx: np.ndarray  # (M,) int64 index into ``classes``; -1 = class-agnostic proposal
    scores: np.ndarray  # (M,) float64
    video_ids: list[str]  # (V,) video names
    classes: list[str]  # (C,) class names

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, rows: np.ndarray) -> Detections:
        """The detections ``rows`` (M',) int indices, with the same name lists."""
        return Detections(
            self.video_idx[rows],
            self.t_start_s[rows],
            self.t_end_s[rows],
            self.label_idx[rows],
            self.scores[rows],
            self.video_ids,
            self.classes,
        )
