"""Train one detector on one training draw and evaluate it: the unit every study repeats.

``train_and_evaluate`` wires the stages: dataset -> fraction draw of the training videos ->
items -> detector -> ``train.fit`` -> per-item predictions -> ``tal_bench.postprocess``
(seconds, the detector's window merge in window mode, video-level class fusion for
class-agnostic detectors) -> ``evaluate_detections`` on the full test subset.
``run_train`` does the same and writes a run record (``meta.json``, ``rows.jsonl`` with one
``kind: "epoch"`` row per epoch and one ``kind: "result"`` row, ``detections.json`` in the
ActivityNet results format, ``checkpoint.pt``).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from tal_bench.config import AUTO, RunConfig, to_dict
from tal_bench.data import TalDataset, build_items, collate_items, open_dataset
from tal_bench.data.fractions import DRAWS, sample_fraction
from tal_bench.errors import TalBenchError
from tal_bench.evaluation import evaluate_detections, tiou_preset, write_predictions_json
from tal_bench.models import create_model
from tal_bench.pipelines.resolve import apply_protocol
from tal_bench.pipelines.shared import EvalInputs, shared_eval_inputs
from tal_bench.postprocess import FusionContext, ItemPart, item_part, postprocess_videos
from tal_bench.records import create_run
from tal_bench.train import FitResult, fit, save_checkpoint, seed_everything
from tal_bench.types import Detections


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
) -> dict[str, list[ItemPart]]:
    """Run ``model.predict`` over ``items``; every item's detections in seconds of its video.

    A detector with ``predict_batches(batches)`` (ETAD) gets the whole pass at once, so that it
    can reuse work between batches; its detections are those of ``predict`` batch by batch.

    Returns:
        ``{video_id: [one ItemPart per item, in item order]}`` (``postprocess.item_part``).
    """
    loader = DataLoader(
        items,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=collate_items,
        num_workers=num_workers,
    )
    out: dict[str, list[ItemPart]] = {}
    model.eval()
    whole_pass = getattr(model, "predict_batches", None)
    with torch.no_grad():
        pairs = whole_pass(loader) if whole_pass else ((b, model.predict(b)) for b in loader)
        for batch, dets in pairs:
            for item, det in zip(batch, dets, strict=True):
                out.setdefault(item["video_id"], []).append(item_part(item, det))
    return out


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
    check_protocol(cfg)


BUDGETS = ("epochs", "steps")
CLASSIFIER_DATA = ("fraction", "all")


def check_protocol(cfg: RunConfig) -> None:
    """The data-scaling protocol options: ``train.budget``, ``data.draw``, ``eval.classifier_data``.

    Raises:
        TalBenchError: an unknown value, or ``classifier_data="all"`` for a model whose classes
            do not come from the internal classifier.
    """
    if cfg.train.budget not in BUDGETS:
        raise TalBenchError(f"train.budget must be one of {', '.join(BUDGETS)}, got "
                            f"{cfg.train.budget!r}")  # fmt: skip
    if cfg.data.draw not in DRAWS:
        raise TalBenchError(f"data.draw must be one of {', '.join(DRAWS)}, got {cfg.data.draw!r}")
    if cfg.eval.classifier_data not in CLASSIFIER_DATA:
        raise TalBenchError(f"eval.classifier_data must be one of {', '.join(CLASSIFIER_DATA)}, "
                            f"got {cfg.eval.classifier_data!r}")  # fmt: skip
    if cfg.eval.classifier_data == "all" and cfg.eval.classifier not in ("internal", AUTO):
        raise TalBenchError(
            "eval.classifier_data=all trains the internal video-level classifier on every "
            f"training video; eval.classifier is {cfg.eval.classifier!r}: set it to internal "
            "(class-agnostic detectors) or drop classifier_data"
        )


def classifier_videos(cfg: RunConfig, ds: TalDataset, draw_ids: list[str]) -> list[str]:
    """Videos the internal video-level classifier learns from: the detector's draw, or with
    ``eval.classifier_data="all"`` every training video (as fixed external scores would)."""
    if cfg.eval.classifier_data == "all":
        return ds.video_ids(cfg.data.train_subset)
    return draw_ids


def _evaluate(
    cfg: RunConfig,
    ds: TalDataset,
    model: nn.Module,
    draw_ids: list[str],
    test_subset: str,
    shared: EvalInputs | None,
) -> tuple[Detections, str, Any, int]:
    test_ids = ds.video_ids(test_subset) if shared is None else shared.video_ids
    if shared is not None and shared.items is not None:
        items = shared.items  # the grid's copy of the same items (pipelines/shared.py)
    else:
        items = build_items(ds, cfg.data, test_subset, test_ids, train=False)
    per_video = predict_videos(model, items, cfg.train.batch_size, cfg.data.num_workers)
    pooled = None if shared is None else shared.pooled
    ctx = FusionContext(ds, classifier_videos(cfg, ds, draw_ids), test_ids, cfg.train.seed, pooled)
    dets, used = postprocess_videos(per_video, cfg.eval, ctx)
    result = evaluate_detections(
        ds.annotations, test_subset, dets, tiou_preset(cfg.eval.tiou), dedup=cfg.eval.dedup
    )
    return dets, used, result, len(test_ids)


@contextlib.contextmanager
def _random_states_kept(device: str) -> Iterator[None]:
    """Restore Python's, NumPy's and torch's random states on exit: an evaluation between
    epochs (which may seed the video-level classifier) leaves training as it would have been."""
    states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    cuda = torch.cuda.get_rng_state_all() if device.startswith("cuda") else None
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def _passes(cfg: RunConfig, num_items: int, budget: int | None) -> int:
    """Passes ``train.fit`` makes over ``num_items`` training items (its epochs)."""
    if budget is None:
        return cfg.train.epochs
    return math.ceil(cfg.train.epochs * budget / math.ceil(num_items / cfg.train.batch_size))


def execute(
    cfg: RunConfig,
    progress: bool = True,
    on_epoch: Any = None,
    shared_dir: str | Path | None = None,
    on_epoch_eval: Callable[[int, dict[str, Any]], None] | None = None,
) -> TrainOutcome:
    """Train and evaluate; return the summary together with the model and detections.

    ``peak_mem_mib`` is the peak over training (CUDA: max allocated; CPU: the process's peak
    RSS), ``eval_time_s`` covers prediction, merging, classification and scoring.

    Args:
        cfg: the run config (``resolve_run_config``; "auto" values are resolved here too).
        progress: show progress bars on stderr.
        on_epoch: called with each epoch's log dict as soon as that epoch ends.
        shared_dir: a grid's directory for the test items and pooled features its cells share
            (``pipelines/shared.py``); the results are the same with or without it.
        on_epoch_eval: when given, the weights being trained are also evaluated after every
            epoch but the last (whose evaluation is the run's own), as TadTR's official code
            does (xlliu7/TadTR, main.py), and ``on_epoch_eval(epoch, {"map_avg_pct", ...,
            "eval_time_s"})`` gets each result; every random state is restored afterwards, so
            training and the final result are those of a run without it.
    """
    cfg = apply_protocol(cfg)
    _check(cfg)
    seed = cfg.train.seed
    generator, flags = seed_everything(seed, cfg.train.deterministic, cfg.train.device)
    ds = open_dataset(cfg.data)
    if getattr(ds, "provides", "features") == "frames":
        from tal_bench.pipelines.checks import check_frames_model

        check_frames_model(cfg)
    train_subset = ds.resolve_subset(cfg.data.train_subset)
    test_subset = ds.resolve_subset(cfg.data.test_subset)
    draw = sample_fraction(ds.annotations, train_subset, cfg.data.fraction, cfg.data.slice, seed,
                           draw=cfg.data.draw, nested=cfg.data.nested)  # fmt: skip
    draw_ids = list(draw.video_ids)
    item_gen = torch.Generator().manual_seed(seed + 1)  # full-mode crops, apart from shuffling
    train_items = build_items(ds, cfg.data, train_subset, draw_ids, True, item_gen)
    budget = _full_data_iters(ds, cfg, train_subset) if cfg.train.budget == "steps" else None
    input_dim, num_classes = ds.feature_meta.input_dim, len(ds.classes)
    torch.manual_seed(seed)  # the weight init does not depend on what the data layer drew
    model = create_model(cfg.model_name, cfg.model, input_dim, num_classes)
    if hasattr(model, "prepare"):  # e.g. load a video encoder's pretrained weights
        model.prepare(ds, train_subset)
    model = model.to(cfg.train.device)
    epoch_done = on_epoch
    if on_epoch_eval is not None:
        last = _passes(cfg, len(train_items), budget)

        def epoch_done(row: dict[str, Any]) -> None:
            if on_epoch is not None:
                on_epoch(row)
            if int(row["epoch"]) < last:
                start = time.perf_counter()
                with _random_states_kept(cfg.train.device):
                    result = _evaluate(cfg, ds, model, draw_ids, test_subset, None)[2]
                cols = {**_map_columns(result), "eval_time_s": time.perf_counter() - start}
                on_epoch_eval(int(row["epoch"]), cols)

    fitted = fit(
        model,
        train_items,
        cfg.train,
        collate_items,
        generator,
        cfg.data.num_workers,
        progress=progress,
        on_epoch=epoch_done,
        budget_iters_per_epoch=budget,
    )
    start = time.perf_counter()
    shared = None
    if shared_dir is not None:
        shared = shared_eval_inputs(ds, cfg, train_subset, test_subset, shared_dir)
    dets, used, result, num_test = _evaluate(cfg, ds, fitted.model, draw_ids, test_subset, shared)
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
        "train_steps": int(sum(e["iters"] for e in fitted.epochs)),
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


def _full_data_iters(ds: TalDataset, cfg: RunConfig, train_subset: str) -> int:
    """Iterations of one epoch over every training video: the step budget's epoch."""
    all_ids = ds.video_ids(train_subset)
    items = build_items(ds, cfg.data, train_subset, all_ids, True, torch.Generator().manual_seed(0))
    return math.ceil(len(items) / cfg.train.batch_size)


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


def train_and_evaluate(
    cfg: RunConfig, progress: bool = True, shared_dir: str | Path | None = None
) -> dict[str, Any]:
    """Train ``cfg.model_name`` on one fraction draw and evaluate on the full test subset.

    Args:
        cfg: the resolved run config (``resolve_run_config``).
        progress: show progress bars on stderr.
        shared_dir: see :func:`execute` (grids pass their run's shared directory).

    Returns:
        The flat summary (keys in docs/ARCHITECTURE.md; mAP in points 0-100). Writes no files.

    Example:
        >>> cfg = resolve_run_config("dummy", "cpu", ["data.dataset=synthetic-tiny"])
        >>> train_and_evaluate(cfg, progress=False)["average_mAP"]  # doctest: +SKIP
    """
    return execute(cfg, progress, shared_dir=shared_dir).summary


# ---------------------------------------------------------------------- the run record


def run_train(
    cfg: RunConfig,
    out_dir: str | Path | None,
    progress: bool = True,
    note: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """:func:`train_and_evaluate` plus a run record in ``out_dir``.

    Everything that can be checked is checked first (``tal_bench.pipelines.checks``: options,
    config, ``out_dir``, dataset, feature files); a user error there writes nothing. Then it
    writes ``meta.json`` (resolved config, seeds), ``rows.jsonl`` (one ``kind: "epoch"`` row
    per epoch as it ends, one ``kind: "result"`` row; a failure during training is a
    ``status: "failed"`` row and meta status ``failed``), ``detections.json`` and
    ``checkpoint.pt``.

    Args:
        cfg: the run config.
        out_dir: run directory (None = ``runs/train/<stamp>_<sha>``).
        progress: show progress bars on stderr.
        note: called with each note about the data (e.g. segments outside their video).

    Returns:
        The summary plus ``run_dir``.
    """
    from tal_bench.pipelines.checks import check_run

    cfg = apply_protocol(cfg)
    check_run(cfg, out_dir, note)
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
