"""Repeatability of ``talbench profile``: three identical profile calls, median-latency spread.

Each call is a full profile (fresh GEMM peak, fresh timing rounds, its own run directory under
``--out``), with the same model, weights, inputs and thread count: in this process through
``run_profile``, or with ``--cli`` as separate ``talbench profile ... --json`` processes, exactly
as a user repeats the command. The spread of a metric is ``(max - min) / median`` over the
calls; the target for the median latency is <= 3 %.

The machine is measured alongside: every row carries the time of a fixed 512x512 matmul just
before and just after the model's timing (``control_ms_before`` / ``control_ms_after``). Their
spread over the calls, and the largest change inside one call (``machine_drift_frac``), say how
much the machine's own speed moved; a model's latency cannot be more repeatable than that.

Example:
    python experiments/bench_profile_repeatability.py --length 30000 --calls 3 --cli"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
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
    "control_ms_before",
    "control_ms_after",
)
CONTEXT = ("latency_ms_iqr", "machine_drift_frac", "macs", "proc_cpu_mean", "loadavg_1m")


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
    p.add_argument("--cli", action="store_true", help="each call a separate talbench process")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p.parse_args()


def _in_process(args: argparse.Namespace, run_dir: Path) -> dict:
    opts = ProfileOptions(
        model=args.model, preset=args.preset, overrides=args.overrides,
        lengths=[args.length], threads=args.threads, rounds=args.rounds,
        warmup=args.warmup, fvcore=False, breakdown="never",
    )  # fmt: skip
    (row,) = run_profile(opts, str(run_dir))["rows"]
    return row


def _as_cli(args: argparse.Namespace, run_dir: Path) -> dict:
    cmd = [sys.executable, "-m", "tal_bench", "profile", "--model", args.model,
           "--preset", args.preset, "--length", str(args.length), "--threads", str(args.threads),
           "--rounds", str(args.rounds), "--warmup", str(args.warmup), "--no-fvcore",
           "--breakdown", "never", "--out", str(run_dir), "--json"]  # fmt: skip
    for override in args.overrides:
        cmd += ["--set", override]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"talbench profile failed: {done.stderr.strip().splitlines()[-1:]}")
    (row,) = json.loads(done.stdout)
    return row


def main() -> None:
    args = _args()
    keep_freed_memory()  # as every talbench process does (tal_bench.runtime)
    torch.set_num_threads(args.threads)
    parent = args.out or Path(tempfile.mkdtemp(prefix="profile-repeat-"))
    call = _as_cli if args.cli else _in_process
    rows = []
    for i in range(args.calls):
        row = call(args, parent / f"call{i}")
        if row["status"] != "ok":
            raise SystemExit(f"call {i} failed: {row['error']}")
        rows.append(row)
        shown = [f"{m}={row[m]:.6g}" for m in (*METRICS, *CONTEXT) if row.get(m) is not None]
        print(f"call {i}: " + ", ".join(shown))
    spreads = {
        m: relative_spread([r[m] for r in rows]) for m in METRICS if rows[0].get(m) is not None
    }
    drift = max(abs(r["machine_drift_frac"]) for r in rows)
    result = {
        "model": args.model,
        "preset": args.preset,
        "length": args.length,
        "threads": args.threads,
        "rounds": args.rounds,
        "separate_processes": args.cli,
        "calls": [{m: r.get(m) for m in (*METRICS, *CONTEXT)} for r in rows],
        "spread": spreads,
        "max_in_call_drift": drift,
        "target_met": spreads["latency_ms_median"] <= 0.03,
        "runs": str(parent),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    for m, v in spreads.items():
        print(f"spread {m}: {100 * v:.2f} %")
    print(f"largest change of the control matmul inside one call: {100 * drift:.1f} %")
    verdict = "meets" if result["target_met"] else "misses"
    print(f"median-latency spread {verdict} the 3 % target (runs in {parent})")


if __name__ == "__main__":
    main()
