"""The resumable experiment grid shared by ``data-scaling`` and ``sampling-ratio``.

A grid is a list of :class:`Cell` s. Each cell is one training run identified by its **run
key**: a hash of the resolved configuration with the cell's own axes (fraction, slice, seed,
ratio...) and the machine-only knobs (threads, data workers) taken out, plus the cell's axis
values. The parent process is the only writer of the run record: every finished cell (ok,
failed or timed out) becomes one row appended atomically to ``rows.jsonl``. Re-running the
same command on the same ``--out`` skips the cells that already have an ``"ok"`` row and runs
the rest, so a grid killed at any moment (even ``kill -9``) resumes where it stopped.

Protocol followed: the TU Delft TAL efficiency study (TadTR), §3.2 and §4.2: train on p % of
the training videos, t random slices per p, and report mean ± std of the average mAP per p.
"""

from __future__ import annotations

import contextlib
import copy
import math
import re
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tal_bench.config import config_hash, merge, to_dict
from tal_bench.errors import TalBenchError
from tal_bench.pipelines.executors import (
    Executor,
    Outcome,
    Task,
    check_executor_options,
    make_executor,
)

SHARED_KEY = "shared_dir"  # payload key: the run's directory for work its cells share
SHARED_DIR = "shared"  # that directory, under the run (pipelines/shared.py fills it)
# Config paths that change how fast a cell runs but not what it computes: not in run keys.
VOLATILE_PATHS = ("train.threads", "data.num_workers")
_NUMBER = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


# ------------------------------------------------------------------------------------------
# Axis specs (the parsers themselves live in data_scaling.py and sampling_ratio.py)
# ------------------------------------------------------------------------------------------


def parse_number(text: str, spec: str, what: str, hint: str) -> float:
    """A plain non-negative decimal (``12``, ``2.5``, ``1e-2``); anything else is a user error."""
    text = text.strip()
    if not _NUMBER.match(text):
        raise TalBenchError(f"bad {what} {spec!r}: {text!r} is not a number; {hint}")
    return float(text)


# ------------------------------------------------------------------------------------------
# Cells and run keys
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One training run of a grid."""

    key: str  # run key (see run_key)
    params: dict[str, Any]  # the cell's axis values, written as row columns
    payload: dict[str, Any]  # what the cell function receives (model, preset, overrides)
    label: str  # short name for progress bars, e.g. "10% slice 2"
    cost: float = 1.0  # expected run time (any unit shared by the grid's cells): launch order


def drop_paths(config: dict[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """A deep copy of ``config`` without the dotted ``paths`` (missing paths are ignored)."""
    out = copy.deepcopy(config)
    for path in paths:
        *parents, leaf = path.split(".")
        node: Any = out
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return out


def run_key(config: dict[str, Any], cell: dict[str, Any], cell_paths: Iterable[str]) -> str:
    """The run key of a cell: hash of (config without the cell axes and volatile knobs, axes).

    Args:
        config: the cell's fully resolved config as a plain dict.
        cell: the cell's axis values (``{"fraction_pct": 10.0, "slice": 2, "seed": 0}``).
        cell_paths: config paths holding those axes (``data.fraction``...), removed from
            ``config`` so the key names each axis once.

    Returns:
        16 hex characters.
    """
    base = drop_paths(config, [*cell_paths, *VOLATILE_PATHS])
    return config_hash({"config": base, "cell": cell}, length=16)


def _set_path(tree: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, leaf = path.split(".")
    node = out = {}
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value
    return merge(tree, out)


def _has_path(tree: dict[str, Any], path: str) -> bool:
    node: Any = tree
    for p in path.split("."):
        if not isinstance(node, dict) or p not in node:
            return False
        node = node[p]
    return True


def build_cells(
    model: str,
    preset: str,
    overrides: dict[str, Any],
    variants: Sequence[tuple[dict[str, Any], str]],
    axis_paths: dict[str, str],
    threads: int | None,
) -> tuple[list[Cell], dict[str, Any]]:
    """Resolve every cell's config, compute its run key and the grid's shared base config.

    Args:
        model: registered model name.
        preset: preset name (``cpu``, ``paper``...).
        overrides: nested ``--set`` overrides shared by all cells.
        variants: ``(axis values, label)`` per cell; axis names are keys of ``axis_paths``.
        axis_paths: axis name -> config path it sets (``{"fraction_pct": "data.fraction"}``).
        threads: torch threads per cell (``train.threads``; not part of run keys).

    Returns:
        The cells and the base config (resolved config without axes and volatile knobs).

    Raises:
        TalBenchError: an override sets a grid axis, or the config does not resolve.
    """
    from tal_bench.pipelines.resolve import resolve_run_config

    for path in axis_paths.values():
        if _has_path(overrides, path):
            raise TalBenchError(f"--set {path}=... conflicts with the grid, which sets {path}")
    cells, base = [], None
    for params, label in variants:
        ov = overrides if threads is None else _set_path(overrides, "train.threads", threads)
        for axis, path in axis_paths.items():
            ov = _set_path(ov, path, params[axis])
        cfg = to_dict(resolve_run_config(model, preset, ov))
        key = run_key(cfg, params, axis_paths.values())
        payload = {"model": model, "preset": preset, "overrides": ov}
        cells.append(Cell(key, dict(params), payload, label))
        base = base or drop_paths(cfg, [*axis_paths.values(), *VOLATILE_PATHS])
    return cells, base or {}


def train_cell(payload: dict[str, Any]) -> dict[str, Any]:
    """The real cell function: resolve the cell's config, train, evaluate; returns the summary.

    Runs in the worker. ``payload`` holds ``model``, ``preset`` and nested ``overrides``, and
    ``shared_dir`` when the grid runner gave one (see :func:`run_grid`).
    """
    from tal_bench.pipelines.resolve import resolve_run_config
    from tal_bench.pipelines.train import train_and_evaluate

    cfg = resolve_run_config(payload["model"], payload["preset"], payload["overrides"])
    summary = train_and_evaluate(cfg, progress=False, shared_dir=payload.get(SHARED_KEY))
    summary.setdefault("step_time_ms", step_time_ms(summary, cfg.train.batch_size))
    return summary


def step_time_ms(summary: dict[str, Any], batch_size: int) -> float | None:
    """Mean training iteration time: ``train_time_s`` over ``epochs x ceil(items / batch)``.

    The trainer keeps the last partial batch (``drop_last=False``), hence the ceiling; the time
    includes data loading, as ``train_time_s`` does.
    """
    try:
        iters = summary["epochs"] * math.ceil(summary["num_train_items"] / batch_size)
        return 1000.0 * summary["train_time_s"] / iters if iters > 0 else None
    except (KeyError, TypeError):
        return None


# ------------------------------------------------------------------------------------------
# Running a grid
# ------------------------------------------------------------------------------------------


class Reporter(Protocol):
    """Progress callbacks of :func:`run_grid` (the CLI draws rich bars with them)."""

    def grid_started(self, cells: Sequence[Cell], todo: Sequence[Cell]) -> None: ...

    def cell_started(self, cell: Cell) -> None: ...

    def cell_finished(self, cell: Cell, row: dict[str, Any]) -> None: ...

    def grid_finished(self) -> None: ...


class NullReporter:
    """Reports nothing."""

    def grid_started(self, cells: Sequence[Cell], todo: Sequence[Cell]) -> None:
        """No-op."""

    def cell_started(self, cell: Cell) -> None:
        """No-op."""

    def cell_finished(self, cell: Cell, row: dict[str, Any]) -> None:
        """No-op."""

    def grid_finished(self) -> None:
        """No-op."""


FieldPicker = Callable[[dict[str, Any]], dict[str, Any]]


def make_row(cell: Cell, outcome: Outcome, executor: str, pick: FieldPicker) -> dict[str, Any]:
    """The record row of one finished cell (failed cells keep their axes and the error)."""
    row: dict[str, Any] = {"kind": "cell", "run_key": cell.key, **cell.params}
    row.update(pick(outcome.summary or {}))
    wall = outcome.wall_time_s
    row.update(
        status=outcome.status,
        error=outcome.error,
        executor=executor,
        wall_time_s=None if wall is None else round(wall, 3),
    )
    if outcome.traceback:
        row["traceback"] = outcome.traceback
    return row


@dataclass
class GridResult:
    """What :func:`run_grid` did."""

    rows: list[dict[str, Any]]  # per cell of the grid, in grid order: its ok row, else latest
    counts: dict[str, int] = field(default_factory=dict)  # cells, ok, failed, timeout, skipped
    wall_time_s: float = 0.0


def run_grid(
    run: Any,
    cells: Sequence[Cell],
    executor: Executor,
    pick: FieldPicker,
    cell_fn: Callable[[dict[str, Any]], dict[str, Any]] = train_cell,
    threads: int | None = 1,
    reporter: Reporter | None = None,
) -> GridResult:
    """Run the cells without an ``"ok"`` row in ``run`` and append one row per finished cell.

    Cells start in decreasing ``cost`` and rows are appended as they finish (``grid_rows``
    gives them back in grid order). Every cell's payload also gets ``shared_dir``:
    ``<run>/shared``, where the cells leave the work they all repeat (``train_cell``: the test
    items and pooled features).

    Args:
        run: an open ``tal_bench.records.Run`` (created or resumed).
        cells: the grid; run keys must be distinct.
        executor: where the cells run.
        pick: summary -> row columns (called with ``{}`` for failed cells).
        cell_fn: importable top-level function ``payload -> summary dict``.
        threads: torch threads per cell.
        reporter: progress callbacks.

    Returns:
        The grid's rows and counts (``skipped`` = cells already ok before this call).
    """
    reporter = reporter or NullReporter()
    by_key = {c.key: c for c in cells}
    if len(by_key) != len(cells):
        raise TalBenchError("two cells of the grid have the same run key; list each value once")
    done = {r.get("run_key") for r in run.rows() if _is_ok_cell(r)}
    # Longest first (stable: equal costs keep grid order), so that the last cells to finish
    # are short ones and the workers run out of work together.
    todo = sorted((c for c in cells if c.key not in done), key=lambda c: -c.cost)
    counts = {"cells": len(cells), "ok": 0, "failed": 0, "timeout": 0}
    counts["skipped"] = len(cells) - len(todo)
    reporter.grid_started(cells, todo)
    t0 = time.perf_counter()
    shared = {SHARED_KEY: str(run.path / SHARED_DIR)}  # work the cells share (pipelines/shared.py)
    tasks = [Task(c.key, cell_fn, {**c.payload, **shared}, threads) for c in todo]
    try:
        for outcome in executor.run(tasks, lambda key: reporter.cell_started(by_key[key])):
            cell = by_key[outcome.key]
            row = run.append_row(make_row(cell, outcome, executor.name, pick))
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
            reporter.cell_finished(cell, row)
    finally:
        reporter.grid_finished()
    return GridResult(grid_rows(run.rows(), cells), counts, time.perf_counter() - t0)


def _is_ok_cell(row: dict[str, Any]) -> bool:
    return row.get("kind") == "cell" and row.get("status") == "ok"


def grid_rows(rows: Sequence[dict[str, Any]], cells: Sequence[Cell]) -> list[dict[str, Any]]:
    """One row per cell in grid order: its first ``ok`` row, else its latest row, else none."""
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        key = r.get("run_key")
        if r.get("kind") != "cell" or key is None:
            continue
        if key not in best or not _is_ok_cell(best[key]):
            best[key] = r
    return [best[c.key] for c in cells if c.key in best]


def aggregate(
    rows: Sequence[dict[str, Any]], by: Sequence[str], metrics: Sequence[str]
) -> list[dict[str, Any]]:
    """Mean, sample std (ddof=1; None for n < 2) and n of ``metrics`` over ok rows per group.

    Groups keep the order in which they first appear in ``rows``; failed rows only count in
    ``failed``.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in by), []).append(r)
    out = []
    for values, members in groups.items():
        ok = [r for r in members if r.get("status") == "ok"]
        entry: dict[str, Any] = dict(zip(by, values, strict=True))
        entry.update(n=len(ok), failed=len(members) - len(ok))
        for m in metrics:
            xs = [float(r[m]) for r in ok if isinstance(r.get(m), int | float)]
            entry[f"{m}_mean"] = statistics.fmean(xs) if xs else None
            entry[f"{m}_std"] = statistics.stdev(xs) if len(xs) > 1 else None
        out.append(entry)
    return out


def pick_fields(names: Sequence[str], prefixes: Sequence[str] = ("map_pct_at_",)) -> FieldPicker:
    """A row picker keeping ``names`` (None when missing) and every key starting with a prefix."""

    def pick(summary: dict[str, Any]) -> dict[str, Any]:
        out = {n: summary.get(n) for n in names}
        out.update({k: v for k, v in summary.items() if k.startswith(tuple(prefixes))})
        return out

    return pick


# ------------------------------------------------------------------------------------------
# One grid command from options to summary
# ------------------------------------------------------------------------------------------


@dataclass
class ExecOptions:
    """Where and how the cells run (none of this changes the results or the run keys)."""

    executor: str = "local"  # local | ray | slurm | inline
    jobs: int = 2  # cells at the same time
    threads: int | None = 1  # torch threads per cell
    timeout_s: float | None = None  # per-cell limit
    ray_address: str | None = None
    slurm_cluster: str = "slurm"  # submitit cluster: slurm | local
    slurm_parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class GridSpec:
    """A fully built grid: what to record, what to run, how to summarise."""

    command: str  # "data-scaling" | "sampling-ratio"
    cells: list[Cell]
    config: dict[str, Any]  # recorded in meta.json: grid-level options + base config
    seeds: dict[str, Any]
    axes: dict[str, Any]  # this invocation's axes (appended to grid.json)
    group_by: list[str]  # aggregate over cells sharing these axes
    metrics: list[str]  # aggregated columns
    pick: FieldPicker
    # Builds, in the parent before any cell starts, what the cells would otherwise race to build
    # and cache (sampling-ratio EGS: the frames dataset and the pretrained encoder).
    prepare: Callable[[GridSpec], None] | None = None


def execute_grid(
    spec: GridSpec,
    opts: ExecOptions | None = None,
    out: str | None = None,
    reporter: Reporter | None = None,
    cell_fn: Callable[[dict[str, Any]], dict[str, Any]] = train_cell,
) -> dict[str, Any]:
    """Create or resume the run of any grid command, run the missing cells, write
    ``summary.json``. ``spec.prepare`` runs first when the cells are real trainings.

    Returns:
        The JSON summary: run dir, counts, per-group mean/std/n, wall time.
    """
    from tal_bench.records import create_run

    opts = opts or ExecOptions()
    check_executor_options(opts.executor, opts.jobs, opts.timeout_s, opts.slurm_cluster)
    if spec.prepare is not None and cell_fn is train_cell:
        spec.prepare(spec)
    run = create_run(out, spec.command, spec.config, spec.seeds)
    executor = make_executor(
        opts.executor, opts.jobs, opts.timeout_s, opts.threads, run.path / "submitit",
        opts.ray_address, opts.slurm_cluster, opts.slurm_parameters,
    )  # fmt: skip
    _log_invocation(run, spec, opts)
    try:
        with _sigterm_as_interrupt():
            result = run_grid(run, spec.cells, executor, spec.pick, cell_fn, opts.threads, reporter)
    except BaseException:
        run.finish("interrupted")
        raise
    summary = {
        "command": spec.command,
        "run_dir": str(run.path),
        "executor": opts.executor,
        "jobs": opts.jobs,
        **result.counts,
        "complete": sum(1 for r in result.rows if _is_ok_cell(r)),
        "wall_time_s": round(result.wall_time_s, 3),
        "group_by": list(spec.group_by),
        "groups": aggregate(result.rows, spec.group_by, spec.metrics),
    }
    run.write_json("summary", summary)
    run.finish("ok" if summary["complete"] == len(spec.cells) else "failed")
    return summary


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (scancel, Slurm time limit, ``timeout``) like Ctrl-C while a grid runs.

    The executors then kill their workers and the run is marked ``interrupted``; the finished
    cells are already in ``rows.jsonl``, so the same command resumes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _log_invocation(run: Any, spec: GridSpec, opts: ExecOptions) -> None:
    """Append this invocation's axes and executor options to ``grid.json`` (a resume log)."""
    import json

    path = run.path / "grid.json"
    history = json.loads(path.read_text()) if path.exists() else {"invocations": []}
    entry = {"axes": spec.axes, "cells": len(spec.cells), "exec": opts.__dict__}
    history["invocations"].append(entry)
    run.write_json("grid", history)
