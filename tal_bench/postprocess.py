"""Inference post-processing: what runs once between a detector's ``predict`` and the evaluator.

A detector's ``predict`` does its own per-item work (ETAD: boundary filter and Gaussian soft-NMS
per window; the ActionFormer family: its multi-class NMS per video) and returns detections in
the item's grid coordinates. This module then, in this order:

1. converts each item's detections to seconds of its video, clipped to ``[0, duration]``
   (:func:`item_part`);
2. merges the items of each video with a **window-merge rule** (:data:`WINDOW_MERGES`). Only
   window mode has several items per video: there the detector's rule runs (``soft_nms``: the
   per-label Gaussian soft-NMS over all windows of a video that OpenTAD applies after ETAD / BMN
   on THUMOS-14). In resize and full mode a video is one item, already suppressed by the
   detector, so the rule is ``none`` (concatenate, keep the best ``max_dets_per_video``);
3. gives class-agnostic proposals their classes from a video-level classifier (the top-k
   classes of the video, score product; ``models.video_classifier``), then caps each video at
   ``max_dets_per_video`` again (:func:`fuse_video_classes`).

What a detector wants here is its ``ModelSpec.post`` declaration (``models.base.PostDecl``);
the resolved values live in the run's ``eval`` config (``window_merge``, ``merge_params``,
``top_k_classes``, ``max_dets_per_video``, ``classifier``) and so in every run record.

A merge rule is a function ``merge(videos, params, max_dets) -> {video_id: VideoDets}`` plus a
parameter dataclass, registered with :func:`register_window_merge`: ``soft_nms`` (ETAD, BMN),
``overlap_nms`` (TadTR's class-wise hard NMS on the windows' overlap regions) and ``none``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tal_bench.config import AUTO, EvalConfig, from_dict, to_dict
from tal_bench.data.items import grid_to_seconds
from tal_bench.errors import TalBenchError
from tal_bench.models.base import ModelSpec
from tal_bench.models.ops.soft_nms import soft_nms_groups
from tal_bench.models.ops.window_nms import overlap_region_nms
from tal_bench.models.video_classifier import (
    INTERNAL,
    NONE_CLASS_AWARE,
    fuse_classes,
    internal_class_scores,
    load_class_scores,
)
from tal_bench.registry import Registry
from tal_bench.types import Detections, ItemDetections, VideoItem

if TYPE_CHECKING:
    from tal_bench.data import TalDataset

# One video's detections in seconds: (segments (N, 2) float64, scores (N,), labels (N,) int64)
VideoDets = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass
class ItemPart:
    """One item's detections in seconds of its video, and the seconds the item covers."""

    segments_s: np.ndarray  # (N, 2) float64, inside [0, duration]
    scores: np.ndarray  # (N,) float64
    labels: np.ndarray  # (N,) int64, -1 = class-agnostic proposal
    span_s: tuple[float, float]  # [first step - half a step, last valid step + half a step]


def item_part(item: VideoItem, det: ItemDetections) -> ItemPart:
    """An item's detections (grid coordinates) -> seconds, clipped to the video; empty dropped."""
    segs = det.segments.detach().cpu().double().numpy().reshape(-1, 2)  # (N, 2)
    segs_s = np.clip(grid_to_seconds(segs, item["t0_s"], item["step_s"]), 0.0, item["duration_s"])
    keep = segs_s[:, 1] > segs_s[:, 0]
    valid = int(item["mask"].sum())
    lo, hi = grid_to_seconds(np.array([-0.5, valid - 0.5]), item["t0_s"], item["step_s"])
    return ItemPart(
        segments_s=segs_s[keep],
        scores=det.scores.detach().cpu().double().numpy()[keep],
        labels=det.labels.detach().cpu().long().numpy()[keep],
        span_s=(max(0.0, float(lo)), min(item["duration_s"], float(hi))),
    )


# ---------------------------------------------------------------------- window-merge rules


@dataclass(frozen=True)
class WindowMerge:
    """A registered rule merging the items of each video into one set of detections."""

    name: str
    params_cls: type  # dataclass of the rule's parameters (eval.merge_params)
    merge: Callable[[dict[str, list[ItemPart]], Any, int], dict[str, VideoDets]]
    description: str


WINDOW_MERGES: Registry[WindowMerge] = Registry("window-merge rule")
NO_MERGE = "none"  # eval.window_merge: one item per video, nothing to merge
NO_CLASSIFIER = "none"  # eval.classifier of class-aware detectors


def register_window_merge(rule: WindowMerge) -> WindowMerge:
    """Add ``rule`` to :data:`WINDOW_MERGES` (its name must be new)."""
    return WINDOW_MERGES.register(rule.name)(rule)


def _concat(parts: list[VideoDets]) -> VideoDets:
    if not parts:
        return np.zeros((0, 2)), np.zeros(0), np.zeros(0, dtype=np.int64)
    return (
        np.concatenate([p[0] for p in parts]).reshape(-1, 2),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def concat_items(parts: list[ItemPart]) -> VideoDets:
    """All detections of a video's items, in item order."""
    return _concat([(p.segments_s, p.scores, p.labels) for p in parts])


def top_dets(dets: VideoDets, max_dets: int) -> VideoDets:
    """The ``max_dets`` highest-scoring detections (stable order among equal scores)."""
    segs, scores, labels = dets
    top = np.argsort(-scores, kind="stable")[:max_dets]
    return segs[top], scores[top], labels[top]


@dataclass(frozen=True)
class NoMergeParams:
    """``none`` has no parameters."""


def merge_none(
    videos: dict[str, list[ItemPart]], params: Any, max_dets: int
) -> dict[str, VideoDets]:
    """Concatenate each video's items and keep its ``max_dets`` best (one item per video: the
    detector's own output, untouched but for the cap)."""
    del params
    return {vid: top_dets(concat_items(parts), max_dets) for vid, parts in videos.items()}


@dataclass(frozen=True)
class SoftNmsParams:
    sigma: float = 0.3  # Gaussian width: a kept segment decays others by exp(-tIoU^2 / sigma)

    def __post_init__(self) -> None:
        if self.sigma <= 0:
            raise TalBenchError(f"eval.merge_params.sigma must be > 0, got {self.sigma}")


def merge_soft_nms(
    videos: dict[str, list[ItemPart]], params: SoftNmsParams, max_dets: int
) -> dict[str, VideoDets]:
    """Gaussian soft-NMS over all windows of a video, per label, then its ``max_dets`` best.

    Class-agnostic proposals (label -1) form one group; class-aware detections are suppressed
    only within their class. Every (video, label) soft-NMS loop runs side by side
    (``soft_nms_groups``); each keeps at most ``max_dets``.
    """
    groups, where = [], []  # soft-NMS inputs (segments, scores); (video, label) of each
    for vid, parts in videos.items():
        segs, scores, labels = concat_items(parts)
        for label in np.unique(labels):
            sel = np.flatnonzero(labels == label)
            groups.append((segs[sel], scores[sel]))
            where.append((vid, int(label)))
    kept: dict[str, list[VideoDets]] = {vid: [] for vid in videos}
    picks = soft_nms_groups(groups, sigma=params.sigma, max_keep=max_dets)
    for (vid, label), (segs, _), (keep, decayed) in zip(where, groups, picks, strict=True):
        kept[vid].append((segs[keep], decayed, np.full(len(keep), label, dtype=np.int64)))
    return {vid: top_dets(_concat(label_parts), max_dets) for vid, label_parts in kept.items()}


register_window_merge(
    WindowMerge(NO_MERGE, NoMergeParams, merge_none, "one item per video: keep the best N")
)
register_window_merge(
    WindowMerge(
        "soft_nms",
        SoftNmsParams,
        merge_soft_nms,
        "Gaussian soft-NMS per label over all windows of a video (OpenTAD, ETAD / BMN on THUMOS)",
    )
)


@dataclass(frozen=True)
class OverlapNmsParams:
    iou: float = 0.4  # class-wise hard-NMS threshold (TadTR's nms_thr)

    def __post_init__(self) -> None:
        if not 0.0 <= self.iou <= 1.0:
            raise TalBenchError(f"eval.merge_params.iou must be in [0, 1], got {self.iou}")


def merge_overlap_nms(
    videos: dict[str, list[ItemPart]], params: OverlapNmsParams, max_dets: int
) -> dict[str, VideoDets]:
    """TadTR's cross-window fusion (``models.ops.window_nms.overlap_region_nms``): class-wise
    hard NMS only on the detections touching an overlap of adjacent windows; then the video's
    ``max_dets`` best (TadTR's declaration keeps every detection)."""
    out = {}
    for vid, parts in videos.items():
        segs, scores, labels = concat_items(parts)
        spans = np.array([p.span_s for p in parts]).reshape(-1, 2)
        keep = overlap_region_nms(segs, scores, labels, spans, params.iou)
        out[vid] = top_dets((segs[keep], scores[keep], labels[keep]), max_dets)
    return out


register_window_merge(
    WindowMerge(
        "overlap_nms",
        OverlapNmsParams,
        merge_overlap_nms,
        "class-wise hard NMS on the windows' overlap regions only (TadTR's cross-window fusion)",
    )
)


def merge_windows(videos: dict[str, list[ItemPart]], ev: EvalConfig) -> dict[str, VideoDets]:
    """Merge every video's items with the resolved rule ``ev.window_merge``; videos sorted."""
    rule = WINDOW_MERGES.get(ev.window_merge)
    params = from_dict(rule.params_cls, ev.merge_params, prefix="eval.merge_params.")
    if ev.max_dets_per_video is None or ev.max_dets_per_video < 1:
        raise TalBenchError("eval.max_dets_per_video must be >= 1 (resolve the config first)")
    return rule.merge(dict(sorted(videos.items())), params, ev.max_dets_per_video)


# ---------------------------------------------------------------------- Detections


def to_detections(merged: dict[str, VideoDets], classes: list[str]) -> Detections:
    """Per-video arrays -> one ``Detections`` indexing ``list(merged)`` and ``classes``."""
    counts = [len(s) for s, _, _ in merged.values()]
    segs = np.concatenate([s for s, _, _ in merged.values()] or [np.zeros((0, 2))])  # (M, 2)
    return Detections(
        video_idx=np.repeat(np.arange(len(merged)), counts),
        t_start_s=segs[:, 0],
        t_end_s=segs[:, 1],
        label_idx=np.concatenate([lab for _, _, lab in merged.values()] or [np.zeros(0, int)]),
        scores=np.concatenate([sc for _, sc, _ in merged.values()] or [np.zeros(0)]),
        video_ids=list(merged),
        classes=list(classes),
    )


def cap_per_video(dets: Detections, max_dets: int) -> Detections:
    """Keep the ``max_dets`` highest-scoring detections of every video."""
    order = np.lexsort((-dets.scores, dets.video_idx))  # by video, then score descending
    vids = dets.video_idx[order]
    first = np.r_[0, np.flatnonzero(vids[1:] != vids[:-1]) + 1]  # start of each video block
    rank = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
    return dets.take(order[rank < max_dets] if len(order) else order)


# ---------------------------------------------------------------------- class fusion


@dataclass
class FusionContext:
    """What a video-level classifier needs besides the proposals."""

    ds: TalDataset
    train_ids: list[str]  # the detector's training draw (the internal classifier's too)
    test_ids: list[str]  # the videos to label
    seed: int
    pooled: dict[str, np.ndarray] | None = None  # pool_video of videos, when already done


def fuse_video_classes(
    proposals: Detections, ev: EvalConfig, ctx: FusionContext
) -> tuple[Detections, str]:
    """Label class-agnostic proposals with the resolved video-level classifier.

    ``ev.classifier == "none"`` (class-aware detectors) returns ``proposals`` unchanged.
    ``"internal"`` trains the harness's classifier on ``ctx.train_ids``; anything else is a
    score file. Each proposal becomes ``ev.top_k_classes``
    detections; every video then keeps its ``ev.max_dets_per_video`` best.

    Returns:
        (class-aware detections, the classifier used: "internal-mlp", a path or
        "none (class-aware model)").
    """
    if ev.classifier == NO_CLASSIFIER:
        return proposals, NONE_CLASS_AWARE
    ds, train_ids, classes = ctx.ds, ctx.train_ids, ctx.ds.classes
    if ev.classifier == "internal":
        index = {name: i for i, name in enumerate(classes)}
        labels = [[index[n] for n in ds.annotations.videos[v].labels] for v in train_ids]
        scores = internal_class_scores(
            ds.load_features,
            train_ids,
            labels,
            ctx.test_ids,
            len(classes),
            seed=ctx.seed,
            pooled=ctx.pooled,
        )
        used = INTERNAL
    else:
        scores = load_class_scores(ev.classifier, classes, ctx.test_ids)
        used = str(ev.classifier)
    fused = fuse_classes(proposals, scores, classes, ev.top_k_classes or 0)
    return cap_per_video(fused, ev.max_dets_per_video or 0), used


def postprocess_videos(
    videos: dict[str, list[ItemPart]], ev: EvalConfig, ctx: FusionContext
) -> tuple[Detections, str]:
    """Steps 2-3 of the module docstring on every test video: merge, then class fusion."""
    merged = merge_windows(videos, ev)
    return fuse_video_classes(to_detections(merged, ctx.ds.classes), ev, ctx)


# ---------------------------------------------------------------------- resolution


def resolve_post(ev: EvalConfig, spec: ModelSpec, mode: str) -> EvalConfig:
    """Fill the ``eval`` post-processing fields left at "the detector's" from ``spec.post``.

    ``window_merge`` "auto" is the detector's rule in window mode and ``none`` otherwise (a
    video is one item); ``merge_params`` are the detector's for its own rule, overridden key by
    key by the config's, and come back complete (every parameter of the rule, so the record
    says what ran). ``classifier`` "auto" is ``internal`` for class-agnostic detectors and
    ``none`` for class-aware ones.

    Raises:
        TalBenchError: unknown rule or parameter, or a classifier the detector cannot use.
    """
    decl = spec.post
    merge = ev.window_merge
    if merge == AUTO:
        merge = decl.window_merge if mode == "window" else NO_MERGE
    rule = WINDOW_MERGES.get(merge)
    given = dict(decl.merge_params) if merge == decl.window_merge else {}
    params = from_dict(rule.params_cls, {**given, **ev.merge_params}, "eval.merge_params.")
    classifier = ev.classifier
    if classifier == AUTO:
        classifier = "internal" if spec.class_agnostic else NO_CLASSIFIER
    if not spec.class_agnostic and classifier != NO_CLASSIFIER:
        raise TalBenchError(
            f"model {spec.name!r} is class-aware; eval.classifier applies only to "
            "class-agnostic models, leave it 'auto'"
        )
    if spec.class_agnostic and classifier == NO_CLASSIFIER:
        raise TalBenchError(
            f"model {spec.name!r} outputs class-agnostic proposals and needs a video-level "
            "classifier: set eval.classifier to 'internal' or a score file"
        )
    top_k = ev.top_k_classes if ev.top_k_classes is not None else decl.top_k_classes
    max_dets = decl.max_dets_per_video if ev.max_dets_per_video is None else ev.max_dets_per_video
    if top_k < 1 or max_dets < 1:
        raise TalBenchError(
            "eval.top_k_classes and eval.max_dets_per_video must be >= 1, got "
            f"{top_k} and {max_dets}"
        )
    return dataclasses.replace(
        ev,
        classifier=classifier,
        top_k_classes=top_k if spec.class_agnostic else None,
        max_dets_per_video=max_dets,
        window_merge=merge,
        merge_params=to_dict(params),
    )
