"""Everything a training command can check before it writes anything.

``talbench train``, the grids and ``profile --mode train`` call :func:`check_run` (or
:func:`check_grid`) before they create a run directory, so a wrong option, config value, dataset
or feature file is one line and exit code 2 with nothing written (``tal_bench.errors``). What
can only fail while real work runs (divergence, out of memory, a crashed worker) stays a failed
row of the run (``results/README.md``). Cheap checks come first: the options and the config,
the output directory, then the dataset (annotations, subsets, the training draw), the detector
built once at the dataset's width, and last every value of every feature file the run will read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tal_bench.config import RunConfig
from tal_bench.errors import TalBenchError

Note = Callable[[str], None]


def check_device(device: str, option: str = "train.device") -> None:
    """``cpu``, ``cuda`` or ``cuda:N`` that torch can see."""
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        raise TalBenchError(f"{option} must be cpu, cuda or cuda:N, got {device!r}")
    if kind == "cuda":
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise TalBenchError(f"{option} is {device} but torch sees no CUDA device; use cpu")
        if index and int(index) >= count:
            raise TalBenchError(f"{option} is {device} but torch sees {count} CUDA device(s)")


def _at_least(values: dict[str, Any], low: float, strict: bool = False) -> None:
    for name, value in values.items():
        if value is None:
            continue
        bad = not math.isfinite(value) or (value <= low if strict else value < low)
        if bad:
            relation = ">" if strict else ">="
            raise TalBenchError(f"{name} must be {relation} {low:g}, got {value!r}")


def check_config(cfg: RunConfig) -> None:
    """Ranges and names of the run config (options become config values first)."""
    from tal_bench.pipelines.train import check_protocol
    from tal_bench.train.optim import OPTIMIZERS, SCHEDULES

    d, t, e = cfg.data, cfg.train, cfg.eval
    if not 1.0 <= d.fraction <= 100.0:
        raise TalBenchError(
            f"data.fraction (--fraction) must be 1-100 percent of the training videos, "
            f"got {d.fraction:g}"
        )
    _at_least({"data.slice": d.slice, "data.num_workers": d.num_workers}, 0)
    sizes = {"data.window": d.window, "data.window_stride": d.window_stride}
    sizes |= {"data.test_window_stride": d.test_window_stride}
    sizes |= {"data.resize_len": d.resize_len, "data.max_len": d.max_len}
    sizes |= {"data.downsample": d.downsample, "train.epochs (--epochs)": t.epochs}
    sizes |= {"train.batch_size": t.batch_size, "train.threads (--threads)": t.threads}
    _at_least(sizes, 1)
    _at_least({"data.fps": d.fps, "data.feat_stride": d.feat_stride}, 0, strict=True)
    _at_least({"data.clip_len": d.clip_len, "train.lr": t.lr, "train.gamma": t.gamma}, 0, True)
    _at_least({"train.weight_decay": t.weight_decay, "train.warmup_epochs": t.warmup_epochs}, 0)
    _at_least({"train.clip_grad_norm": t.clip_grad_norm}, 0, strict=True)
    if not 0.0 <= d.window_min_inside <= 1.0:
        raise TalBenchError(f"data.window_min_inside must be in [0, 1], got {d.window_min_inside}")
    if not 0.0 < t.ema_decay < 1.0:
        raise TalBenchError(f"train.ema_decay must be in (0, 1), got {t.ema_decay!r}")
    if t.optimizer.lower() not in OPTIMIZERS:
        raise TalBenchError(
            f"unknown train.optimizer {t.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
        )
    if t.schedule.lower() not in SCHEDULES:
        raise TalBenchError(
            f"unknown train.schedule {t.schedule!r}; choose one of {', '.join(SCHEDULES)}"
        )
    check_device(t.device, "train.device (--device)")
    check_protocol(cfg)  # train.budget, data.draw, eval.classifier_data
    if e.classifier not in ("internal", "none", "auto") and not Path(e.classifier).is_file():
        raise TalBenchError(
            f"eval.classifier {e.classifier!r} is neither 'internal' nor an existing score file"
        )


def check_out_dir(out: str | Path | None) -> None:
    """``--out`` can become a run directory: not a file, nor under one."""
    if out is None:
        return
    path = Path(out)
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                what = "--out" if part == path else f"--out's parent {part}"
                raise TalBenchError(f"{what} is a file, not a folder; pass a new folder")
            return


def check_data(cfg: RunConfig, whole_train_subset: bool = False) -> list[str]:
    """Open the dataset, draw the training videos, build the detector once and read every
    feature file of the draw and the test subset (presence, shape, width, finite values).

    Args:
        cfg: the resolved run config.
        whole_train_subset: check every training video (a grid draws many fractions).

    Returns:
        Notes about the annotations (zero-length segments, segments reaching outside videos).
    """
    from tal_bench.data import open_dataset, sample_fraction
    from tal_bench.data.checks import scan_features

    ds = open_dataset(cfg.data)
    train = ds.resolve_subset(cfg.data.train_subset)
    test = ds.resolve_subset(cfg.data.test_subset)
    if whole_train_subset:
        train_ids = ds.video_ids(train)
    else:
        d = cfg.data
        draw = sample_fraction(
            ds.annotations, train, d.fraction, d.slice, cfg.train.seed, draw=d.draw, nested=d.nested
        )
        train_ids = list(draw.video_ids)
    ids = list(dict.fromkeys([*train_ids, *ds.video_ids(test)]))
    if getattr(ds, "provides", "features") == "frames":
        check_frames_model(cfg)
        ds.validate_ids(ids)  # clips present (they are decoded while training)
        check_model(cfg, ds.feature_meta.input_dim, len(ds.classes))
        return list(ds.notes)
    scan_features(ds, ids, values=False)  # every header first: a bad file before any value
    check_model(cfg, ds.feature_meta.input_dim, len(ds.classes))
    scan_features(ds, ids, values=True)
    return list(ds.notes)


def check_frames_model(cfg: RunConfig) -> None:
    """A frames dataset (``tal_bench.data.frames``) needs a detector with a video encoder."""
    if getattr(getattr(cfg.model, "encoder", None), "kind", "none") == "none":
        raise TalBenchError(
            f"dataset {cfg.data.dataset!r} gives video frames; model {cfg.model_name!r} needs a "
            "video encoder: set model.encoder.kind=tsm (etad: --preset egs)"
        )


def check_model(cfg: RunConfig, input_dim: int, num_classes: int) -> None:
    """Build the detector once: a model value it cannot be built with is a user error."""
    from tal_bench.models import create_model

    try:
        create_model(cfg.model_name, cfg.model, input_dim, num_classes)
    except TalBenchError:
        raise
    except Exception as exc:  # the detector's own constructor rejects a value
        reason = (str(exc).splitlines() or [""])[0] or type(exc).__name__
        raise TalBenchError(
            f"detector {cfg.model_name!r} cannot be built with this config ({reason}); "
            "check the model.* values"
        ) from None


def check_run(cfg: RunConfig, out: str | Path | None = None, note: Note | None = None) -> None:
    """All of the above for one training run, cheapest first; notes go to ``note``."""
    check_config(cfg)
    check_out_dir(out)
    for line in check_data(cfg):
        if note is not None:
            note(line)


def check_grid(cells: Sequence[Any], out: str | Path | None, note: Note | None = None) -> None:
    """Every cell's config, ``--out``, then the data of the first cell once, with all its
    training videos (the draws of every fraction come from them); in a grid of several models,
    each other model is built once at the dataset's width too.

    Args:
        cells: the grid's cells (``tal_bench.pipelines.grid.Cell``: payload model, preset,
            overrides).
        out: the grid's ``--out``.
        note: called with each note about the data.
    """
    from tal_bench.pipelines.resolve import resolve_run_config

    configs = [
        resolve_run_config(c.payload["model"], c.payload["preset"], c.payload["overrides"])
        for c in cells
    ]
    for cfg in configs:
        check_config(cfg)
    check_out_dir(out)
    if not configs:
        return
    for line in check_data(configs[0], whole_train_subset=True):
        if note is not None:
            note(line)
    firsts = {cfg.model_name: cfg for cfg in reversed(configs)}  # first config of each model
    for cfg in firsts.values():
        if cfg.model_name != configs[0].model_name:
            _check_other_model(cfg, configs[0])


def _check_other_model(cfg: RunConfig, checked: RunConfig) -> None:
    """Another model of the grid: its own data when it reads another dataset, else only its
    detector at the dataset's width (the feature files were scanned for the first model)."""
    from tal_bench.data import open_dataset

    if (cfg.data.dataset, cfg.data.root) != (checked.data.dataset, checked.data.root):
        check_data(cfg, whole_train_subset=True)
        return
    ds = open_dataset(cfg.data)
    ds.resolve_subset(cfg.data.train_subset)
    ds.resolve_subset(cfg.data.test_subset)
    if getattr(ds, "provides", "features") == "frames":
        check_frames_model(cfg)
    check_model(cfg, ds.feature_meta.input_dim, len(ds.classes))
