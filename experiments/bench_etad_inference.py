"""Where ETAD's test-set inference goes, and how much of it no result-preserving change can cut.

A data-scaling cell's evaluation is almost all ETAD's prediction pass over every test window
(``bench_grid.py``'s "inference" phase). This script trains one cell of the main job exactly
as the grid does (``etad``, preset ``cpu``, one thread; ``--fraction``, ``--slice``), keeps
the trained model and the test items and runs the same prediction pass again: unprofiled
(median of ``--rounds``), then once under ``torch.profiler`` for the self CPU time of each
kind of operator (the linear layers' matrix multiplies, the RoI-align gather, LSTM and
convolutions, the rest) and the shapes of every linear layer call.

The linear layers are the floor: every proposal of every test window goes through the same
layers, and a product over other operands, another summation order or fewer proposals gives
other float sums, so other rows. The script times those calls alone, unprofiled (the shapes and
call counts of the pass, on random operands), and prints them as a share of the pass and of
the cell's recorded ``eval_time_s`` (which here also builds the test items, as a cell outside a
grid does); with ``bench_grid.py``'s after/before ratio of ``eval_time_s`` that says how far the
evaluation can fall while the rows stay identical.

Run:  python experiments/bench_etad_inference.py [--fraction 10] [--slice 0] [--rounds 2]
      [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from typing import Any

import torch

# Operator (profiler name) -> category; anything else is "other tensor operators".
CATEGORIES = {
    "aten::addmm": "matrix multiplies",
    "aten::mm": "matrix multiplies",
    "aten::bmm": "matrix multiplies",
    "aten::_embedding_bag_forward_only": "RoI-align gather",
    "aten::_embedding_bag": "RoI-align gather",
    "aten::mkldnn_rnn_layer": "LSTM and convolutions",
    "aten::mkldnn_convolution": "LSTM and convolutions",
}


def train_cell(fraction: float, slice_: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train and evaluate one main-job cell; returns its summary and its prediction inputs."""
    from tal_bench.pipelines import train as pipeline
    from tal_bench.pipelines.resolve import resolve_run_config

    captured: dict[str, Any] = {}
    predict = pipeline.predict_videos

    def capture(model, items, batch_size, num_workers=0):
        captured.update(model=model, items=items, batch_size=batch_size)
        return predict(model, items, batch_size, num_workers)

    overrides = {"data": {"fraction": fraction, "slice": slice_}, "train": {"threads": 1}}
    cfg = resolve_run_config("etad", "cpu", overrides)
    pipeline.predict_videos = capture
    try:
        summary = pipeline.train_and_evaluate(cfg, progress=False)
    finally:
        pipeline.predict_videos = predict
    return summary, captured


def split_pass(captured: dict[str, Any]) -> tuple[dict[str, float], list[tuple[list, int]]]:
    """Self CPU seconds per category of one profiled prediction pass, and the input shapes
    and call counts of its ``addmm`` calls (the linear layers)."""
    from torch.profiler import ProfilerActivity, profile

    from tal_bench.pipelines.train import predict_videos

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        predict_videos(captured["model"], captured["items"], captured["batch_size"])
    seconds: dict[str, float] = defaultdict(float)
    linears = []
    for event in prof.key_averages(group_by_input_shape=True):
        seconds[CATEGORIES.get(event.key, "other tensor operators")] += (
            event.self_cpu_time_total / 1e6
        )
        if event.key == "aten::addmm":
            linears.append((event.input_shapes, event.count))
    return dict(seconds), linears


def replay_linears(linears: list[tuple[list, int]]) -> float:
    """Wall seconds of the same linear layers alone: every recorded ``addmm`` shape, as many
    times as the pass called it, on random operands (the time does not depend on values)."""
    total = 0.0
    for shapes, count in linears:
        (n_out,), (rows, n_in), _ = shapes[:3]
        x, weight, bias = torch.randn(rows, n_in), torch.randn(n_out, n_in), torch.randn(n_out)
        torch.nn.functional.linear(x, weight, bias)  # warm-up
        start = time.perf_counter()
        for _ in range(count):
            torch.nn.functional.linear(x, weight, bias)
        total += time.perf_counter() - start
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fraction", type=float, default=10.0, help="training share, percent")
    parser.add_argument("--slice", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2, help="unprofiled passes (median)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from tal_bench.pipelines.train import predict_videos
    from tal_bench.runtime import keep_freed_memory

    keep_freed_memory()  # as every talbench process and grid worker does (tal_bench.runtime)

    summary, captured = train_cell(args.fraction, args.slice)
    walls = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        predict_videos(captured["model"], captured["items"], captured["batch_size"])
        walls.append(time.perf_counter() - start)
    seconds, linears = split_pass(captured)
    floor_s = replay_linears(linears)
    pass_s = statistics.median(walls)
    eval_s = float(summary["eval_time_s"])
    ops_s = sum(seconds.values())
    out = {
        "fraction_pct": args.fraction,
        "slice": args.slice,
        "test_items": len(captured["items"]),
        "eval_time_s": eval_s,
        "pass_s": pass_s,
        "profiled_self_s": seconds,
        "linears_alone_s": floor_s,
        "floor_share_of_pass": floor_s / pass_s,
        "floor_share_of_eval": floor_s / eval_s,
    }
    if args.json:
        print(json.dumps(out))
        return
    print(f"cell: etad cpu, {args.fraction:g} %, slice {args.slice}; "
          f"{out['test_items']} test windows")  # fmt: skip
    print(f"the cell's eval_time_s: {eval_s:.2f} s; the prediction pass again: {pass_s:.2f} s "
          f"(median of {args.rounds})")  # fmt: skip
    print(f"profiled pass, self CPU time of its operators ({ops_s:.2f} s in all; the profiler "
          "slows the many small calls most):")  # fmt: skip
    for name, value in sorted(seconds.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<26} {value:7.2f} s  {100 * value / ops_s:5.1f} %")
    print(f"floor with identical rows: the same linear layers alone (shapes and calls of the "
          f"pass) take {floor_s:.2f} s = {out['floor_share_of_pass']:.2f} of the pass, "
          f"{out['floor_share_of_eval']:.2f} of the cell's evaluation")  # fmt: skip


if __name__ == "__main__":
    main()
