"""``talbench data-scaling``: train on p % of the training videos, t slices per p.

Each cell (fraction p, slice k) trains the model on the k-th random draw of p % of the
training videos (``data.fraction`` / ``data.slice``; the draw is ``tal_bench.data``'s
``sample_fraction``), evaluates on the whole test subset and appends one row. Slice k trains
with seed ``seed + k``: without that, the slices of p = 100 % (which all hold every video)
would be bit-identical repeats and the std at 100 % would say nothing about training noise.
The study (TU Delft TAL efficiency study, §3.2) used t = 5 slices per p on THUMOS14, and so
does the default grid.

Protocol options (:class:`Protocol`; the defaults are the study's): a fixed iteration budget
instead of fixed epochs (``train.budget``), nested and class-stratified draws (``data.nested``,
``data.draw``), and, for class-agnostic detectors, the video-level classifier trained on all
training videos instead of the drawn fraction (``eval.classifier_data``). They are config
fields, so they are part of every cell's run key and of the record's ``meta.json``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from tal_bench.config import merge, overrides_to_dict
from tal_bench.errors import TalBenchError
from tal_bench.pipelines.grid import (
    Cell,
    GridSpec,
    build_cells,
    parse_number,
    pick_fields,
)

COMMAND = "data-scaling"
# The study's grid (12 fractions x 5 slices), within 15 minutes on 2 cores on the embedded
# dataset (see --help).
DEFAULT_FRACTIONS = "1..100"
DEFAULT_SLICES = 5
AXES = {"fraction_pct": "data.fraction", "slice": "data.slice", "seed": "train.seed"}
ROW_FIELDS = (
    "video_ids_hash",
    "num_train_videos",
    "num_train_items",
    "num_test_videos",
    "epochs",
    "train_steps",
    "params",
    "train_time_s",
    "train_cpu_s",
    "eval_time_s",
    "peak_mem_mib",
    "map_avg_pct",
)
METRICS = ["map_avg_pct", "train_time_s", "train_cpu_s", "peak_mem_mib", "num_train_videos"]

# The default grid of ``A..B``: dense at small fractions, where the learning curve bends
# (the study sampled 1-5 % steps at the low end), sparse where it has flattened.
DEFAULT_FRACTIONS_PCT = (1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100)
# Launch order of the cells (see cell_cost) when a preset does not say how long its full-data
# training takes (``full_train_s`` beside its sections: tal_bench.pipelines.resolve.COST_KEY).
DEFAULT_FULL_TRAIN_S = 60.0
CELL_OVERHEAD_S = 25.0
_FRACTION_HELP = "write A..B (default grid), A..B:STEP, or a list such as 1,5,10,100"


def _check_pct(value: float, spec: str) -> float:
    if not 1.0 <= value <= 100.0:
        raise TalBenchError(
            f"bad --fractions {spec!r}: {value:g} is outside 1-100 (percent of the training "
            f"videos); {_FRACTION_HELP}"
        )
    return value


def parse_fractions(spec: str) -> list[float]:
    """Expand a ``--fractions`` spec into percentages of the training videos.

    * ``A..B``: the default grid ``1,2,3,5,7,10,15,20,30,50,70,100`` restricted to [A, B],
      plus A and B themselves (``1..100`` -> the 12 default values; ``5..60`` -> 5, 7, 10, 15,
      20, 30, 50, 60).
    * ``A..B:S``: the arithmetic range A, A+S, ... up to B (``10..50:20`` -> 10, 30, 50).
    * ``a,b,c``: exactly these values, in this order.

    Args:
        spec: the option text.

    Returns:
        Fractions in percent, each in [1, 100], no duplicates.

    Raises:
        TalBenchError: empty, malformed, out of 1-100, A > B, STEP <= 0, or duplicates.
    """
    text = spec.strip()
    if not text:
        raise TalBenchError(f"--fractions is empty; {_FRACTION_HELP}")
    if ".." in text:
        values = _parse_range(text, spec)
    else:
        items = text.split(",")
        if any(not item.strip() for item in items):
            raise TalBenchError(f"bad --fractions {spec!r}: empty list item; {_FRACTION_HELP}")
        values = [
            _check_pct(parse_number(i, spec, "--fractions", _FRACTION_HELP), spec) for i in items
        ]
    dupes = sorted({v for v in values if values.count(v) > 1})
    if dupes:
        shown = ", ".join(f"{v:g}" for v in dupes)
        raise TalBenchError(f"bad --fractions {spec!r}: {shown} given twice; list each once")
    return values


def _parse_range(text: str, spec: str) -> list[float]:
    span, _, step_text = text.partition(":")
    lo_text, sep, hi_text = span.partition("..")
    if not sep or ".." in hi_text:
        raise TalBenchError(f"bad --fractions {spec!r}; {_FRACTION_HELP}")
    lo = _check_pct(parse_number(lo_text, spec, "--fractions", _FRACTION_HELP), spec)
    hi = _check_pct(parse_number(hi_text, spec, "--fractions", _FRACTION_HELP), spec)
    if lo > hi:
        raise TalBenchError(f"bad --fractions {spec!r}: {lo:g} > {hi:g}; write the smaller first")
    if not step_text and ":" not in text:
        inner = [float(v) for v in DEFAULT_FRACTIONS_PCT if lo <= v <= hi]
        return sorted({lo, hi, *inner})
    step = parse_number(step_text, spec, "--fractions step", _FRACTION_HELP)
    if step <= 0:
        raise TalBenchError(f"bad --fractions {spec!r}: the step must be > 0; {_FRACTION_HELP}")
    count = math.floor((hi - lo) / step + 1e-9) + 1
    return [round(lo + i * step, 9) for i in range(count)]


@dataclass(frozen=True)
class Protocol:
    """How the cells of a learning curve are trained (defaults: the study's protocol).

    Attributes:
        budget: "epochs" (``train.epochs`` passes over the drawn videos) or "steps" (the
            optimizer steps of ``train.epochs`` passes over all training videos).
        draw: "uniform" (re-drawn until every class appears) or "stratified" (class shares kept).
        nested: the p % draw holds every smaller draw of its slice.
        classifier_data: "fraction" (the internal video-level classifier trains on the draw) or
            "all" (on every training video, like the paper's fixed external scores).
    """

    budget: str = "epochs"
    draw: str = "uniform"
    nested: bool = False
    classifier_data: str = "fraction"

    def overrides(self) -> dict[str, Any]:
        """The config fields this protocol sets, only where it differs from the study's."""
        study, out = Protocol(), {}
        for name, path in (("budget", ("train", "budget")), ("draw", ("data", "draw")),
                           ("nested", ("data", "nested")),
                           ("classifier_data", ("eval", "classifier_data"))):  # fmt: skip
            if getattr(self, name) != getattr(study, name):
                out.setdefault(path[0], {})[path[1]] = getattr(self, name)
        return out


def cell_cost(fraction_pct: float, full_train_s: float = DEFAULT_FULL_TRAIN_S) -> float:
    """A cell's expected run time in seconds: start-up and evaluation on the whole test subset
    (``CELL_OVERHEAD_S``, the same at every fraction) plus training, which grows with the
    fraction up to ``full_train_s`` at 100 % (ETAD's cpu preset on the embedded dataset: 64 s
    for a 100 % cell, 27 s for a 10 % one). The grid starts the costliest cells first."""
    return CELL_OVERHEAD_S + full_train_s * fraction_pct / 100.0


def full_train_s(model: str, preset: str) -> float:
    """The preset's ``full_train_s`` (seconds of one-thread training on all training videos of
    the embedded dataset, as measured where the preset is defined), else a typical value: it
    only orders the cells, never changes what they compute."""
    from tal_bench.pipelines.resolve import COST_KEY, load_presets

    value = load_presets(model).get(preset, {}).get(COST_KEY)
    return float(value) if isinstance(value, int | float) and value > 0 else DEFAULT_FULL_TRAIN_S


def base_overrides(
    dataset: str | None, sets: Sequence[str], protocol: Protocol | None = None
) -> dict[str, Any]:
    """``--dataset``, the protocol options and ``--set KEY=VALUE`` as one nested override
    dict (``--set`` wins)."""
    base: dict[str, Any] = {"data": {"dataset": dataset}} if dataset else {}
    base = merge(base, (protocol or Protocol()).overrides())
    return merge(base, overrides_to_dict(list(sets)))


def build_data_scaling(
    model: str | Sequence[str] = "etad",
    fractions: str | Sequence[float] = DEFAULT_FRACTIONS,
    slices: int = DEFAULT_SLICES,
    dataset: str | None = None,
    preset: str = "cpu",
    sets: Sequence[str] = (),
    seed: int = 0,
    threads: int | None = 1,
    protocol: Protocol | None = None,
) -> GridSpec:
    """Build the data-scaling grid over one or more models: slice-major, so the first pass
    already gives a whole curve per model.

    Every model trains with its own ``preset`` (each must have it) and the same overrides;
    every row carries its ``model``. A cell's run key is that of the same cell in a grid of
    its model alone, so a one-model grid resumes as before and its cells keep their keys.

    Args:
        model: registered model name, or several (``"etad,actionformer"`` or a list).
        fractions: a ``--fractions`` spec (see ``parse_fractions``) or explicit percentages.
        slices: random draws per fraction (>= 1).
        dataset: registered dataset; ``None`` = the preset's.
        preset: preset name, for every model.
        sets: ``KEY=VALUE`` overrides shared by all cells.
        seed: base seed; slice k trains with ``seed + k``.
        threads: torch threads per cell.
        protocol: protocol options (default: the study's).

    Raises:
        TalBenchError: unknown or repeated model, a model without ``preset``, bad fractions,
            slices < 1, an override setting a grid axis, bad config or protocol option.
    """
    from tal_bench.pipelines.resolve import parse_models

    models = parse_models(model)
    pcts = parse_fractions(fractions) if isinstance(fractions, str) else list(fractions)
    if slices < 1:
        raise TalBenchError(f"--slices must be >= 1, got {slices}")
    variants = [
        ({"fraction_pct": float(p), "slice": k, "seed": seed + k}, f"{p:g}% slice {k}")
        for k in range(slices)
        for p in pcts
    ]
    overrides = base_overrides(dataset, sets, protocol)
    cells, bases = [], {}
    for name in models:
        model_cells, bases[name] = build_cells(name, preset, overrides, variants, AXES, threads)
        _check_protocol(name, preset, overrides)
        train_s = full_train_s(name, preset)
        cells += [_with_model(c, name, train_s, len(models) > 1) for c in model_cells]
    if len(models) == 1:  # the layout of one-model runs before multi-model grids: they resume
        config = {"model": models[0], "preset": preset, "overrides": overrides,
                  "base": bases[models[0]]}  # fmt: skip
    else:
        config = {"model": ",".join(models), "models": models, "preset": preset,
                  "overrides": overrides, "bases": bases}  # fmt: skip
    return GridSpec(
        command=COMMAND,
        cells=cells,
        config=config,
        seeds={"base_seed": seed, "train": "base_seed + slice"},
        axes={
            "models": models,
            "fractions_pct": [float(p) for p in pcts],
            "slices": slices,
            "seed": seed,
        },  # fmt: skip
        group_by=["model", "fraction_pct"],
        metrics=METRICS,
        pick=pick_fields(ROW_FIELDS),
    )


def _with_model(cell: Cell, model: str, train_s: float, label: bool) -> Cell:
    """The cell with its model as a row column (added after the run key: see build_cells), its
    cost, and the model in its label when the grid has several."""
    return replace(
        cell,
        params={"model": model, **cell.params},
        label=f"{model} {cell.label}" if label else cell.label,
        cost=cell_cost(cell.params["fraction_pct"], train_s),
    )


def _check_protocol(model: str, preset: str, overrides: dict[str, Any]) -> None:
    """Fail before any cell runs on a protocol value the cells would reject."""
    from tal_bench.pipelines.resolve import apply_protocol, resolve_run_config
    from tal_bench.pipelines.train import check_protocol

    check_protocol(apply_protocol(resolve_run_config(model, preset, overrides)))
