"""Train one detector on one training draw and evaluate it: the unit every study repeats.

``train_and_evaluate`` wires the stages: dataset -> fraction draw of the training videos ->
items -> detector -> ``train.fit`` -> per-item predictions -> seconds -> per-video merge of
windows (Gaussian soft-NMS) -> class fusion for class-agnostic detectors (video-level
classifier, ``models.video_classifier``) -> ``evaluate_detections`` on the full test subset.
``run_train`` does the same and writes a run record (``meta.json``, ``rows.jsonl`` with one
``kind: "epoch"`` row per epoch and one ``kind: "result"`` row, ``detections.json`` in the
ActivityNet results format, ``checkpoint.pt``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from tal_bench.config import RunConfig, to_dict
from tal_bench.data import TalDataset, build_items, collate_items, create_dataset, grid_to_seconds
from tal_bench.data.fractions import sample_fraction
from tal_bench.errors import TalBenchError
from tal_bench.evaluation import evaluate_detections, tiou_preset, write_predictions_json
from tal_bench.models import create_model, get_spec
from tal_bench.models.ops.soft_nms import soft_nms_groups
from tal_bench.models.video_classifier import (
    INTERNAL,
    NONE_CLASS_AWARE,
    fuse_classes,
    internal_class_scores,
    load_class_scores,
)
from tal_bench.records import create_run
from tal_bench.train import FitResult, fit, save_checkpoint, seed_everything
from tal_bench.types import Detections

# Per-video raw detections in seconds: (segments (N, 2) float64, scores (N,), labels (N,) int64)
VideoDets = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass
class TrainOutcome:
    """Everything one training + evaluation produced (``summary`` is what callers print)."""

    summary: dict[str, Any]
    detections: Detections
    model: nn.Module
    epochs: list[dict[str, float]] = field(default_factory=list)
    seed_flags: dict[str, Any] = field(default_factory=dict)
    shapes: dict[str, int] = field(default_factory=dict)  # input_dim, num_classes


# ---------------------------------------------------------------------- prediction


def predict_videos(
    model: nn.Module, items: torch.utils.data.Dataset, batch_size: int, num_workers: int = 0
) -> dict[str, list[VideoDets]]:
    """Run ``model.predict`` over ``items`` and convert every detection to seconds.

    Segments are clipped to ``[0, duration_s]``; empty ones are dropped.

    Returns:
        ``{video_id: [per-item (segments_s (N, 2), scores (N,), labels (N,))]}``.
    """
    loader = DataLoader(
        items,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=collate_items,
        num_workers=num_workers,
    )
    out: dict[str, list[VideoDets]] = {}
    model.eval()
    with torch.no_grad():
        for batch in loader:
            for item, det in zip(batch, model.predict(batch), strict=True):
                segs = det.segments.detach().cpu().double().numpy().reshape(-1, 2)  # (N, 2)
                segs_s = grid_to_seconds(segs, item["t0_s"], item["step_s"])
                segs_s = np.clip(segs_s, 0.0, item["duration_s"])
                keep = segs_s[:, 1] > segs_s[:, 0]
                scores = det.scores.detach().cpu().double().numpy()[keep]
                labels = det.labels.detach().cpu().long().numpy()[keep]
                out.setdefault(item["video_id"], []).append((segs_s[keep], scores, labels))
    return out


def merge_video(parts: list[VideoDets], sigma: float, max_dets: int) -> VideoDets:
    """Merge one video's windows: Gaussian soft-NMS per label, then the top ``max_dets``.

    Class-agnostic proposals (label -1) form one group; class-aware detections are suppressed
    only within their class.
    """
    return merge_videos({"": parts}, sigma, max_dets)[""]


def merge_videos(
    per_video: dict[str, list[VideoDets]], sigma: float, max_dets: int
) -> dict[str, VideoDets]:
    """:func:`merge_video` of every video, all (video, label) soft-NMS loops run side by side."""
    groups, where = [], []  # soft-NMS inputs (segments, scores); (video, label) of each
    for vid, parts in per_video.items():
        segs = np.concatenate([p[0] for p in parts]).reshape(-1, 2)  # (N, 2)
        scores = np.concatenate([p[1] for p in parts])  # (N,)
        labels = np.concatenate([p[2] for p in parts])  # (N,)
        for label in np.unique(labels):
            sel = np.flatnonzero(labels == label)
            groups.append((segs[sel], scores[sel]))
            where.append((vid, int(label)))
    kept: dict[str, list[VideoDets]] = {vid: [] for vid in per_video}
    picks = soft_nms_groups(groups, sigma=sigma, max_keep=max_dets)
    for (vid, label), (segs, _), (keep, decayed) in zip(where, groups, picks, strict=True):
        kept[vid].append((segs[keep], decayed, np.full(len(keep), label, dtype=np.int64)))
    return {vid: _top(parts, max_dets) for vid, parts in kept.items()}


def _top(parts: list[VideoDets], max_dets: int) -> VideoDets:
    """The ``max_dets`` highest-scoring detections over a video's label groups."""
    if not parts:
        return np.zeros((0, 2)), np.zeros(0), np.zeros(0, dtype=np.int64)
    segs = np.concatenate([p[0] for p in parts]).reshape(-1, 2)
    scores = np.concatenate([p[1] for p in parts])
    labels = np.concatenate([p[2] for p in parts])
    top = np.argsort(-scores, kind="stable")[:max_dets]
    return segs[top], scores[top], labels[top]


def to_detections(merged: dict[str, VideoDets], classes: list[str]) -> Detections:
    """Per-video arrays -> one ``Detections``; label -1 becomes the empty class name."""
    names = np.asarray([*classes, ""])  # index -1 -> ""
    vids = [np.full(len(s), vid) for vid, (s, _, _) in merged.items()]
    segs = [s for s, _, _ in merged.values()]
    if not segs:
        empty = np.zeros(0)
        return Detections(np.array([], dtype=str), empty, empty, np.array([], dtype=str), empty)
    segs_all = np.concatenate(segs)
    return Detections(
        video_ids=np.concatenate(vids).astype(str),
        t_start_s=segs_all[:, 0],
        t_end_s=segs_all[:, 1],
        labels=names[np.concatenate([lab for _, _, lab in merged.values()])],
        scores=np.concatenate([sc for _, sc, _ in merged.values()]),
    )


def cap_per_video(dets: Detections, max_dets: int) -> Detections:
    """Keep the ``max_dets`` highest-scoring detections of every video."""
    order = np.lexsort((-dets.scores, dets.video_ids))  # by video, then score descending
    vids = dets.video_ids[order]
    first = np.r_[0, np.flatnonzero(vids[1:] != vids[:-1]) + 1]  # start of each video block
    rank = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
    sel = order[rank < max_dets] if len(order) else order
    return Detections(
        dets.video_ids[sel],
        dets.t_start_s[sel],
        dets.t_end_s[sel],
        dets.labels[sel],
        dets.scores[sel],
    )


# ---------------------------------------------------------------------- classes


def classify(
    cfg: RunConfig,
    ds: TalDataset,
    proposals: Detections,
    train_ids: list[str],
    test_ids: list[str],
) -> tuple[Detections, str]:
    """Apply the video-level classifier when the detector is class-agnostic.

    Returns:
        (class-aware detections, the classifier used: "internal-mlp", a path or
        "none (class-aware model)").
    """
    choice = cfg.eval.classifier
    if not get_spec(cfg.model_name).class_agnostic:
        if choice != "auto":
            raise TalBenchError(
                f"model {cfg.model_name!r} is class-aware; eval.classifier applies only to "
                "class-agnostic models, leave it 'auto'"
            )
        return proposals, NONE_CLASS_AWARE
    classes = ds.classes
    if choice in ("auto", "internal"):
        index = {name: i for i, name in enumerate(classes)}
        labels = [[index[n] for n in ds.annotations.videos[v].labels] for v in train_ids]
        scores = internal_class_scores(
            ds.load_features, train_ids, labels, test_ids, len(classes), seed=cfg.train.seed
        )
        used = INTERNAL
    else:
        scores = load_class_scores(choice, classes, test_ids)
        used = str(choice)
    fused = fuse_classes(proposals, scores, classes, cfg.eval.top_k_classes)
    return cap_per_video(fused, cfg.eval.max_dets_per_video), used


# ---------------------------------------------------------------------- the pipeline


def _check(cfg: RunConfig) -> None:
    device = cfg.train.device
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise TalBenchError(f"train.device must be 'cpu' or 'cuda', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TalBenchError("train.device is cuda but no CUDA device is visible; use --device cpu")
    if cfg.train.threads is not None:
        if cfg.train.threads < 1:
            raise TalBenchError(f"train.threads must be >= 1, got {cfg.train.threads}")
        torch.set_num_threads(cfg.train.threads)
    if cfg.train.epochs < 1 or cfg.train.batch_size < 1:
        raise TalBenchError("train.epochs and train.batch_size must be >= 1")


def _evaluate(
    cfg: RunConfig, ds: TalDataset, model: nn.Module, draw_ids: list[str], test_subset: str
) -> tuple[Detections, str, Any, int]:
    test_ids = ds.video_ids(test_subset)
    items = build_items(ds, cfg.data, test_subset, test_ids, train=False)
    per_video = predict_videos(model, items, cfg.train.batch_size, cfg.data.num_workers)
    merged = merge_videos(
        dict(sorted(per_video.items())), cfg.eval.nms_sigma, cfg.eval.max_dets_per_video
    )
    dets, used = classify(cfg, ds, to_detections(merged, ds.classes), draw_ids, test_ids)
    result = evaluate_detections(
        ds.annotations, test_subset, dets, tiou_preset(cfg.eval.tiou), dedup=cfg.eval.dedup
    )
    return dets, used, result, len(test_ids)


def execute(cfg: RunConfig, progress: bool = True, on_epoch: Any = None) -> TrainOutcome:
    """Train and evaluate; return the summary together with the model and detections.

    ``peak_mem_mib`` is the peak over training (CUDA: max allocated; CPU: the process's peak
    RSS), ``eval_time_s`` covers prediction, merging, classification and scoring.

    Args:
        cfg: the resolved run config (``resolve_run_config``).
        progress: show progress bars on stderr.
        on_epoch: called with each epoch's log dict as soon as that epoch ends.
    """
    _check(cfg)
    seed = cfg.train.seed
    generator, flags = seed_everything(seed, cfg.train.deterministic, cfg.train.device)
    ds = create_dataset(cfg.data.dataset, cfg.data.root)
    encoder = getattr(getattr(cfg.model, "encoder", None), "kind", "none")
    if getattr(ds, "provides", "features") == "frames" and encoder == "none":
        raise TalBenchError(
            f"dataset {cfg.data.dataset!r} gives video frames; model {cfg.model_name!r} needs a "
            "video encoder: set model.encoder.kind=tsm (etad: --preset egs)"
        )
    train_subset = ds.resolve_subset(cfg.data.train_subset)
    test_subset = ds.resolve_subset(cfg.data.test_subset)
    draw = sample_fraction(ds.annotations, train_subset, cfg.data.fraction, cfg.data.slice, seed)
    draw_ids = list(draw.video_ids)
    item_gen = torch.Generator().manual_seed(seed + 1)  # full-mode crops, apart from shuffling
    train_items = build_items(ds, cfg.data, train_subset, draw_ids, True, item_gen)
    input_dim, num_classes = ds.feature_meta.input_dim, len(ds.classes)
    torch.manual_seed(seed)  # the weight init does not depend on what the data layer drew
    model = create_model(cfg.model_name, cfg.model, input_dim, num_classes)
    if hasattr(model, "prepare"):  # e.g. load a video encoder's pretrained weights
        model.prepare(ds, train_subset)
    model = model.to(cfg.train.device)
    fitted = fit(
        model,
        train_items,
        cfg.train,
        collate_items,
        generator,
        cfg.data.num_workers,
        progress=progress,
        on_epoch=on_epoch,
    )
    start = time.perf_counter()
    dets, used, result, num_test = _evaluate(cfg, ds, fitted.model, draw_ids, test_subset)
    summary = {
        "model": cfg.model_name,
        "preset": cfg.preset,
        "dataset": cfg.data.dataset,
        "device": cfg.train.device,
        "threads": torch.get_num_threads(),
        **_map_columns(result),
        **_fit_columns(fitted),
        "eval_time_s": time.perf_counter() - start,
        "params": sum(p.numel() for p in model.parameters()),
        "epochs": cfg.train.epochs,
        "num_train_videos": draw.n_drawn,
        "num_train_videos_total": draw.n_total,
        "num_train_items": len(train_items),
        "num_test_videos": num_test,
        "num_detections": len(dets),
        "video_ids_hash": draw.ids_hash,
        "classifier": used,
        "seed": seed,
        "fraction_pct": cfg.data.fraction,
        "slice": cfg.data.slice,
    }
    shapes = {"input_dim": input_dim, "num_classes": num_classes}
    return TrainOutcome(summary, dets, fitted.model, fitted.epochs, flags, shapes)


def _fit_columns(fitted: FitResult) -> dict[str, Any]:
    """Training time, peak memory (during training) and the last epoch's loss."""
    probe = {}
    if fitted.step_mem_kind is not None:  # train.mem_probe
        probe = {"step_mem_mib": fitted.step_mem_mib, "step_mem_kind": fitted.step_mem_kind}
    return {
        "train_time_s": fitted.train_time_s,
        "train_cpu_s": fitted.train_cpu_s,
        "peak_mem_mib": fitted.peak_mem_mib,
        "peak_mem_kind": fitted.peak_mem_kind,
        **probe,
        "final_loss": fitted.epochs[-1]["loss"] if fitted.epochs else math.nan,
    }


def _map_columns(result: Any) -> dict[str, Any]:
    """mAP in points 0-100: ``average_mAP``, ``mAP`` {"0.30": ...}, flat ``map_*`` columns."""
    per_tiou = {f"{float(t):.2f}": 100.0 * float(v) for t, v in sorted(result.mAP.items())}
    average = 100.0 * float(result.average_mAP)
    return {
        "average_mAP": average,
        "mAP": per_tiou,
        "map_avg_pct": average,
        **{f"map_pct_at_{t}": v for t, v in per_tiou.items()},
    }


def train_and_evaluate(cfg: RunConfig, progress: bool = True) -> dict[str, Any]:
    """Train ``cfg.model_name`` on one fraction draw and evaluate on the full test subset.

    Args:
        cfg: the resolved run config (``resolve_run_config``).
        progress: show progress bars on stderr.

    Returns:
        The flat summary (keys in docs/ARCHITECTURE.md; mAP in points 0-100). Writes no files.

    Example:
        >>> cfg = resolve_run_config("dummy", "cpu", ["data.dataset=synthetic-tiny"])
        >>> train_and_evaluate(cfg, progress=False)["average_mAP"]  # doctest: +SKIP
    """
    return execute(cfg, progress).summary


# ---------------------------------------------------------------------- the run record


def run_train(cfg: RunConfig, out_dir: str | Path | None, progress: bool = True) -> dict[str, Any]:
    """:func:`train_and_evaluate` plus a run record in ``out_dir``.

    Writes ``meta.json`` (resolved config, seeds), ``rows.jsonl`` (one ``kind: "epoch"`` row
    per epoch as it ends, one ``kind: "result"`` row; a failure is a ``status: "failed"``
    row), ``detections.json`` and ``checkpoint.pt``.

    Returns:
        The summary plus ``run_dir``.
    """
    config = to_dict(cfg)
    seeds = {"train": cfg.train.seed, "fraction_draw": cfg.train.seed, "slice": cfg.data.slice}
    run = create_run(out_dir, "train", config, seeds)
    if any(r.get("kind") == "result" and r.get("status") == "ok" for r in run.rows()):
        raise TalBenchError(f"{run.path} already holds a finished training; pass a new --out")
    tags = {"model": cfg.model_name, "seed": cfg.train.seed, "fraction_pct": cfg.data.fraction}
    try:
        outcome = execute(
            cfg, progress, on_epoch=lambda row: run.append_row({"kind": "epoch", **tags, **row})
        )
    except BaseException as exc:
        error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        run.append_row({"kind": "result", "status": "failed", **tags, "error": error})
        run.finish("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    summary = outcome.summary
    flat = {k: v for k, v in summary.items() if k != "mAP"}
    flags = {f"flag_{k}": v for k, v in outcome.seed_flags.items()}
    run.append_row({"kind": "result", "status": "ok", **flat, **flags})
    write_predictions_json(outcome.detections, run.path / "detections.json")
    extra = {"model_name": cfg.model_name, **outcome.shapes}
    save_checkpoint(run.path / "checkpoint.pt", outcome.model, config, cfg.train.epochs, extra)
    run.finish("ok")
    return {**summary, "run_dir": str(run.path)}
