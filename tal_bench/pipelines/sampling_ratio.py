"""``talbench sampling-ratio``: ETAD's detector-proposal-sampling study as a grid.

Each cell (ratio r, strategy s, seed) trains with ``model.dps_ratio = r`` and
``model.dps_strategy = s`` and records mAP, training time, peak memory and the mean training
step time. It reproduces the shape of ETAD Fig. 4 (mAP / memory / time vs DPS ratio, random
strategy; mAP saturates above ~6 %, drops sharply below 2 %) and Tab. 5 (random ≈ grid >
block at 6 %). Encoder gradient sampling (``--kind egs``, Fig. 5) needs end-to-end training
from video frames, which tal-bench does not implement; it is accepted by the parser and
answered with a one-line error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from tal_bench.errors import TalBenchError
from tal_bench.pipelines.data_scaling import base_overrides
from tal_bench.pipelines.grid import (
    ExecOptions,
    GridSpec,
    Reporter,
    build_cells,
    execute_grid,
    parse_number,
    pick_fields,
    train_cell,
)

COMMAND = "sampling-ratio"
KINDS = ("dps", "egs")
STRATEGIES = ("random", "grid", "block")
DEFAULT_RATIOS = "0.01,0.02,0.04,0.06,0.1,0.3,1.0"
DEFAULT_STRATEGIES = "random,grid,block"
AXES = {"dps_ratio": "model.dps_ratio", "dps_strategy": "model.dps_strategy", "seed": "train.seed"}
ROW_FIELDS = (
    "num_train_items",
    "epochs",
    "params",
    "train_time_s",
    "eval_time_s",
    "peak_mem_mib",
    "step_time_ms",
    "map_avg_pct",
)
METRICS = ["map_avg_pct", "train_time_s", "peak_mem_mib", "step_time_ms"]


def parse_ratios(spec: str, option: str = "--ratios") -> list[float]:
    """Parse a comma list of sampling ratios, each in (0, 1] (``0.06`` = 6 %).

    Raises:
        TalBenchError: empty, malformed, out of (0, 1] or duplicated values.
    """
    hint = "write a comma list of ratios in (0, 1], e.g. 0.01,0.06,1.0"
    items = spec.split(",")
    if not spec.strip() or any(not i.strip() for i in items):
        raise TalBenchError(f"bad {option} {spec!r}: empty value; {hint}")
    values = [parse_number(i, spec, option, hint) for i in items]
    for v in values:
        if not 0.0 < v <= 1.0:
            raise TalBenchError(f"bad {option} {spec!r}: {v:g} is outside (0, 1]; {hint}")
    if len(set(values)) != len(values):
        raise TalBenchError(f"bad {option} {spec!r}: a value is given twice; list each once")
    return values


def parse_choices(spec: str, allowed: Sequence[str], option: str) -> list[str]:
    """Parse a comma list of names that must each be in ``allowed`` (no duplicates)."""
    names = [n.strip() for n in spec.split(",")]
    if not spec.strip() or any(not n for n in names):
        raise TalBenchError(f"bad {option} {spec!r}: empty name; choose from {', '.join(allowed)}")
    for n in names:
        if n not in allowed:
            raise TalBenchError(f"bad {option}: unknown {n!r}; choose from {', '.join(allowed)}")
    if len(set(names)) != len(names):
        raise TalBenchError(f"bad {option} {spec!r}: a name is given twice; list each once")
    return names


def check_kind(kind: str) -> None:
    """Accept ``dps``; answer ``egs`` (and anything else) with a one-line error."""
    if kind == "egs":
        raise TalBenchError(
            "--kind egs (encoder gradient sampling) needs end-to-end training of the video "
            "encoder from frames, which tal-bench does not implement yet; use --kind dps"
        )
    if kind not in KINDS:
        raise TalBenchError(f"unknown --kind {kind!r}; choose dps (or egs, not implemented yet)")


def build_sampling_ratio(
    model: str = "etad",
    kind: str = "dps",
    ratios: str | Sequence[float] = DEFAULT_RATIOS,
    strategies: str | Sequence[str] = DEFAULT_STRATEGIES,
    seeds: int = 3,
    dataset: str | None = None,
    preset: str = "cpu",
    sets: Sequence[str] = (),
    seed: int = 0,
    threads: int | None = 1,
) -> GridSpec:
    """Build the (seed, strategy, ratio) grid, seed-major (one full sweep per seed first).

    Ratio 1.0 (no sampling) gets one cell per seed, under the first strategy: every strategy
    would train on exactly the same proposals.

    Args:
        model: registered model with ``dps_ratio`` / ``dps_strategy`` config fields.
        kind: ``dps`` (``egs`` raises: not implemented).
        ratios: comma list in (0, 1] or explicit values.
        strategies: comma list of ``random``, ``grid``, ``block``.
        seeds: training seeds per (ratio, strategy): ``seed, seed + 1, ...``.
        dataset, preset, sets, threads: as for ``build_data_scaling``.
        seed: first seed.

    Raises:
        TalBenchError: egs, bad ratios/strategies, seeds < 1, a model without DPS fields.
    """
    check_kind(kind)
    rs = parse_ratios(ratios) if isinstance(ratios, str) else list(ratios)
    strats = (
        parse_choices(strategies, STRATEGIES, "--strategies")
        if isinstance(strategies, str)
        else list(strategies)
    )
    if seeds < 1:
        raise TalBenchError(f"--seeds must be >= 1, got {seeds}")
    # Ratio 1 samples every proposal whatever the strategy, so its cells would be identical
    # runs (and the costliest of the grid): only the first strategy trains it, and the report
    # shares that point with the others (plots.figures.sampling_ratio_table).
    variants = [
        ({"dps_ratio": float(r), "dps_strategy": s, "seed": sd}, f"{s} {r:g} seed {sd}")
        for sd in range(seed, seed + seeds)
        for s in strats
        for r in rs
        if r < 1.0 or s == strats[0]
    ]
    overrides = base_overrides(dataset, sets)
    cells, base = build_cells(model, preset, overrides, variants, AXES, threads)
    # Training evaluates a ratio of the proposals: more proposals, longer cells (launched first).
    cells = [replace(c, cost=1.0 + 2.0 * c.params["dps_ratio"]) for c in cells]
    config = {"kind": kind, "model": model, "preset": preset, "overrides": overrides, "base": base}
    return GridSpec(
        command=COMMAND,
        cells=cells,
        config=config,
        seeds={"train": list(range(seed, seed + seeds))},
        axes={"ratios": [float(r) for r in rs], "strategies": strats, "seeds": seeds, "seed": seed},
        group_by=["dps_strategy", "dps_ratio"],
        metrics=METRICS,
        pick=pick_fields(ROW_FIELDS),
    )


def run_sampling_ratio(
    spec: GridSpec,
    opts: ExecOptions | None = None,
    out: str | None = None,
    reporter: Reporter | None = None,
    cell_fn: Callable[[dict[str, Any]], dict[str, Any]] = train_cell,
) -> dict[str, Any]:
    """Run (or resume) a sampling-ratio grid built by :func:`build_sampling_ratio`."""
    return execute_grid(spec, opts or ExecOptions(), out, reporter, cell_fn)
