"""Run a benchmark script's worker mode in a fresh subprocess (shared by the bench_* scripts).

A fresh process per measured configuration keeps allocator caches, autograd state and another
configuration's memory peak out of the measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence


def run_worker(
    script: str, args: argparse.Namespace, keys: Sequence[str], extra: Sequence[str] = ()
) -> dict:
    """``python script --worker <extra> --<key> <value>...`` with ``args.threads`` threads.

    Returns:
        The JSON object the worker prints on its last stdout line.
    """
    cmd = [sys.executable, script, "--worker", *extra]
    for key in keys:
        cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    threads = str(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker {' '.join(extra)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Timing, threads, seed, the hidden worker switch and ``--json``."""
    parser.add_argument("--steps", type=int, default=3, help="timed steps after warm-up")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
