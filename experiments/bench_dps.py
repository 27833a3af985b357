"""Detector Proposal Sampling: training-step time and peak memory at ratio 0.06 vs 1.0 (CPU).

The ETAD paper (§4.4, Fig. 4) reports that DPS at 6 % makes feature-based training about
7.5x faster (45 -> 6 min) and saves 92 % of GPU memory (about 12.5x) against all proposals.
This script trains the *paper-width* detector (``etad`` preset ``paper``: hidden 256, RoI 24,
3 stages, D = 64, C_in = 2048 by default) on the same seeded random windows at both ratios,
side by side, on the CPU with a fixed number of threads, and prints for each ratio the median
train-step time (forward + loss + backward + Adam step, after warm-up) and the peak memory,
then the ratios (time 1.0/0.06, memory 1.0/0.06).

Memory method: each ratio runs in a fresh subprocess (so allocator caches and the other
ratio's peak cannot leak in). After the model, the optimizer and the batches are built, the
worker resets the kernel's peak-RSS counter (``echo 5 > /proc/self/clear_refs``; if that is not
allowed, it falls back to the process-lifetime peak) and records the current RSS as the
baseline; ``peak_mib`` = VmHWM after the steps - baseline. It therefore counts everything a
training step adds: activations saved for backward, gradients and Adam's two moments
(``3 x params`` = about 122 MiB at paper width, the same at both ratios). RSS was preferred
over torch's CPU allocator profiler because it also sees memory outside torch's allocator
(LSTM workspaces, glibc arenas) and adds no profiler overhead to the timed steps.

Example:
    python experiments/bench_dps.py                 # default: batch 2, 1 warm-up + 3 steps
    python experiments/bench_dps.py --batch 4 --steps 5 --json

Times are medians of the timed steps: wall clock (``step_ms``) and, since the machine may be
shared, the process CPU time (``cpu ms``; equal to wall time on an idle core with 1 thread).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace

from _workers import add_common_args, run_worker

RATIOS = (0.06, 1.0)


def _batches(args: argparse.Namespace, n_batches: int) -> list[list[dict]]:
    """Seeded random windows (C_in, T) with 1-4 GT segments each; identical for every ratio."""
    import torch

    gen = torch.Generator().manual_seed(args.seed)
    batches = []
    for _ in range(n_batches):
        items = []
        for _ in range(args.batch):
            n_gt = int(torch.randint(1, 5, (1,), generator=gen))
            starts = torch.rand(n_gt, generator=gen) * (args.window - 20)
            lengths = 2 + torch.rand(n_gt, generator=gen) * 30
            items.append(
                {
                    "video_id": "bench",
                    "feats": torch.randn(args.input_dim, args.window, generator=gen),  # (C, T)
                    "mask": torch.ones(args.window, dtype=torch.bool),
                    "segments": torch.stack([starts, starts + lengths], dim=1),  # (N, 2)
                    "labels": torch.zeros(n_gt, dtype=torch.long),
                    "duration_s": float(args.window),
                    "t0_s": 0.0,
                    "step_s": 1.0,
                    "window_start": 0,
                }
            )
        batches.append(items)
    return batches


def worker(args: argparse.Namespace) -> dict:
    """Train ``warmup + steps`` iterations at ``args.ratio``; return timings and peak memory."""
    import torch

    from tal_bench.models import create_model
    from tal_bench.pipelines.resolve import resolve_run_config
    from tal_bench.profiling.memory import current_rss_mib, peak_mem_mib, reset_peak_mem

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = resolve_run_config("etad", "paper").model
    cfg = replace(cfg, dps_ratio=args.ratio, dps_strategy=args.strategy)
    model = create_model("etad", cfg, args.input_dim, 1).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
    batches = _batches(args, args.warmup + args.steps)
    params = sum(p.numel() for p in model.parameters())
    rss_kind = reset_peak_mem("cpu")
    base_mib = current_rss_mib()
    times_s, cpu_s, proposals = [], [], []
    for i, items in enumerate(batches):
        t0, c0 = time.perf_counter(), time.process_time()
        out = model.training_step(items)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        if i >= args.warmup:
            times_s.append(elapsed)
            cpu_s.append(cpu)
            proposals.append(int(out["num_proposals"]))
    peak_mib = peak_mem_mib(rss_kind)
    return {
        "ratio": args.ratio,
        "strategy": args.strategy,
        "params": params,
        "proposals_per_step": statistics.median(proposals),
        "step_ms_median": 1000 * statistics.median(times_s),
        "step_ms_all": [round(1000 * t, 1) for t in times_s],
        "step_cpu_ms_median": 1000 * statistics.median(cpu_s),
        "peak_mib": peak_mib - base_mib,
        "state_mib": 3 * params * 4 / 2**20,  # fp32 gradients + Adam exp_avg + exp_avg_sq
        "baseline_rss_mib": base_mib,
        "peak_reset": rss_kind == "cpu_vmhwm",
    }


def _run_ratio(args: argparse.Namespace, ratio: float) -> dict:
    keys = ("batch", "steps", "warmup", "threads", "seed", "window", "input_dim", "strategy")
    return run_worker(__file__, args, keys, ["--ratio", str(ratio)])


def main(argv: list[str] | None = None) -> None:
    """Run both ratios in fresh subprocesses and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=2, help="windows per step (paper: 16)")
    parser.add_argument("--window", type=int, default=128, help="T, steps per window")
    parser.add_argument("--input-dim", type=int, default=2048, help="C_in (I3D: 2048)")
    parser.add_argument("--strategy", default="random", choices=["random", "grid", "block"])
    parser.add_argument("--ratio", type=float, default=None, help=argparse.SUPPRESS)
    add_common_args(parser)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    rows = {r: _run_ratio(args, r) for r in RATIOS}
    lo, hi = rows[RATIOS[0]], rows[RATIOS[1]]
    summary = {
        "rows": [lo, hi],
        "time_ratio": hi["step_ms_median"] / lo["step_ms_median"],
        "cpu_time_ratio": hi["step_cpu_ms_median"] / lo["step_cpu_ms_median"],
        "memory_ratio": hi["peak_mib"] / max(lo["peak_mib"], 1e-9),
        "memory_ratio_without_state": (hi["peak_mib"] - hi["state_mib"])
        / max(lo["peak_mib"] - lo["state_mib"], 1e-9),
        "settings": {k: v for k, v in vars(args).items() if k not in ("worker", "ratio", "json")},
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"ETAD paper width ({lo['params']:,} params), batch {args.batch}, T {args.window}, "
          f"{args.threads} thread(s), {args.steps} steps after {args.warmup} warm-up")  # fmt: skip
    print(f"{'ratio':>6} {'proposals':>10} {'step ms':>9} {'cpu ms':>9} {'peak MiB':>9}")
    for row in (lo, hi):
        print(
            f"{row['ratio']:>6.2f} {row['proposals_per_step']:>10.0f} "
            f"{row['step_ms_median']:>9.1f} {row['step_cpu_ms_median']:>9.1f} "
            f"{row['peak_mib']:>9.1f}"
        )
    print(
        f"time 1.0/0.06 = {summary['time_ratio']:.2f}x (process CPU time "
        f"{summary['cpu_time_ratio']:.2f}x), memory 1.0/0.06 = {summary['memory_ratio']:.2f}x "
        f"({summary['memory_ratio_without_state']:.2f}x without the "
        f"{lo['state_mib']:.0f} MiB of gradients + Adam state)"
    )


if __name__ == "__main__":
    main()
