"""Encoder Gradient Sampling: peak memory and step time at ratios 0.1 and 0.3 against 1.0, for
the paper's single pass and the released code's chunked re-forward, on one batch.

The ETAD paper (Table 3, Fig. 5) reports that EGS at 10 % saves 83 % of the GPU memory of
end-to-end training with every snippet (TSM-R50: 4x23 GB against 8x68 GB), 65 % at 30 %, with
its single-pass description (§3.3); the released code (sming256/ETAD, lib/core/trainer.py)
re-forwards the sampled snippets chunk by chunk instead, which keeps memory flat and costs time.
This script trains the ``egs`` preset's model (ETAD + TSM-ResNet-10 of width 16 on 32x32 clips
of 4 frames, stages 1-2 frozen; every knob below can be changed) on one seeded batch of
``--batch`` windows of ``--window`` snippets, once per (variant, ratio), each in a fresh
subprocess, and prints per row the median step time (forward + loss + backward + Adam step,
after warm-up), the process CPU time and the peak memory, then the ratios against ratio 1.0.

Memory (``peak_mib``): on CUDA ``torch.cuda.max_memory_allocated`` over the timed steps (what the
paper reports, weights and optimizer state included) and the same minus what was allocated
before them; on the CPU the tensor peak of one more step (``tal_bench.profiling.memory
.TensorPeak``: bytes of the tensors the step creates, freed ones subtracted, so the process's
baseline is left out; run apart from the timed steps, which it would slow), next to the RSS
high-water mark above the baseline (``rss_mib``: VmHWM after ``clear_refs``, which also holds
allocator slack and oneDNN scratch).

Example:
    python experiments/bench_egs.py                      # CPU, batch 16 x 64 snippets
    python experiments/bench_egs.py --device cuda --size 112 --width 64 --depth 18 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from _workers import add_common_args, run_worker

VARIANTS = ("single", "chunked")
RATIOS = (0.1, 0.3, 1.0)


def _batch(args: argparse.Namespace) -> list[dict]:
    """Seeded random clips (uint8) with 1-4 GT segments per window; identical in every worker."""
    import torch

    gen = torch.Generator().manual_seed(args.seed)
    items = []
    for _ in range(args.batch):
        n_gt = int(torch.randint(1, 5, (1,), generator=gen))
        starts = torch.rand(n_gt, generator=gen) * (args.window - 12)
        lengths = 2 + torch.rand(n_gt, generator=gen) * 10
        shape = (args.window, 3, args.frames, args.size, args.size)
        items.append({
            "video_id": "bench", "window_start": 0, "duration_s": float(args.window),
            "frames": torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8),
            "feats": torch.zeros(0, args.window), "mask": torch.ones(args.window, dtype=torch.bool),
            "segments": torch.stack([starts, starts + lengths], dim=1),  # (N, 2)
            "labels": torch.zeros(n_gt, dtype=torch.long), "t0_s": 0.0, "step_s": 1.0,
        })  # fmt: skip
    return items


def worker(args: argparse.Namespace) -> dict:
    """Train ``warmup + steps`` iterations of one (variant, ratio); timings and peak memory."""
    import torch

    from tal_bench.models import create_model
    from tal_bench.pipelines.resolve import resolve_run_config
    from tal_bench.profiling.memory import TensorPeak, current_rss_mib, peak_mem_mib, reset_peak_mem
    from tal_bench.train.optim import make_optimizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    enc = {"depth": args.depth, "width": args.width}
    cfg = resolve_run_config("etad", "egs", {"model": {
        "egs_ratio": args.ratio, "egs_variant": args.variant, "egs_chunk": args.chunk,
        "encoder": {**enc, "pretrained": "none"}}, "train": {"device": args.device}})  # fmt: skip
    device = torch.device(args.device)
    model = create_model("etad", cfg.model, 0, 1).to(device).train()
    opt = make_optimizer(model.optimizer_groups(), cfg.train)
    items = _batch(args)
    cuda = device.type == "cuda"

    def step() -> tuple[float, int]:
        out = model.training_step(items)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        return float(out["loss"].detach()), int(out["egs_grad_snippets"])

    for _ in range(args.warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    rss_kind = reset_peak_mem("cpu")
    base_mib = current_rss_mib()
    times_s, cpu_s = [], []
    for _ in range(args.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        _, grad_snippets = step()
        if cuda:
            torch.cuda.synchronize()
        times_s.append(time.perf_counter() - t0)
        cpu_s.append(time.process_time() - c0)
    row = {
        "variant": args.variant, "ratio": args.ratio, "grad_snippets": grad_snippets,
        "snippets": args.batch * args.window, "device": args.device,
        "step_ms_median": 1000 * statistics.median(times_s),
        "step_ms_all": [round(1000 * t, 1) for t in times_s],
        "step_cpu_ms_median": 1000 * statistics.median(cpu_s),
        "rss_mib": peak_mem_mib(rss_kind) - base_mib,
        "encoder_params": sum(p.numel() for p in model.encoder.parameters()),
        "encoder_trainable": sum(p.numel() for p in model.encoder.trainable()),
    }  # fmt: skip
    if cuda:
        row["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        row["peak_above_start_mib"] = (torch.cuda.max_memory_allocated() - before) / 2**20
        row["memory_kind"] = "cuda_max_allocated"
    else:
        with TensorPeak() as peak:
            step()
        row["peak_mib"] = peak.peak_mib
        row["memory_kind"] = "cpu_tensor_peak"
    return row


def _run(args: argparse.Namespace, variant: str, ratio: float) -> dict:
    keys = ("batch", "window", "frames", "size", "depth", "width", "chunk", "steps", "warmup",
            "threads", "seed", "device")  # fmt: skip
    return run_worker(__file__, args, keys, ["--variant", variant, "--ratio", str(ratio)])


def summarise(rows: list[dict]) -> dict:
    """Per variant and ratio < 1: memory saved and step-time ratio against ratio 1.0."""
    out = {}
    for variant in VARIANTS:
        full = next(r for r in rows if r["variant"] == variant and r["ratio"] == 1.0)
        for r in rows:
            if r["variant"] == variant and r["ratio"] < 1.0:
                out[f"{variant}@{r['ratio']:g}"] = {
                    "memory_saved_frac": 1.0 - r["peak_mib"] / full["peak_mib"],
                    "time_ratio": r["step_ms_median"] / full["step_ms_median"],
                    "cpu_time_ratio": r["step_cpu_ms_median"] / full["step_cpu_ms_median"],
                }
    single = {r["ratio"]: r for r in rows if r["variant"] == "single"}
    out["chunked_vs_single"] = {
        f"{r['ratio']:g}": {"memory": r["peak_mib"] / single[r["ratio"]]["peak_mib"],
                            "time": r["step_ms_median"] / single[r["ratio"]]["step_ms_median"]}
        for r in rows if r["variant"] == "chunked"
    }  # fmt: skip
    return out


def _print(rows: list[dict], summary: dict, args: argparse.Namespace) -> None:
    r0 = rows[0]
    print(f"ETAD + TSM-ResNet-{args.depth} width {args.width} ({r0['encoder_params']:,} encoder "
          f"params, {r0['encoder_trainable']:,} trainable), batch {args.batch} x {args.window} "
          f"snippets of {args.frames}x{args.size}x{args.size}, {args.device}, {args.threads} "
          f"thread(s), {args.steps} steps after {args.warmup} warm-up; memory: "
          f"{r0['memory_kind']}")  # fmt: skip
    print(f"{'variant':>8} {'ratio':>6} {'grad snip':>9} {'step ms':>9} {'cpu ms':>9} "
          f"{'peak MiB':>9} {'RSS MiB':>8}")  # fmt: skip
    for r in rows:
        print(f"{r['variant']:>8} {r['ratio']:>6.2f} {r['grad_snippets']:>9d} "
              f"{r['step_ms_median']:>9.1f} {r['step_cpu_ms_median']:>9.1f} {r['peak_mib']:>9.1f} "
              f"{r['rss_mib']:>8.1f}")  # fmt: skip
    for key, s in summary.items():
        if key != "chunked_vs_single":
            print(f"{key}: memory -{100 * s['memory_saved_frac']:.1f} % vs 1.0, step time "
                  f"{s['time_ratio']:.2f}x (CPU time {s['cpu_time_ratio']:.2f}x)")  # fmt: skip
    for ratio, s in summary["chunked_vs_single"].items():
        print(f"chunked / single at {ratio}: memory {s['memory']:.2f}x, time {s['time']:.2f}x")


def main(argv: list[str] | None = None) -> None:
    """Run every (variant, ratio) in a fresh subprocess and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=16, help="windows per step (egs preset)")
    parser.add_argument("--window", type=int, default=64, help="snippets per window")
    parser.add_argument("--frames", type=int, default=4, help="frames per snippet clip")
    parser.add_argument("--size", type=int, default=32, help="frame height = width (pixels)")
    parser.add_argument("--depth", type=int, default=10, choices=[10, 18, 34])
    parser.add_argument("--width", type=int, default=16, help="encoder channels of stage 1")
    parser.add_argument("--chunk", type=int, default=4, help="chunked variant: snippets/chunk")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--variant", default="single", help=argparse.SUPPRESS)
    parser.add_argument("--ratio", type=float, default=1.0, help=argparse.SUPPRESS)
    add_common_args(parser)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    rows = [_run(args, v, r) for v in VARIANTS for r in RATIOS]
    summary = summarise(rows)
    if args.json:
        print(json.dumps({"rows": rows, "summary": summary, "settings": vars(args)}, indent=2))
        return
    _print(rows, summary, args)


if __name__ == "__main__":
    main()
