"""``talbench profile --mode train``: a real training run with its utilisation timeline.

The study's Fig. 6 shows CPU and GPU use over the epochs of TadTR's training, whose official
code evaluates on the test set after every epoch (xlliu7/TadTR, main.py). Here the shared train
pipeline (``tal_bench.pipelines.train.execute``) trains the preset on the embedded dataset and,
with ``eval_every_epoch`` (the default), evaluates after every epoch too, while the background
sampler labels its samples by phase: ``train epoch 1`` (which also holds the dataset and model
set-up), ``eval 1``, ``train epoch 2``, ``eval 2``, ..., ``eval N`` (the run's own final
evaluation). Without it: ``train epoch 1`` ... ``train epoch N``, then ``eval``.

Each epoch gives one ``train_epoch`` row (epoch time, mean step time, peak memory of that
epoch's training, utilisation; with per-epoch evaluation also that evaluation's ``map_avg_pct``,
``eval_time_s`` and ``eval_*`` utilisation); the run gives one ``train`` row. The intermediate
evaluations restore every random state afterwards, so the trained weights and the final mAP are
those of a run without them.
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


def _eval_cols(s: Session, phase: str, result: dict[str, Any]) -> dict[str, Any]:
    """One evaluation's mAP, time and utilisation (``eval_``-prefixed) for an epoch row."""
    return {
        "map_avg_pct": result["map_avg_pct"],
        "eval_time_s": result["eval_time_s"],
        **{f"eval_{k}": v for k, v in _util_cols(s, phase).items()},
    }


def train_rows(s: Session, write: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """Train and evaluate ``s.cfg`` once, writing one row per epoch and a summary row.

    Peak memory is reset at every epoch start (``PeakMemory``), so each epoch row holds that
    epoch's peak; the summary's ``peak_rss_mib`` is the maximum over epochs (the trainer's own
    ``peak_mem_mib`` would only see the last epoch, as we reset in between). With per-epoch
    evaluation an epoch's row is written once its evaluation is done.

    Args:
        s: the profiling session (options, resolved config, sampler).
        write: called with each row (appends it to the run record).

    Returns:
        The rows written.
    """
    from tal_bench.pipelines.train import execute

    epochs = s.cfg.train.epochs
    each = s.opts.eval_every_epoch
    rows: list[dict[str, Any]] = []
    state: dict[str, Any] = {"pm": PeakMemory(s.opts.device, s.nvml).__enter__(), "row": None}
    s.sampler.begin("train epoch 1")

    def emit(row: dict[str, Any]) -> None:
        rows.append(row)
        write(row)

    def on_epoch(log_row: dict[str, Any]) -> None:
        epoch = int(log_row["epoch"])
        if each:
            s.sampler.begin(f"eval {epoch}")
        else:
            s.sampler.begin(f"train epoch {epoch + 1}" if epoch < epochs else "eval")
        state["pm"].__exit__(None, None, None)
        state["row"] = _epoch_row(s, log_row, state["pm"].result)
        if each:
            return  # written with its evaluation (on_epoch_eval, or the final one below)
        if epoch < epochs:
            state["pm"] = PeakMemory(s.opts.device, s.nvml).__enter__()
        emit(state["row"])

    def on_epoch_eval(epoch: int, result: dict[str, Any]) -> None:
        s.sampler.begin(f"train epoch {epoch + 1}")
        emit({**state["row"], **_eval_cols(s, f"eval {epoch}", result)})
        state["pm"] = PeakMemory(s.opts.device, s.nvml).__enter__()

    outcome = execute(s.cfg, progress=False, on_epoch=on_epoch,
                      on_epoch_eval=on_epoch_eval if each else None)  # fmt: skip
    s.sampler.end()
    summary = outcome.summary
    eval_phase = "eval"
    if each:  # the last epoch's evaluation is the run's own
        eval_phase = f"eval {state['row']['epoch']}"
        emit({**state["row"], **_eval_cols(s, eval_phase, summary)})
    between_s = sum(r["eval_time_s"] for r in rows[:-1]) if each else 0.0
    peaks = [r["peak_rss_mib"] for r in rows]
    gpu_peaks = [r["gpu_peak_allocated_mib"] for r in rows if r["gpu_peak_allocated_mib"]]
    final = {
        "kind": "train",
        "status": "ok",
        **_base(s),
        "epochs": epochs,
        # the trainer's clock also ran through the evaluations between epochs
        "train_time_s": summary["train_time_s"] - between_s,
        "epoch_evals_time_s": between_s,
        "eval_time_s": summary["eval_time_s"],
        "step_ms_mean": _mean([r["step_ms_mean"] for r in rows if r["step_ms_mean"]]),
        "map_avg_pct": summary["map_avg_pct"],
        "params": summary["params"],
        "num_train_items": summary["num_train_items"],
        "peak_rss_mib": max(peaks) if peaks else None,
        "gpu_peak_allocated_mib": max(gpu_peaks) if gpu_peaks else None,
        "seed": summary["seed"],
        "eval_every_epoch": each,
        **{f"eval_{k}": v for k, v in _util_cols(s, eval_phase).items()},
    }
    rows.append(final)
    write(final)
    return rows


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
