"""Time the evaluator against the plain per-prediction loop on a THUMOS-sized case.

The case is deterministic: the real THUMOS'14 test GT (ActionFormer's thumos14.json, 212 videos,
3358 instances) and, per video, 2 jittered copies of every GT instance (10 % with a wrong label)
plus random false positives up to 200 predictions, all with continuous random scores
(about 43,000 predictions, built from names as a prediction file would give them). The loop and
the evaluator run in the same process on the same ``Detections``, the latter both per call
(``evaluate_detections``) and against ground truth prepared once
(``prepare_ground_truth(...).evaluate``); the script checks that every per-class AP agrees to
1e-12 and prints the times and ratios.

The machine's own speed drifts by 10-20 % over seconds on shared VMs, so they are timed in
``--pairs`` interleaved rounds: one plain-loop call, then ``--repeats`` calls of each evaluator
path right after it; each round gives a ratio (loop time / median evaluator time) per path and
the script reports the median ratio and the range over the rounds.

Run:  python experiments/bench_evaluator.py [--repeats 20] [--pairs 5] [--seed 0] [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from tal_bench.data.annotations import load_annotations, select_subset
from tal_bench.evaluation import (
    evaluate_detections,
    make_detections,
    prepare_ground_truth,
    tiou_preset,
)
from tal_bench.types import Annotations, Detections

REPO = Path(__file__).resolve().parents[1]
GT_PATH = (
    REPO / ".." / "shared" / "data" / "annotations" / "thumos14" / "actionformer" / "thumos14.json"
)
PER_VIDEO = 200  # predictions per video, as a detector's top-k output
COPIES = 2  # jittered copies of each GT instance


def load_reference():
    """The plain loop-by-loop evaluator kept with the tests (tests/evaluation/reference.py)."""
    spec = importlib.util.spec_from_file_location(
        "tal_eval_reference", REPO / "tests" / "evaluation" / "reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_predictions(gt: Annotations, subset: str, seed: int) -> Detections:
    """Jittered GT copies + random false positives, ``PER_VIDEO`` per video (more if crowded)."""
    rng = np.random.default_rng(seed)
    videos, _ = select_subset(gt, subset)
    cols: list[list] = [[], [], [], [], []]
    for v in videos:
        seg = np.repeat(v.segments_s, COPIES, axis=0)  # (N * COPIES, 2)
        length = seg[:, 1] - seg[:, 0]
        centre = seg.mean(axis=1) + rng.normal(0, 0.15, len(seg)) * length
        width = length * np.exp(rng.normal(0, 0.25, len(seg)))
        labels = np.repeat(np.asarray(v.labels, dtype=object), COPIES)
        wrong = rng.random(len(seg)) < 0.1
        labels[wrong] = rng.choice(gt.classes, int(wrong.sum()))
        n_fp = max(PER_VIDEO - len(seg), 0)
        fp_centre = rng.uniform(0, v.duration_s, n_fp)
        fp_width = np.exp(rng.normal(np.log(3.0), 0.8, n_fp))
        starts = np.r_[centre - width / 2, fp_centre - fp_width / 2]
        ends = np.r_[centre + width / 2, fp_centre + fp_width / 2]
        scores = np.r_[rng.beta(4, 2, len(seg)), rng.beta(2, 4, n_fp)]
        cols[0] += [v.video_id] * len(starts)
        cols[1] += starts.tolist()
        cols[2] += np.maximum(ends, starts + 1e-2).tolist()
        cols[3] += labels.tolist() + rng.choice(gt.classes, n_fp).tolist()
        cols[4] += scores.tolist()
    order = rng.permutation(len(cols[0]))  # predictions arrive in no particular order
    return make_detections(*(np.asarray(c, dtype=object)[order] for c in cols))


def time_call(fn, repeats: int, warm: bool = True) -> tuple[list[float], list[float], object]:
    """Wall-clock and process-CPU seconds of ``repeats`` calls (after one warm-up), last result.

    CPU time is reported too because a shared machine inflates wall time unevenly.
    """
    result = fn() if warm else None
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return wall, cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed evaluator calls per pair")
    parser.add_argument("--pairs", type=int, default=5, help="interleaved (loop, evaluator) pairs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args()
    if not GT_PATH.is_file():
        sys.exit(f"missing {GT_PATH}: this benchmark needs the shared THUMOS annotations")
    gt = load_annotations(GT_PATH)
    dets = fake_predictions(gt, "test", args.seed)
    thresholds = tiou_preset("thumos")
    reference = load_reference()

    fast = evaluate_detections(gt, "test", dets, thresholds)  # warm-up of all three
    ref = reference.reference_evaluate(gt, "test", dets, thresholds)
    prepared = prepare_ground_truth(gt, "test").evaluate(dets, thresholds)
    pairs = []
    for _ in range(args.pairs):
        loop_wall, loop_cpu, ref = time_call(
            lambda: reference.reference_evaluate(gt, "test", dets, thresholds), 1, warm=False
        )
        cold_wall, cold_cpu, fast = time_call(
            lambda: evaluate_detections(gt, "test", dets, thresholds), args.repeats, warm=False
        )
        prep_wall, _, index = time_call(lambda: prepare_ground_truth(gt, "test"), 1, warm=False)
        warm_wall, _, prepared = time_call(
            lambda idx=index: idx.evaluate(dets, thresholds), args.repeats, warm=False
        )
        pairs.append(
            {
                "loop_wall_s": loop_wall[0],
                "loop_cpu_s": loop_cpu[0],
                "fast_wall_s_median": statistics.median(cold_wall),
                "fast_cpu_s_median": statistics.median(cold_cpu),
                "prepare_wall_s": prep_wall[0],
                "prepared_wall_s_median": statistics.median(warm_wall),
            }
        )

    order = [ref["classes"].index(c) for c in fast.classes]
    max_diff = max(float(np.abs(res.ap - ref["ap"][:, order]).max()) for res in (fast, prepared))
    ratio = {
        name: [p["loop_wall_s"] / p[f"{name}_wall_s_median"] for p in pairs]
        for name in ("fast", "prepared")
    }
    ratio_cpu = [p["loop_cpu_s"] / p["fast_cpu_s_median"] for p in pairs]
    summary = {
        "num_pred": len(dets),
        "num_gt": fast.num_gt,
        "num_videos": fast.num_videos,
        "average_mAP": fast.average_mAP,
        "mAP": {f"{t:.2f}": m for t, m in fast.mAP.items()},
        "pairs": pairs,
        "loop_wall_s_median": statistics.median(p["loop_wall_s"] for p in pairs),
        "fast_wall_s_median": statistics.median(p["fast_wall_s_median"] for p in pairs),
        "prepare_wall_s_median": statistics.median(p["prepare_wall_s"] for p in pairs),
        "prepared_wall_s_median": statistics.median(p["prepared_wall_s_median"] for p in pairs),
        "speedup_wall_median": statistics.median(ratio["fast"]),
        "speedup_wall_range": [min(ratio["fast"]), max(ratio["fast"])],
        "speedup_cpu_median": statistics.median(ratio_cpu),
        "speedup_prepared_wall_median": statistics.median(ratio["prepared"]),
        "speedup_prepared_wall_range": [min(ratio["prepared"]), max(ratio["prepared"])],
        "max_abs_ap_diff": max_diff,
        "agree_1e-12": max_diff <= 1e-12,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary, args)
    if max_diff > 1e-12:
        sys.exit("the evaluators disagree")


def _print_summary(summary: dict, args: argparse.Namespace) -> None:
    print(
        f"{summary['num_pred']} predictions, {summary['num_gt']} GT, {summary['num_videos']} videos"
    )
    print(
        f"average mAP {summary['average_mAP']:.6f}  max |AP diff| {summary['max_abs_ap_diff']:.2e}"
    )
    for i, p in enumerate(summary["pairs"]):
        loop, cold, warm = p["loop_wall_s"], p["fast_wall_s_median"], p["prepared_wall_s_median"]
        print(
            f"pair {i}: plain loop {loop:.3f} s | evaluator {cold * 1e3:.2f} ms "
            f"({loop / cold:.0f}x) | on prepared GT {warm * 1e3:.2f} ms ({loop / warm:.0f}x)"
        )
    for label, key in (("per call", "speedup_wall"), ("on prepared GT", "speedup_prepared_wall")):
        lo, hi = summary[f"{key}_range"]
        print(
            f"wall speed-up, {label}: median {summary[f'{key}_median']:.0f}x over {args.pairs} "
            f"pairs (range {lo:.0f}-{hi:.0f}x)"
        )
    print(
        f"loop median {summary['loop_wall_s_median']:.3f} s; evaluator "
        f"{summary['fast_wall_s_median'] * 1e3:.2f} ms, of which preparing the GT "
        f"{summary['prepare_wall_s_median'] * 1e3:.2f} ms; on prepared GT "
        f"{summary['prepared_wall_s_median'] * 1e3:.2f} ms (medians of {args.repeats} per pair)"
    )
    print(f"cpu-time speed-up, per call: median {summary['speedup_cpu_median']:.0f}x")


if __name__ == "__main__":
    main()
