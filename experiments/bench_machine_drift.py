"""How steady is this machine? A fixed workload timed back to back for minutes.

``talbench profile`` can only be as repeatable as the machine under it. This script repeats two
fixed workloads in turn for ``--seconds``: a 512x512 fp32 matmul (median of 40 calls; the
profile rows' control uses the same size) and one full ETAD inference pass over a length-L input
(all its windows, as ``talbench profile --length L`` times them). It then cuts the trace into
consecutive windows of ``--window`` seconds, about as long as one profile call, and reports the
spread ``(max - min) / median`` of the window medians over every three consecutive windows:
the repeatability three back-to-back profile calls could reach at best on this machine.

Example:
    python experiments/bench_machine_drift.py --seconds 480 --window 40 --length 30000
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from tal_bench.pipelines.profile import ProfileOptions, _resolve, build_model
from tal_bench.pipelines.profile_runners import make_items, make_runner
from tal_bench.runtime import keep_freed_memory


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=240.0, help="length of the trace")
    p.add_argument("--window", type=float, default=40.0, help="seconds per simulated call")
    p.add_argument("--length", type=int, default=30000, help="ETAD input length L")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p.parse_args()


def _matmul_ms(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> float:
    times = []
    for _ in range(40):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _window_spreads(ends_s: np.ndarray, values: np.ndarray, window_s: float) -> list[float]:
    """Spread of the window medians of ``values`` over each run of three consecutive windows.

    Args:
        ends_s: (N,) seconds since the start at which each measurement ended (the wall clock
            cuts both traces at the same moments).
        values: (N,) the measurements.
        window_s: window length.
    """
    cuts = np.searchsorted(ends_s, np.arange(window_s, ends_s[-1] + 1e-9, window_s))
    bounds = np.r_[0, cuts]
    medians = [
        float(np.median(values[a:b])) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a
    ]
    return [
        (max(medians[i : i + 3]) - min(medians[i : i + 3])) / float(np.median(medians[i : i + 3]))
        for i in range(len(medians) - 2)
    ]


def main() -> None:
    args = _args()
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    opts = ProfileOptions(threads=args.threads)
    cfg = _resolve(opts)
    runner = make_runner(cfg.model_name, build_model(opts, cfg), "cpu")
    feats = torch.randn(1, opts.input_dim, args.length, generator=torch.Generator().manual_seed(0))
    items, _ = make_items(feats, cfg.data)  # (B, C, L) -> windows
    bs = cfg.train.batch_size
    chunks = [items[i : i + bs] for i in range(0, len(items), bs)]
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(512, 512, generator=gen), torch.randn(512, 512, generator=gen)
    out = torch.empty(512, 512)

    def etad_ms() -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            for chunk in chunks:
                runner.predict(chunk)
        return (time.perf_counter() - t0) * 1e3

    etad_ms(), _matmul_ms(a, b, out)  # warm-up
    matmul, etad, ends = [], [], []
    start = time.monotonic()
    while time.monotonic() < start + args.seconds:
        matmul.append(_matmul_ms(a, b, out))
        etad.append(etad_ms())
        ends.append(time.monotonic() - start)
    m_arr, e_arr, ends_s = np.array(matmul), np.array(etad), np.array(ends)
    spreads = {
        "etad": _window_spreads(ends_s, e_arr, args.window),
        "matmul": _window_spreads(ends_s, m_arr, args.window),
    }
    result = {
        "length": args.length,
        "threads": args.threads,
        "seconds": args.seconds,
        "window_s": args.window,
        "passes": len(etad),
        "etad_ms_median": float(np.median(e_arr)),
        "etad_ms_range": [float(e_arr.min()), float(e_arr.max())],
        "matmul_ms_median": float(np.median(m_arr)),
        "matmul_ms_range": [float(m_arr.min()), float(m_arr.max())],
        "corr_etad_matmul": float(np.corrcoef(e_arr, m_arr)[0, 1]),
        "triple_spread_max": {k: max(v) if v else None for k, v in spreads.items()},
        "triple_spread_mean": {k: float(np.mean(v)) if v else None for k, v in spreads.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    e_lo, e_hi, m_lo, m_hi = e_arr.min(), e_arr.max(), m_arr.min(), m_arr.max()
    print(f"{len(etad)} ETAD passes at L={args.length}, {args.seconds:.0f} s, {args.threads} thr.")
    print(f"ETAD pass: median {np.median(e_arr):.0f} ms, range {e_lo:.0f}-{e_hi:.0f} ms")
    print(f"512^2 matmul: median {np.median(m_arr):.2f} ms, range {m_lo:.2f}-{m_hi:.2f} ms")
    print(f"correlation of the two: {result['corr_etad_matmul']:.2f}")
    for k, v in spreads.items():
        if v:
            print(f"{k}: spread of {args.window:.0f}-s window medians over 3 consecutive windows: "
                  f"max {100 * max(v):.1f} %, mean {100 * np.mean(v):.1f} %")  # fmt: skip


if __name__ == "__main__":
    main()
