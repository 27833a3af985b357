"""Where a data-scaling cell's time goes, before and after the grid speed work, side by side.

The same cells (``--fractions``, slice 0) run through the grid machinery of two source trees:
this working tree ("after") and commit ``--before`` ("before", exported with ``git archive``;
default: the main-branch commit the speed work started from). Each side runs its own
``execute_grid`` with its own local executor (one cell at a time, so cells do not compete)
in a fresh driver process; the sides alternate round by round, so that a machine whose load
drifts slows both alike. A timing wrapper installed in every worker splits each cell into:

* start-up: from the worker process's birth to its cell (interpreter, imports; ``spawn``
  before, a fork of the preloaded fork server after) plus ``seed_everything``;
* data: the dataset, the fraction draw, training items, and the test items (+ pooled
  classifier features after: ``pipelines/shared.py``, built by the grid's first cell);
* training: ``train.fit``;
* inference: ``predict_videos`` and the window merge (``merge_windows``);
* classifier: the video-level classifier and class fusion (``fuse_video_classes``);
* evaluation: the mAP (``evaluate_detections``, ground truth preparation included);
* record writing: the parent's ``Run.append_row`` of the cell's row;
* other: the rest of the cell (config resolution, model construction, summary).

Each phase is given as wall and CPU seconds (CPU = the worker's user + system time, which a
loaded machine inflates less than wall time). The script then prints the per-cell
"evaluation" the grid records (``eval_time_s``: test items, inference, classifier, mAP) and its
ratio after / before, the cells' totals, each side's grid wall time, and whether both sides
gave the same rows (every column but the measured times).

Run:  python experiments/bench_grid.py [--fractions 1,10,100] [--rounds 2] [--before REV]
      [--dataset synthetic-thumos14] [--set train.epochs=1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
BASELINE = "3f9b53e"  # main before the issue-18 speed work (per-cell spawn, no shared data)
PHASES = (
    "start-up", "data", "training", "inference", "classifier", "evaluation", "record writing",
    "other",
)  # fmt: skip
# Row columns that measure the machine or say who ran the cell; the rest must match.
MEASURED = {
    "executor", "row_time", "train_time_s", "train_cpu_s", "eval_time_s", "wall_time_s",
    "peak_mem_mib", "step_time_ms", "bench",
}  # fmt: skip


# ------------------------------------------------------------------------------------------
# In the worker: phase timers around the pipeline's functions, found by name in either tree
# ------------------------------------------------------------------------------------------

_stack: list[str] = []  # phases open in this worker (only the outermost one is charged)
_totals: dict[str, list[float]] = {}  # phase -> [wall_s, cpu_s]


def _timed(phase: str, fn: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _stack:  # inside another phase: charged there
            return fn(*args, **kwargs)
        _stack.append(phase)
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            _stack.pop()
            total = _totals.setdefault(phase, [0.0, 0.0])
            total[0] += time.perf_counter() - wall
            total[1] += time.process_time() - cpu

    return wrapper


def _install_timers() -> None:
    import tal_bench.pipelines.train as train
    import tal_bench.postprocess as post

    for module, name, phase in (
        (train, "seed_everything", "start-up"),
        (train, "create_dataset", "data"),
        (train, "sample_fraction", "data"),
        (train, "build_items", "data"),  # training items, and test items before
        (train, "shared_eval_inputs", "data"),  # after: test items and pooled features
        (train, "fit", "training"),
        (train, "predict_videos", "inference"),
        (post, "merge_windows", "inference"),
        (post, "fuse_video_classes", "classifier"),
        (train, "evaluate_detections", "evaluation"),
    ):
        if hasattr(module, name):
            setattr(module, name, _timed(phase, getattr(module, name)))


def _process_age_s() -> float:
    """Seconds since this process was born (fork or exec), from /proc (10 ms resolution)."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    started_s = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime in ticks
    return time.clock_gettime(time.CLOCK_BOOTTIME) - started_s


def timed_cell(payload: dict[str, Any]) -> dict[str, Any]:
    """The tree's own ``train_cell`` with phase timers; the phases go back in the summary."""
    age_s, cpu_before = _process_age_s(), time.process_time()
    from tal_bench.pipelines.grid import train_cell

    _totals.clear()
    _install_timers()
    wall, cpu = time.perf_counter(), time.process_time()
    summary = train_cell(payload)
    cell = (time.perf_counter() - wall, time.process_time() - cpu)
    phases = {k: list(v) for k, v in _totals.items()}  # what ran inside train_cell
    phases["other"] = [cell[i] - sum(v[i] for v in phases.values()) for i in (0, 1)]
    start = phases.setdefault("start-up", [0.0, 0.0])
    start[0] += age_s  # the worker's birth to this cell
    start[1] += cpu_before
    return {**summary, "bench": json.dumps(phases)}  # a row column holds a scalar


# ------------------------------------------------------------------------------------------
# The driver: one side's grid, in a process whose import path starts with that side's tree
# ------------------------------------------------------------------------------------------


def drive(args: argparse.Namespace) -> None:
    """Run one side's grid over the cells; print its rows and timings as one JSON object."""
    import dataclasses

    import tal_bench
    from tal_bench.pipelines.data_scaling import build_data_scaling
    from tal_bench.pipelines.grid import ExecOptions, execute_grid
    from tal_bench.records import store

    writes: dict[str, list[float]] = {}
    append_row = store.Run.append_row

    def timed_append(self: Any, row: dict[str, Any]) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        out = append_row(self, row)
        writes[row.get("run_key", "")] = [time.perf_counter() - wall, time.process_time() - cpu]
        return out

    store.Run.append_row = timed_append
    spec = build_data_scaling(
        args.model, args.fractions, 1, args.dataset, args.preset, args.set, seed=0, threads=1
    )
    pick = spec.pick
    spec = dataclasses.replace(spec, pick=lambda s: {**pick(s), "bench": s.get("bench")})
    wall, cpu = time.perf_counter(), time.process_time()
    summary = execute_grid(spec, ExecOptions("local", jobs=1), args.out, cell_fn=timed_cell)
    grid = {"wall_s": time.perf_counter() - wall, "parent_cpu_s": time.process_time() - cpu}
    rows = [r for r in _rows(summary["run_dir"]) if r["kind"] == "cell"]
    for row in rows:
        row["bench"] = {"phases": json.loads(row["bench"])}
        row["bench"]["phases"]["record writing"] = writes.get(row["run_key"], [0.0, 0.0])
    print(json.dumps({"tree": tal_bench.__file__, "grid": grid, "rows": rows}))


def _rows(run_dir: str) -> list[dict[str, Any]]:
    from tal_bench.records import open_run

    return open_run(run_dir).rows()


# ------------------------------------------------------------------------------------------
# The comparison
# ------------------------------------------------------------------------------------------


def _export(rev: str, dest: Path) -> Path:
    """The tree of ``rev`` under ``dest`` (``git archive``), or an error naming the fix."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        sys.exit(f"cannot export --before {rev!r} from {REPO} ({exc}); pass a commit of this repo")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def _run_side(tree: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, str(HERE), "--drive", "--out", str(out), "--fractions", args.fractions]
    cmd += ["--model", args.model, "--preset", args.preset, "--dataset", args.dataset]
    cmd += [f"--set={s}" for s in args.set]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the {tree} side failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["grid"]["process_wall_s"] = time.perf_counter() - t0
    return result


# ``run_key`` hashes the resolved config, which later trees extend with new fields (the
# protocol options of the fits work); it names the cell and is reported apart, not compared.
NOT_RESULTS = MEASURED | {"run_key"}


def _comparable(row: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    return {k: row.get(k) for k in sorted(keys - NOT_RESULTS)}


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def compare(args: argparse.Namespace) -> dict[str, Any]:
    """Run both sides ``--rounds`` times, alternating; return medians and the row check."""
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="bench-grid-") as tmp:
        (Path(tmp) / "before").mkdir()
        trees = {"before": _export(args.before, Path(tmp) / "before"), "after": REPO}
        for r in range(args.rounds):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for side in order:
                out = Path(tmp) / f"{side}-{r}"
                runs[side].append(_run_side(trees[side], out, args))
                print(f"round {r + 1}/{args.rounds}: {side} done", file=sys.stderr)
    return _summarise(runs)


def _summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    cells: dict[str, dict[str, Any]] = {}
    identical = True
    for side, side_runs in runs.items():
        for run in side_runs:
            for row in run["rows"]:
                cell = cells.setdefault(f"{row['fraction_pct']:g}%", {"before": [], "after": []})
                cell[side].append(row)
    added: set[str] = set()
    differing: set[str] = set()
    for cell in cells.values():
        rows = cell["before"] + cell["after"]
        # Columns a later tree adds (e.g. ``model``) are not results; every column both
        # trees record must match.
        common = set.intersection(*(set(r) for r in rows))
        added |= set.union(*(set(r) for r in rows)) - common
        reference = _comparable(rows[0], common)
        for r in rows:
            diff = {k for k, v in _comparable(r, common).items() if v != reference[k]}
            differing |= diff
            identical &= not diff
    out: dict[str, Any] = {
        "cells": {},
        "identical_rows": identical,
        "columns_on_one_side": sorted(added),
        "differing_columns": sorted(differing),
        "run_keys_equal": all(
            len({r["run_key"] for r in c["before"] + c["after"]}) == 1 for c in cells.values()
        ),
    }
    for name, cell in cells.items():
        entry = {}
        for side in ("before", "after"):
            phases = {
                p: [
                    _median([r["bench"]["phases"].get(p, [0, 0])[i] for r in cell[side]])
                    for i in (0, 1)
                ]
                for p in PHASES
            }
            entry[side] = {
                "phases": phases,
                "eval_time_s": _median([r["eval_time_s"] for r in cell[side]]),
                "total": [sum(v[i] for v in phases.values()) for i in (0, 1)],
            }
        cpu_eval = [
            sum(entry[s]["phases"][p][1] for p in ("inference", "classifier", "evaluation"))
            for s in ("before", "after")
        ]
        entry["eval_ratio_wall"] = entry["after"]["eval_time_s"] / entry["before"]["eval_time_s"]
        entry["eval_ratio_cpu"] = cpu_eval[1] / cpu_eval[0]
        out["cells"][name] = entry
    out["grid"] = {
        side: {
            "wall_s": _median([r["grid"]["wall_s"] for r in runs[side]]),
            "process_wall_s": _median([r["grid"]["process_wall_s"] for r in runs[side]]),
        }
        for side in runs
    }
    return out


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    load = os.getloadavg()
    print(
        f"cells: {args.model} --preset {args.preset} on {args.dataset}, slice 0, one at a time; "
        f"median of {args.rounds} round(s); before = {args.before}, after = this tree; "
        f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} CPUs"
    )
    head = f"{'cell':>6} {'phase':<15}{'before wall':>12}{'cpu':>8}{'after wall':>12}{'cpu':>8}"
    print(head + f"{'cpu ratio':>10}")
    for name, entry in result["cells"].items():
        for phase in (*PHASES, "total"):
            b = entry["before"]["phases"][phase] if phase != "total" else entry["before"]["total"]
            a = entry["after"]["phases"][phase] if phase != "total" else entry["after"]["total"]
            ratio = f"{a[1] / b[1]:.2f}" if b[1] > 0.005 else "-"
            print(f"{name:>6} {phase:<15}{b[0]:12.2f}{b[1]:8.2f}{a[0]:12.2f}{a[1]:8.2f}{ratio:>10}")
        print(
            f"{name:>6} eval_time_s (the row's): {entry['before']['eval_time_s']:.2f} s -> "
            f"{entry['after']['eval_time_s']:.2f} s, ratio {entry['eval_ratio_wall']:.2f} (wall); "
            f"inference + classifier + evaluation CPU ratio {entry['eval_ratio_cpu']:.2f}"
        )
    ratios = [e["eval_ratio_cpu"] for e in result["cells"].values()]
    grid = result["grid"]
    print(
        f"evaluation per cell, after / before (CPU): median {_median(ratios):.2f} "
        f"(range {min(ratios):.2f}-{max(ratios):.2f})"
    )
    print(
        f"grid wall time (one cell at a time): before {grid['before']['wall_s']:.1f} s, "
        f"after {grid['after']['wall_s']:.1f} s; rows identical: "
        f"{'yes' if result['identical_rows'] else 'NO: ' + ', '.join(result['differing_columns'])}"
        + (
            f" (columns on one side only, not compared: {', '.join(result['columns_on_one_side'])})"
            if result["columns_on_one_side"]
            else ""
        )
        + ("" if result["run_keys_equal"] else "; run keys differ (the config gained fields)")
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BASELINE, help="commit to compare against")
    parser.add_argument("--fractions", default="1,10,100", help="cells' fractions (slice 0)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds per side")
    parser.add_argument("--model", default="etad")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--dataset", default="synthetic-thumos14")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE for every cell")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.drive:
        drive(args)
        return
    result = compare(args)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        report(result, args)


if __name__ == "__main__":
    main()
