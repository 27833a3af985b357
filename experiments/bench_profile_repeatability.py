"""Repeatability of ``talbench profile``: three identical profile calls, median-latency spread.

Each call is a full ``run_profile`` (fresh GEMM peak, fresh timing rounds, its own run
directory under ``--out``), with the same model, weights, inputs and thread count. The spread
of a metric is ``(max - min) / median`` over the calls; the target for the median latency is
<= 3 %. Runs with one torch thread by default (the machines this was written on are shared);
each call also prints the process's CPU share and the load average, which say whether other
processes competed for the CPUs (then no timing method reaches 3 %).

Example:
    python experiments/bench_profile_repeatability.py --model etad --length 3000 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from tal_bench.pipelines.profile import ProfileOptions, run_profile
from tal_bench.profiling.stats import relative_spread
from tal_bench.runtime import keep_freed_memory

METRICS = (
    "latency_ms_median",
    "latency_ms_min",
    "dense_ms_median",
    "post_ms_median",
    "gemm_peak_gmacs",
)
CONTEXT = ("latency_ms_iqr", "macs", "proc_cpu_mean", "loadavg_1m")


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="etad")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--length", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--calls", type=int, default=3)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--out", type=Path, default=None, help="parent of the run directories")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p.parse_args()


def main() -> None:
    args = _args()
    keep_freed_memory()  # as every talbench process does (tal_bench.runtime)
    torch.set_num_threads(args.threads)
    parent = args.out or Path(tempfile.mkdtemp(prefix="profile-repeat-"))
    rows = []
    for i in range(args.calls):
        opts = ProfileOptions(
            model=args.model, preset=args.preset, overrides=args.overrides,
            lengths=[args.length], threads=args.threads, rounds=args.rounds,
            warmup=args.warmup, fvcore=False, breakdown="never",
        )  # fmt: skip
        (row,) = run_profile(opts, str(parent / f"call{i}"))["rows"]
        if row["status"] != "ok":
            raise SystemExit(f"call {i} failed: {row['error']}")
        rows.append(row)
        shown = [f"{m}={row[m]:.6g}" for m in (*METRICS, *CONTEXT) if row.get(m) is not None]
        print(f"call {i}: " + ", ".join(shown))
    spreads = {
        m: relative_spread([r[m] for r in rows]) for m in METRICS if rows[0].get(m) is not None
    }
    result = {
        "model": args.model,
        "preset": args.preset,
        "length": args.length,
        "threads": args.threads,
        "rounds": args.rounds,
        "calls": [{m: r.get(m) for m in (*METRICS, *CONTEXT)} for r in rows],
        "spread": spreads,
        "target_met": spreads["latency_ms_median"] <= 0.03,
        "runs": str(parent),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    for m, v in spreads.items():
        print(f"spread {m}: {100 * v:.2f} %")
    verdict = "meets" if result["target_met"] else "misses"
    print(f"median-latency spread {verdict} the 3 % target (runs in {parent})")


if __name__ == "__main__":
    main()
