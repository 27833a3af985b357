"""``talbench sampling-ratio``: ETAD's sampling studies as grids, DPS and EGS.

``--kind dps`` (Detector Proposal Sampling): each cell (ratio r, strategy s, seed) trains with
``model.dps_ratio = r`` and ``model.dps_strategy = s`` and records mAP, training time, peak
memory and the mean training step time. It reproduces the shape of ETAD Fig. 4 (mAP / memory /
time vs DPS ratio, random strategy; mAP saturates above ~6 %, drops sharply below 2 %) and
Tab. 5 (random ≈ grid > block at 6 %).

``--kind egs`` (Encoder Gradient Sampling, ``tal_bench.models.egs``): the same with
``model.egs_ratio`` / ``model.egs_strategy`` on a frames dataset with a video encoder (preset
``egs``): ETAD Fig. 5 (mAP, training time and memory vs EGS ratio) and Tab. 5's EGS column.
Ratio 0 is the frozen encoder (the pre-extracted-features baseline). Memory is
``step_mem_mib`` (``train.mem_probe``): CUDA's max allocated, or on the CPU the tensor peak of
one training step. Before the cells start, the parent process makes the frames dataset and the
pretrained encoder once (both cached), so parallel cells do not race to build them.

Where the strategy cannot matter it is trained once per seed (under the first strategy) and
the report shares that point: DPS and EGS ratio 1.0 (nothing is sampled), EGS ratio 0 (nothing
gets gradients).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from tal_bench.config import SAMPLING_STRATEGIES
from tal_bench.errors import TalBenchError
from tal_bench.pipelines.data_scaling import base_overrides
from tal_bench.pipelines.grid import (
    GridSpec,
    build_cells,
    parse_number,
    pick_fields,
)

COMMAND = "sampling-ratio"
KINDS = ("dps", "egs")
DEFAULT_RATIOS = "0.01,0.02,0.04,0.06,0.1,0.3,1.0"
DEFAULT_EGS_RATIOS = "0,0.1,0.3,1.0"
DEFAULT_STRATEGIES = "random,grid,block"
DEFAULT_PRESETS = {"dps": "cpu", "egs": "egs"}
DEFAULT_SEEDS = {"dps": 3, "egs": 1}  # one EGS sweep already trains 8 encoders
ROW_FIELDS = (
    "num_train_items",
    "epochs",
    "params",
    "train_time_s",
    "train_cpu_s",
    "eval_time_s",
    "peak_mem_mib",
    "peak_mem_kind",
    "step_mem_mib",
    "step_mem_kind",
    "step_time_ms",
    "final_loss",
    "map_avg_pct",
)
METRICS = ["map_avg_pct", "train_time_s", "peak_mem_mib", "step_time_ms"]
EGS_METRICS = ["map_avg_pct", "train_time_s", "step_mem_mib", "step_time_ms"]


def axes_of(kind: str) -> dict[str, str]:
    """Row column -> config path of the ratio, strategy and seed axes of ``kind``."""
    return {
        f"{kind}_ratio": f"model.{kind}_ratio",
        f"{kind}_strategy": f"model.{kind}_strategy",
        "seed": "train.seed",
    }


def parse_ratios(spec: str, option: str = "--ratios", allow_zero: bool = False) -> list[float]:
    """Parse a comma list of sampling ratios, each in (0, 1] (``0.06`` = 6 %), or in [0, 1]
    with ``allow_zero`` (EGS: 0 = frozen encoder).

    Raises:
        TalBenchError: empty, malformed, out of range or duplicated values.
    """
    lo = "[0, 1]" if allow_zero else "(0, 1]"
    hint = f"write a comma list of ratios in {lo}, e.g. " + (
        "0,0.1,0.3,1.0" if allow_zero else "0.01,0.06,1.0"
    )
    items = spec.split(",")
    if not spec.strip() or any(not i.strip() for i in items):
        raise TalBenchError(f"bad {option} {spec!r}: empty value; {hint}")
    values = [parse_number(i, spec, option, hint) for i in items]
    for v in values:
        if not (0.0 <= v <= 1.0 if allow_zero else 0.0 < v <= 1.0):
            raise TalBenchError(f"bad {option} {spec!r}: {v:g} is outside {lo}; {hint}")
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
    """Accept ``dps`` and ``egs``; anything else is a one-line error."""
    if kind not in KINDS:
        raise TalBenchError(f"unknown --kind {kind!r}; choose dps or egs")


SAMPLERS = {"dps": "detector proposal sampling (DPS)", "egs": "encoder gradient sampling (EGS)"}


def check_sampling_model(model: str, kind: str) -> None:
    """The model must have the ``<kind>_ratio`` / ``<kind>_strategy`` fields (ETAD's samplers);
    anything else is one line naming the models that have them."""
    from dataclasses import fields

    from tal_bench.models import get_spec, list_models

    def has_sampler(name: str) -> bool:
        return {f"{kind}_ratio", f"{kind}_strategy"} <= {
            f.name for f in fields(get_spec(name).config_cls)
        }

    if not has_sampler(model):
        able = [m for m in list_models() if has_sampler(m)]
        raise TalBenchError(
            f"model {model!r} has no {SAMPLERS[kind]}, which sampling-ratio --kind {kind} "
            f"varies; use --model {' or '.join(able) or '(no registered model has it)'}"
        )


def strategy_free(kind: str, ratio: float) -> bool:
    """Whether every strategy trains the same at ``ratio`` (1: all sampled; EGS 0: none)."""
    return ratio >= 1.0 or (kind == "egs" and ratio <= 0.0)


def build_sampling_ratio(
    model: str = "etad",
    kind: str = "dps",
    ratios: str | Sequence[float] | None = None,
    strategies: str | Sequence[str] = DEFAULT_STRATEGIES,
    seeds: int | None = None,
    dataset: str | None = None,
    preset: str | None = None,
    sets: Sequence[str] = (),
    seed: int = 0,
    threads: int | None = 1,
) -> GridSpec:
    """Build the (seed, strategy, ratio) grid, seed-major (one full sweep per seed first).

    Ratios where the strategy cannot matter (:func:`strategy_free`) get one cell per seed,
    under the first strategy.

    Args:
        model: registered model with ``<kind>_ratio`` / ``<kind>_strategy`` config fields.
        kind: ``dps`` or ``egs``.
        ratios: comma list (DPS in (0, 1], EGS in [0, 1]) or explicit values; default
            ``DEFAULT_RATIOS`` / ``DEFAULT_EGS_RATIOS``.
        strategies: comma list of ``random``, ``grid``, ``block``.
        seeds: training seeds per (ratio, strategy): ``seed, seed + 1, ...``; default 3 (DPS)
            or 1 (EGS).
        dataset, sets, threads: as for ``build_data_scaling``.
        preset: default ``cpu`` (DPS) or ``egs`` (EGS: frames dataset, video encoder).
        seed: first seed.

    Raises:
        TalBenchError: bad kind, ratios or strategies, seeds < 1, a model without the fields.
    """
    check_kind(kind)
    check_sampling_model(model, kind)
    if ratios is None:
        ratios = DEFAULT_EGS_RATIOS if kind == "egs" else DEFAULT_RATIOS
    rs = parse_ratios(ratios, allow_zero=kind == "egs") if isinstance(ratios, str) else list(ratios)
    strats = (
        parse_choices(strategies, SAMPLING_STRATEGIES, "--strategies")
        if isinstance(strategies, str)
        else list(strategies)
    )
    seeds = DEFAULT_SEEDS[kind] if seeds is None else seeds
    preset = preset or DEFAULT_PRESETS[kind]
    if seeds < 1:
        raise TalBenchError(f"--seeds must be >= 1, got {seeds}")
    # Where the strategy cannot matter its cells would be identical runs (ratio 1 is also the
    # costliest of the grid): only the first strategy trains them, and the report shares that
    # point with the others (plots.figures.sampling_ratio_table).
    ratio_col, strategy_col = f"{kind}_ratio", f"{kind}_strategy"
    variants = [
        ({ratio_col: float(r), strategy_col: s, "seed": sd}, f"{s} {r:g} seed {sd}")
        for sd in range(seed, seed + seeds)
        for s in strats
        for r in rs
        if not strategy_free(kind, r) or s == strats[0]
    ]
    overrides = base_overrides(dataset, sets)
    cells, base = build_cells(model, preset, overrides, variants, axes_of(kind), threads)
    # More sampled proposals / snippets, longer cells: launched first.
    cells = [replace(c, cost=1.0 + 2.0 * c.params[f"{kind}_ratio"]) for c in cells]
    config = {"kind": kind, "model": model, "preset": preset, "overrides": overrides, "base": base}
    return GridSpec(
        command=COMMAND,
        cells=cells,
        config=config,
        seeds={"train": list(range(seed, seed + seeds))},
        axes={"ratios": [float(r) for r in rs], "strategies": strats, "seeds": seeds, "seed": seed},
        group_by=[strategy_col, ratio_col],
        metrics=EGS_METRICS if kind == "egs" else METRICS,
        pick=pick_fields(ROW_FIELDS),
        prepare=prepare_shared_data if kind == "egs" else None,
    )


def prepare_shared_data(spec: GridSpec) -> None:
    """Build what every cell reads and caches (EGS: the frames dataset, the pretrained
    encoder) once, here, before cells run side by side."""
    from tal_bench.data import create_dataset
    from tal_bench.models import create_model
    from tal_bench.pipelines.resolve import resolve_run_config

    if not spec.cells:
        return
    payload = spec.cells[0].payload
    cfg = resolve_run_config(payload["model"], payload["preset"], payload["overrides"])
    ds = create_dataset(cfg.data.dataset, cfg.data.root)
    model = create_model(cfg.model_name, cfg.model, ds.feature_meta.input_dim, len(ds.classes))
    if hasattr(model, "prepare"):
        model.prepare(ds, ds.resolve_subset(cfg.data.train_subset))
