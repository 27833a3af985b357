"""Start-up time of ``talbench --help`` and of ``talbench evaluate`` end to end on the THUMOS case,
next to the official ActivityNet evaluation code on the same files.

The THUMOS case is ``bench_evaluator.py``'s: the real THUMOS'14 test ground truth (ActionFormer's
``thumos14.json``) and about 43,000 predictions (jittered GT copies plus false positives), written
once to an official results JSON. Every command runs in a fresh process, ``--runs`` times; the
commands take turns round by round, so a slower minute of a shared machine hits all of them. The
script prints the median wall time and the median CPU time (user + sys of the process and its
children) of each, against the targets (``--help`` <= 0.3 s, ``evaluate`` <= 0.6 s wall), after
one untimed run of each that writes the bytecode caches (as an installed package has them, even
where ``PYTHONDONTWRITEBYTECODE`` is set) and warms the OS's file cache.

The official column runs ``Evaluation/eval_detection.py`` of a checkout of activitynet/ActivityNet
(``--activitynet DIR``; skipped when not given): ``ANETdetection(gt, pred, subset="Test",
tiou_thresholds=0.3:0.1:0.7, check_status=False).evaluate()`` in a fresh interpreter, imports
included, as a user runs it. That code is Python 2 (print statements, ``iteritems``, ``urllib2``)
and needs numpy, pandas and joblib: with a Python 3 ``--official-python`` (default: this one) the
two files are converted with lib2to3 into a temporary folder first (Python <= 3.12); a Python 2
interpreter runs them as they are. The converted copy also reads ``np.float`` (removed in numpy
1.24) as ``float``, the builtin it was an alias of. Its average mAP is printed next to ours as a
cross-check.

``--baseline DIR`` (a checkout of another tal-bench commit, e.g. ``git archive`` of the one
before the lazy imports) times the same two commands of that tree in the same rounds.

Run:  python experiments/bench_startup.py [--runs 7] [--activitynet DIR] [--baseline DIR] [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GT_PATH = (
    REPO / ".." / "shared" / "data" / "annotations" / "thumos14" / "actionformer" / "thumos14.json"
)
TARGETS_S = {"help": 0.3, "evaluate": 0.6}
CWD = "BENCH_STARTUP_CWD"  # the working directory of a command, carried in its env dict

# Runs the official evaluator: argv = eval_dir, gt, pred; prints its average mAP as JSON.
OFFICIAL = """
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from eval_detection import ANETdetection
det = ANETdetection(sys.argv[2], sys.argv[3], ground_truth_fields=["database"],
                    prediction_fields=["results"], tiou_thresholds=np.linspace(0.3, 0.7, 5),
                    subset="Test", verbose=False, check_status=False)
det.evaluate()
print(json.dumps({"average_mAP": float(det.average_mAP)}))
"""


def write_case(work: Path, gt_path: Path, seed: int) -> Path:
    """Write ``bench_evaluator``'s ~43,000 THUMOS predictions as an official results JSON."""
    spec = importlib.util.spec_from_file_location(
        "bench_evaluator", REPO / "experiments" / "bench_evaluator.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    from tal_bench.data.annotations import load_annotations
    from tal_bench.evaluation import write_predictions_json

    dets = bench.fake_predictions(load_annotations(gt_path), "test", seed)
    path = work / "thumos14_predictions.json"
    write_predictions_json(dets, path)
    return path


def official_dir(checkout: Path, python: str, work: Path) -> tuple[Path | None, str]:
    """The folder to import ``eval_detection`` from (converted for Python 3), or why not."""
    src = checkout / "Evaluation"
    if not (src / "eval_detection.py").is_file():
        return None, f"no Evaluation/eval_detection.py in {checkout}"
    probe = [python, "-c", "import sys; print(sys.version_info[0])"]
    major = subprocess.run(probe, capture_output=True, text=True, check=False).stdout.strip()
    if major == "2":
        return src, ""
    dst = work / "official"
    dst.mkdir(exist_ok=True)
    for name in ("eval_detection.py", "utils.py"):
        shutil.copyfile(src / name, dst / name)
    convert = [python, "-W", "ignore", "-m", "lib2to3", "-w", "-n", "--no-diffs", str(dst)]
    done = subprocess.run(convert, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return None, f"lib2to3 could not convert it ({python}): {done.stderr.strip()[-200:]}"
    code = dst / "eval_detection.py"
    code.write_text(code.read_text().replace("np.float)", "float)"))
    check = [python, "-c", "import numpy, pandas, joblib"]
    missing = subprocess.run(check, capture_output=True, text=True, check=False)
    if missing.returncode != 0:
        return None, f"{python} cannot import numpy, pandas and joblib (pip install joblib)"
    return dst, ""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall s, CPU s of the child and its children, stdout) of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    cwd = env.get(CWD)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])}... failed: {done.stderr.strip()[-400:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def _with_path(env: dict[str, str], tree: Path) -> dict[str, str]:
    """``env`` with ``tree`` first on PYTHONPATH; processes also start in ``tree`` (``python -m``
    puts the working directory first on sys.path), so that tree's tal_bench is imported."""
    path = os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")])
    return {**env, "PYTHONPATH": path, CWD: str(tree)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per command")
    parser.add_argument("--activitynet", type=Path, help="checkout of activitynet/ActivityNet")
    parser.add_argument("--official-python", default=sys.executable, help="runs the official code")
    parser.add_argument("--baseline", type=Path, help="another tal-bench tree, timed alike")
    parser.add_argument("--gt", type=Path, default=GT_PATH, help="THUMOS'14 GT (thumos14.json)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the predictions")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args()
    if not args.gt.is_file():
        sys.exit(f"missing {args.gt}: pass the THUMOS'14 thumos14.json with --gt")
    # as installed: bytecode caches written on the first (untimed) run, as pip's install does
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    envs = {"": _with_path(env, REPO)}
    if args.baseline is not None:
        envs[" (baseline)"] = _with_path(env, args.baseline.resolve())
    talbench = [sys.executable, "-m", "tal_bench"]
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as tmp:
        work = Path(tmp)
        pred = write_case(work, args.gt, args.seed)
        evaluate = ["evaluate", "--gt", str(args.gt), "--pred", str(pred), "--json"]
        commands: dict[str, tuple[list[str], dict[str, str]]] = {}
        # the floor no command line of this project can go under: the interpreter plus the
        # libraries evaluate needs (Typer, which builds pydantic adapters for its options; numpy)
        floor = "import typer, typer._adapters, rich.table, numpy"
        commands["floor"] = ([sys.executable, "-c", floor], envs[""])
        for suffix, tree_env in envs.items():
            commands["help" + suffix] = ([*talbench, "--help"], tree_env)
            commands["evaluate" + suffix] = ([*talbench, *evaluate], tree_env)
        skipped = "not run (pass --activitynet DIR, a checkout of activitynet/ActivityNet)"
        if args.activitynet is not None:
            folder, skipped = official_dir(args.activitynet, args.official_python, work)
            if folder is not None:
                commands["official"] = (
                    [args.official_python, "-c", OFFICIAL, str(folder), str(args.gt), str(pred)],
                    env,
                )
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        outputs: dict[str, str] = {}
        for cmd, cmd_env in commands.values():
            timed(cmd, cmd_env)  # warm-up: bytecode caches, the OS's file cache
        for _ in range(args.runs):
            for name, (cmd, cmd_env) in commands.items():
                wall, cpu, out = timed(cmd, cmd_env)
                times[name].append((wall, cpu))
                outputs[name] = out
    summary = {
        name: {
            "wall_s_median": statistics.median(w for w, _ in runs),
            "cpu_s_median": statistics.median(c for _, c in runs),
            "wall_s_min": min(w for w, _ in runs),
            "runs": len(runs),
            "target_wall_s": TARGETS_S.get(name),  # None for the baseline and official rows
        }
        for name, runs in times.items()
    }
    maps = {"talbench": json.loads(outputs["evaluate"])["average_mAP"]}
    if "evaluate (baseline)" in outputs:
        maps["baseline"] = json.loads(outputs["evaluate (baseline)"])["average_mAP"]
    summary["average_mAP"] = maps
    if "official" in outputs:
        summary["average_mAP"]["official"] = json.loads(outputs["official"])["average_mAP"]
    else:
        summary["official_skipped"] = skipped
    summary["loadavg_1m"] = os.getloadavg()[0]
    summary["cpus"] = os.cpu_count()
    summary["python"] = platform.python_version()
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    _print_summary(summary)


def _print_summary(summary: dict) -> None:
    labels = {
        "help": "talbench --help",
        "evaluate": "talbench evaluate (THUMOS, ~43k predictions)",
        "floor": "python -c 'import typer, pydantic, rich, numpy'",
        "help (baseline)": "talbench --help, baseline tree",
        "evaluate (baseline)": "talbench evaluate, baseline tree",
        "official": "official ActivityNet eval_detection.py (same files)",
    }
    print(f"{'command':52} {'wall median':>12} {'CPU median':>11} {'target':>8}")
    for name, label in labels.items():
        row = summary.get(name)
        if row is None:
            if name == "official":
                print(f"{label:52} {summary.get('official_skipped', '')}")
            continue
        target = row["target_wall_s"]
        verdict = (
            ""
            if target is None
            else f"<= {target:.1f} s " + ("ok" if row["wall_s_median"] <= target else "MISSED")
        )
        print(
            f"{label:52} {row['wall_s_median']:>10.3f} s {row['cpu_s_median']:>9.3f} s  {verdict}"
        )
    maps = summary["average_mAP"]
    print("average mAP: " + ", ".join(f"{k} {v:.6f}" for k, v in maps.items()))
    print(
        f"{summary['help']['runs']} runs each, "
        f"load average {summary['loadavg_1m']:.1f} on {summary['cpus']} CPUs (wall times grow "
        "with the load; CPU times much less)"
    )


if __name__ == "__main__":
    main()
