"""``talbench profile --mode train``: a real training run with its utilisation timeline.

The study's Fig. 6 shows CPU and GPU use over the epochs of a training run with evaluation.
Here the shared train pipeline (``tal_bench.pipelines.train.execute``) trains the preset on the
embedded dataset while the background sampler labels its samples by phase: ``train epoch 1``
(which also holds the dataset and model set-up), ``train epoch 2``, ..., then ``eval`` (the
test-set prediction and mAP). Each epoch gives one ``train_epoch`` row (epoch time, mean step
time, peak memory of that epoch, utilisation); the run gives one ``train`` row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tal_bench.profiling.memory import MemoryPeaks, PeakMemory

if TYPE_CHECKING:
    from tal_bench.pipelines.profile import Session


def _util_cols(s: Session, phase: str) -> dict[str, Any]:
    util = s.sampler.summary(phase)
    return {k: v for k, v in util.items() if k != "rss_max_mib"}


def _base(s: Session) -> dict[str, Any]:
    cfg = s.cfg
    return {
        "model": cfg.model_name,
        "preset": cfg.preset,
        "mode": "train",
        "device": s.opts.device,
        "threads": s.threads,
        "batch": cfg.train.batch_size,
        "length": None,
        "dataset": cfg.data.dataset,
        "util_interval_s": s.opts.interval_s,
    }


def _epoch_row(s: Session, log_row: dict[str, Any], mem: MemoryPeaks) -> dict[str, Any]:
    epoch, iters = int(log_row["epoch"]), int(log_row.get("iters", 0))
    epoch_s = float(log_row["epoch_time_s"])
    return {
        "kind": "train_epoch",
        "status": "ok",
        **_base(s),
        "epoch": epoch,
        "epoch_time_s": epoch_s,
        "iters": iters,
        "step_ms_mean": epoch_s * 1e3 / iters if iters else None,
        "loss": float(log_row["loss"]),
        **mem.as_row(),
        **_util_cols(s, f"train epoch {epoch}"),
    }


def train_rows(s: Session, write: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """Train and evaluate ``s.cfg`` once, writing one row per epoch and a summary row.

    Peak memory is reset at every epoch start (``PeakMemory``), so each epoch row holds that
    epoch's peak; the summary's ``peak_rss_mib`` is the maximum over epochs (the trainer's own
    ``peak_mem_mib`` would only see the last epoch, as we reset in between).

    Args:
        s: the profiling session (options, resolved config, sampler).
        write: called with each row (appends it to the run record).

    Returns:
        The rows written.
    """
    from tal_bench.pipelines.train import execute

    epochs = s.cfg.train.epochs
    rows: list[dict[str, Any]] = []
    state = {"pm": PeakMemory(s.opts.device, s.nvml).__enter__()}
    s.sampler.begin("train epoch 1")

    def on_epoch(log_row: dict[str, Any]) -> None:
        epoch = int(log_row["epoch"])
        s.sampler.begin(f"train epoch {epoch + 1}" if epoch < epochs else "eval")
        state["pm"].__exit__(None, None, None)
        row = _epoch_row(s, log_row, state["pm"].result)
        if epoch < epochs:
            state["pm"] = PeakMemory(s.opts.device, s.nvml).__enter__()
        rows.append(row)
        write(row)

    outcome = execute(s.cfg, progress=False, on_epoch=on_epoch)
    s.sampler.end()
    summary = outcome.summary
    peaks = [r["peak_rss_mib"] for r in rows]
    gpu_peaks = [r["gpu_peak_allocated_mib"] for r in rows if r["gpu_peak_allocated_mib"]]
    final = {
        "kind": "train",
        "status": "ok",
        **_base(s),
        "epochs": epochs,
        "train_time_s": summary["train_time_s"],
        "eval_time_s": summary["eval_time_s"],
        "step_ms_mean": _mean([r["step_ms_mean"] for r in rows if r["step_ms_mean"]]),
        "map_avg_pct": summary["map_avg_pct"],
        "params": summary["params"],
        "num_train_items": summary["num_train_items"],
        "peak_rss_mib": max(peaks) if peaks else None,
        "gpu_peak_allocated_mib": max(gpu_peaks) if gpu_peaks else None,
        "seed": summary["seed"],
        **{f"eval_{k}": v for k, v in _util_cols(s, "eval").items()},
    }
    rows.append(final)
    write(final)
    return rows


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
