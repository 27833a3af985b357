"""Fabricated but realistic run directories, written with tal_bench.records, for report tests.

Every run is written through ``create_run``/``append_row`` (the real record writer), then its
``machine`` is replaced by a fixed one so that figure footers are predictable. The numbers
follow the shapes of the study (a saturating learning curve, latency growing with length,
DPS cost growing with the ratio) with a fixed-seed noise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tal_bench.records import create_run

CPU_MACHINE = {
    "hostname": "node-cpu",
    "os": "Linux-6.1-x86_64",
    "machine": "x86_64",
    "cpu_model": "AMD EPYC 7763 64-Core Processor",
    "cpu_logical": 16,
    "cpu_physical": 8,
    "ram_gib": 62.8,
    "gpus": None,
    "gpu_error": "NVML unavailable: driver not loaded",
}
GPU_MACHINE = {
    **CPU_MACHINE,
    "hostname": "node-gpu",
    "cpu_model": "Intel(R) Xeon(R) Platinum 8480+",
    "cpu_logical": 32,
    "gpus": [
        {"index": 0, "name": "NVIDIA H100 80GB HBM3", "driver": "550.54", "memory_mib": 81559}
    ],
    "gpu_error": None,
}
COMMIT = {"id": "0123456789abcdef0123456789abcdef01234567", "short": "01234567", "dirty": False}
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)

# Learning-curve truth per model: 5PL (a, b, c, d, g) in mAP points / percent.
CURVE_TRUTH = {"etad": (2.0, 1.3, 12.0, 54.0, 1.0), "actionformer": (4.0, 1.1, 9.0, 66.0, 1.0)}


def _finish(run: Any, machine: dict[str, Any], status: str = "ok") -> Path:
    run.meta["machine"] = machine
    run.meta["commit"] = COMMIT
    run.finish(status)
    return run.path


def five_pl(x: float, a: float, b: float, c: float, d: float, g: float) -> float:
    """The truth curve (independent of tal_bench.fits)."""
    return d + (a - d) / (1.0 + (x / c) ** b) ** g


def _map_row(avg: float) -> dict[str, float]:
    # Per-threshold mAP falling linearly with tIoU around the average.
    row = {f"map_pct_at_{t:.2f}": round(avg + (0.5 - t) * 40.0, 4) for t in THRESHOLDS}
    row["map_avg_pct"] = round(avg, 4)
    return row


def write_data_scaling(root: Path, model: str, fractions: list[float], seed: int) -> Path:
    """A data-scaling grid: 3 slices per fraction, one OOM cell, one timeout, one resumed cell."""
    rng = np.random.default_rng(seed)
    run = create_run(root / f"data-scaling-{model}", "data-scaling", {"model": model}, {"base": 0})
    for frac in fractions:
        for sl in range(3):
            key = f"{model}-{frac:g}-{sl}"
            base = {"kind": "cell", "run_key": key, "fraction_pct": frac, "slice": sl, "seed": sl}
            if model == "etad" and frac == fractions[0] and sl == 2:
                run.append_row({**base, "status": "failed", "map_avg_pct": None,
                                "error": "RuntimeError: CUDA out of memory. Tried to allocate "
                                "2.00 GiB"})  # fmt: skip
                continue
            if model == "etad" and frac == fractions[1] and sl == 1:  # failed, then resumed ok
                run.append_row({**base, "status": "failed", "error": "killed by SIGTERM"})
            if model == "etad" and frac == 100 and sl == 2:
                run.append_row({**base, "status": "timeout", "error": "cell ran past 3600 s"})
                continue
            avg = five_pl(frac, *CURVE_TRUTH[model]) + rng.normal(0.0, 0.8)
            run.append_row({
                **base, **_map_row(avg), "status": "ok", "error": None,
                "train_time_s": round(40.0 + 9.0 * frac * (1 + rng.normal(0, 0.03)), 2),
                "peak_mem_mib": round(1850.0 + rng.normal(0, 5.0), 1),
                "num_train_videos": round(frac * 2), "params": 1_234_567,
            })  # fmt: skip
    return _finish(run, CPU_MACHINE)


def write_sampling_ratio(root: Path) -> Path:
    """ETAD DPS sweep: 3 strategies x 6 ratios x 2 seeds, one OOM cell."""
    rng = np.random.default_rng(7)
    run = create_run(root / "sampling-ratio", "sampling-ratio", {"model": "etad"}, {"train": [0]})
    gap = {"random": 0.0, "grid": 0.6, "block": 3.5}
    for strategy in ("random", "grid", "block"):
        for ratio in (0.01, 0.03, 0.06, 0.1, 0.3, 1.0):
            for seed in (0, 1):
                base = {"kind": "cell", "run_key": f"{strategy}-{ratio}-{seed}",
                        "dps_strategy": strategy, "dps_ratio": ratio, "seed": seed}  # fmt: skip
                if strategy == "block" and ratio == 1.0 and seed == 1:
                    run.append_row({**base, "status": "failed",
                                    "error": "RuntimeError: CUDA out of memory"})  # fmt: skip
                    continue
                avg = 38.0 - gap[strategy] - 6.0 * np.exp(-ratio / 0.02) + rng.normal(0, 0.3)
                run.append_row({
                    **base, **_map_row(avg), "status": "ok", "error": None,
                    "train_time_s": round(600 + 900 * ratio + rng.normal(0, 10), 2),
                    "step_time_ms": round(80 + 200 * ratio + rng.normal(0, 2), 2),
                    "peak_mem_mib": round(1500 + 6000 * ratio + rng.normal(0, 20), 1),
                })  # fmt: skip
    run.write_json("grid", {"invocations": [{"axes": {}, "cells": 36, "exec": {"threads": 4}}]})
    return _finish(run, GPU_MACHINE)


def write_egs_ratio(root: Path) -> Path:
    """ETAD EGS sweep as ``talbench sampling-ratio --kind egs`` writes it: ratios 0 and 1.0
    once (random), 0.1 and 0.3 per strategy, 2 seeds (block 0.3 has one)."""
    rng = np.random.default_rng(11)
    run = create_run(root / "egs-ratio", "sampling-ratio", {"kind": "egs", "model": "etad"},
                     {"train": [0, 1]})  # fmt: skip
    gap = {"random": 0.0, "grid": -0.1, "block": 0.4}
    for strategy in ("random", "grid", "block"):
        for ratio in (0.0, 0.1, 0.3, 1.0):
            if ratio in (0.0, 1.0) and strategy != "random":
                continue
            for seed in (0, 1):
                base = {"kind": "cell", "run_key": f"egs-{strategy}-{ratio}-{seed}",
                        "egs_strategy": strategy, "egs_ratio": ratio, "seed": seed}  # fmt: skip
                if strategy == "block" and ratio == 0.3 and seed == 1:
                    continue
                avg = 36.0 + (0.8 - gap[strategy]) * (ratio > 0) + rng.normal(0, 0.1)
                run.append_row({
                    **base, **_map_row(avg), "status": "ok", "error": None,
                    "train_time_s": round(100 + 300 * ratio + rng.normal(0, 3), 2),
                    "train_cpu_s": round(90 + 280 * ratio + rng.normal(0, 3), 2),
                    "step_time_ms": round(50 + 150 * ratio + rng.normal(0, 1), 2),
                    "peak_mem_mib": round(900 + rng.normal(0, 20), 1),
                    "step_mem_mib": round(20 + 400 * ratio + rng.normal(0, 1), 2),
                    "step_mem_kind": "cpu_tensor_peak",
                })  # fmt: skip
    return _finish(run, CPU_MACHINE)


def _timeline(
    phases: list[tuple[str, float]], gpu: bool, rng: np.random.Generator, proc_pct: float = 380.0
) -> list[dict]:
    samples, t = [], 0.0
    for phase, seconds in phases:
        n = max(2, int(seconds / 0.5))
        for _ in range(n):
            t += 0.5
            busy = phase != "idle"
            samples.append({
                "t_s": round(t, 3), "dt_s": 0.5, "phase": phase,
                "cpu_pct": float(np.clip((35 if busy else 3) + rng.normal(0, 4), 0, 100)),
                "cpu_pct_per_core": [10.0, 20.0],
                "proc_cpu_pct": float(max(0.0, (proc_pct if busy else 5) + rng.normal(0, 3))),
                "rss_mib": 2100.0 + 40 * len(samples) ** 0.5,
                "gpu_util_pct": float(np.clip(90 + rng.normal(0, 5), 0, 100)) if gpu and busy
                else (0.0 if gpu else None),
                "gpu_mem_used_mib": 5200.0 + (3000 if busy else 0) if gpu else None,
                "gpu_proc_mem_mib": 4800.0 + (3000 if busy else 0) if gpu else None,
            })  # fmt: skip
    return samples


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


LENGTHS = [128, 256, 512, 1024, 2048, 4096, 8192]
MACS_PER_STEP = {"etad": 9.5e6, "actionformer": 3.1e7}
MIB_PER_STEP = {"etad": 0.9, "actionformer": 2.4}


def write_profile(root: Path) -> Path:
    """Inference profile of two models on a GPU machine, with an OOM and a timeline."""
    rng = np.random.default_rng(3)
    run = create_run(root / "profile-infer", "profile", {"mode": "infer"}, {"torch": 0})
    for model in ("etad", "actionformer"):
        for length in [*LENGTHS, 16384]:
            base = {"kind": "profile", "model": model, "length": length, "device": "cuda",
                    "threads": 16, "mode": "infer"}  # fmt: skip
            if model == "actionformer" and length == 16384:
                run.append_row({**base, "status": "failed", "error": "CUDA out of memory"})
                continue
            lat = (2.0 if model == "etad" else 5.0) * (length / 128) ** 1.1
            run.append_row({
                **base, "status": "ok", "error": None, "params": 2_000_000,
                "macs": MACS_PER_STEP[model] * length, "macs_fvcore": MACS_PER_STEP[model] * length,
                "latency_ms_median": round(lat * (1 + rng.normal(0, 0.02)), 3),
                "latency_ms_iqr": round(0.05 * lat, 3),
                "peak_rss_mib": 2400.0 + length * 0.01,
                "gpu_peak_allocated_mib": round(300 + MIB_PER_STEP[model] * length, 1),
                "cpu_util_mean": 6.5, "gpu_util_mean": 71.0, "roofline_fraction": 0.12,
            })  # fmt: skip
    phases = [("idle", 1.0)] + [(f"L={n}", 1.5) for n in LENGTHS] + [("idle", 1.0)]
    _write_jsonl(run.path / "timeline.jsonl", _timeline(phases, gpu=True, rng=rng))
    return _finish(run, GPU_MACHINE)


def write_train_profile(root: Path) -> Path:
    """``profile --mode train`` on CPU: per-epoch rows, the summary row and a timeline."""
    rng = np.random.default_rng(4)
    run = create_run(root / "profile-train", "profile", {"mode": "train"}, {"torch": 0})
    base = {"model": "etad", "mode": "train", "device": "cpu", "threads": 1, "length": None}
    for epoch in range(1, 5):
        run.append_row({**base, "kind": "train_epoch", "status": "ok", "epoch": epoch,
                        "epoch_time_s": 3.0 + epoch * 0.1, "iters": 40,
                        "step_ms_mean": (3.0 + epoch * 0.1) * 25, "loss": 2.0 / epoch,
                        "cpu_util_mean": 40.0 + epoch, "gpu_util_mean": None,
                        "peak_rss_mib": 2200.0 + epoch,
                        "gpu_peak_allocated_mib": None})  # fmt: skip
    run.append_row({**base, "kind": "train", "status": "ok", "epochs": 4, "train_time_s": 13.0,
                    "map_avg_pct": 12.5, "peak_rss_mib": 2204.0, "gpu_peak_allocated_mib": None,
                    "step_ms_mean": 81.25})  # fmt: skip
    phases = [(f"train epoch {e}", 3.0) for e in range(1, 5)] + [("eval", 1.0)]
    _write_jsonl(run.path / "timeline.jsonl", _timeline(phases, gpu=False, rng=rng, proc_pct=97.0))
    return _finish(run, CPU_MACHINE)


def write_train(root: Path) -> Path:
    """One ``talbench train`` run: epoch rows and the result row."""
    run = create_run(root / "train-etad", "train", {"model_name": "etad"}, {"train": 0})
    for epoch in range(3):
        run.append_row({"kind": "epoch", "epoch": epoch, "loss": 2.0 / (epoch + 1),
                        "epoch_time_s": 30.0})  # fmt: skip
    run.append_row({"kind": "result", "status": "ok", **_map_row(51.0), "fraction_pct": 100.0,
                    "train_time_s": 95.0, "peak_mem_mib": 1900.0, "params": 1_234_567})  # fmt: skip
    return _finish(run, CPU_MACHINE)


def write_all(root: Path, with_fit: bool = True) -> dict[str, Path]:
    """Every kind of run under ``root``; the etad data-scaling run also gets a ``fits.json``."""
    runs = {
        "etad": write_data_scaling(root, "etad", [2, 5, 10, 20, 40, 60, 80, 100], seed=0),
        "actionformer": write_data_scaling(root, "actionformer", [10, 20, 40, 60, 80, 100], 1),
        "ratio": write_sampling_ratio(root),
        "egs": write_egs_ratio(root),
        "profile": write_profile(root),
        "train_profile": write_train_profile(root),
        "train": write_train(root),
    }
    if with_fit:
        from tal_bench.pipelines.fit import run_fit

        run_fit(runs["etad"], "5pl,exp,pow3", upto_pct=40.0, n_boot=10, n_boot_backtest=10, seed=0)
    return runs
