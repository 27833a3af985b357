"""ETAD inference under glibc's default allocator settings vs ``keep_freed_memory()``.

Every ``talbench`` process calls ``keep_freed_memory()`` first: glibc otherwise maps each
multi-MiB tensor afresh and page-faults on first touch, which on a 2-core CPU costs about as much
as ETAD's RoI matmuls. This script measures that claim side by side: each setting runs in fresh
subprocesses (the setting is process-wide), alternating, and times ``Etad.predict`` of the
``cpu`` preset (random weights) on a batch of full windows, then prints the medians and the ratio.

Example:
    python experiments/bench_allocator.py                   # 3 rounds, batch 16, 2 threads
    python experiments/bench_allocator.py --rounds 5 --threads 1 --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

WORKER = """
import sys, time, torch
if sys.argv[1] == "tuned":
    from tal_bench.runtime import keep_freed_memory
    assert keep_freed_memory(), "mallopt unavailable: not glibc"
from tal_bench.models import create_model
from tal_bench.pipelines.resolve import resolve_run_config
torch.set_num_threads(int(sys.argv[2]))
torch.manual_seed(0)
cfg = resolve_run_config("etad", "cpu", [])
model = create_model("etad", cfg.model, 64, 20).eval()
win = cfg.data.window
items = [{"feats": torch.randn(64, win), "mask": torch.ones(win, dtype=torch.bool)}
         for _ in range(int(sys.argv[3]))]
for _ in range(2):
    model.predict(items)
times = []
for _ in range(int(sys.argv[4])):
    t0 = time.perf_counter()
    model.predict(items)
    times.append(time.perf_counter() - t0)
print(sorted(times)[len(times) // 2] * 1000.0)
"""


def run_worker(mode: str, threads: int, batch: int, calls: int) -> float:
    """Median ``predict`` time (ms) in a fresh process with the given allocator mode."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", WORKER, mode, str(threads), str(batch), str(calls)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per setting")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16, help="windows per predict call")
    parser.add_argument("--calls", type=int, default=10, help="timed predict calls per process")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    res: dict[str, list[float]] = {"default": [], "tuned": []}
    for _ in range(args.rounds):
        for mode in res:
            res[mode].append(run_worker(mode, args.threads, args.batch, args.calls))
    med = {mode: statistics.median(v) for mode, v in res.items()}
    summary = {
        "predict_ms_median_default": med["default"],
        "predict_ms_median_tuned": med["tuned"],
        "speedup": med["default"] / med["tuned"],
        "rounds": res,
        "threads": args.threads,
        "batch": args.batch,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"ETAD cpu preset, predict of {args.batch} windows, {args.threads} threads")
    print(f"glibc defaults     : {med['default']:.1f} ms (median of {args.rounds} processes)")
    print(f"keep_freed_memory(): {med['tuned']:.1f} ms")
    print(f"speed-up           : {summary['speedup']:.2f}x")


if __name__ == "__main__":
    main()
