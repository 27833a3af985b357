"""Grid axes: --fractions / --ratios / --strategies parsing, run keys, aggregation."""

from __future__ import annotations

import math

import pytest

from tal_bench.config import config_hash
from tal_bench.errors import TalBenchError
from tal_bench.pipelines.data_scaling import (
    DEFAULT_FRACTIONS_PCT,
    build_data_scaling,
    parse_fractions,
)
from tal_bench.pipelines.grid import aggregate, drop_paths, pick_fields, run_key, step_time_ms
from tal_bench.pipelines.sampling_ratio import (
    build_sampling_ratio,
    check_kind,
    parse_choices,
    parse_ratios,
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("1..100", [1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100]),
        ("5..60", [5, 7, 10, 15, 20, 30, 50, 60]),  # the endpoints join the default grid
        ("4..6", [4, 5, 6]),
        ("10..10", [10]),
        ("10..50:20", [10, 30, 50]),
        ("10..55:20", [10, 30, 50]),  # the range stops at or below B
        ("1..2:0.25", [1, 1.25, 1.5, 1.75, 2]),
        ("1..100:33", [1, 34, 67, 100]),
        ("3,1,2", [3, 1, 2]),  # a list is taken as given, in its order
        (" 2.5 , 100 ", [2.5, 100]),
        ("100", [100]),
    ],
)
def test_parse_fractions_expands(spec: str, expected: list[float]) -> None:
    assert parse_fractions(spec) == pytest.approx(expected)


def test_default_grid_is_dense_at_small_fractions() -> None:
    assert DEFAULT_FRACTIONS_PCT[0] == 1 and DEFAULT_FRACTIONS_PCT[-1] == 100
    steps = [b - a for a, b in zip(DEFAULT_FRACTIONS_PCT, DEFAULT_FRACTIONS_PCT[1:], strict=False)]
    assert steps == sorted(steps)  # gaps only grow
    assert steps[0] == 1


def test_the_default_grid_is_the_studys_12_fractions_by_5_slices() -> None:
    spec = build_data_scaling()  # the README's main job: etad, 1..100, 5 slices as the study
    assert spec.axes["slices"] == 5 and len(spec.cells) == 12 * 5
    assert {c.params["slice"] for c in spec.cells} == set(range(5))
    assert all(c.params["seed"] == c.params["slice"] for c in spec.cells)  # seed + slice


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("0..100", "outside 1-100"),
        ("1..101", "outside 1-100"),
        ("0.5", "outside 1-100"),
        ("50..10", "50 > 10"),
        ("1..100:0", "step must be > 0"),
        ("1..100:-5", "not a number"),
        ("1..100:", "not a number"),
        ("1..5..9", "write A..B"),
        ("a,b", "'a' is not a number"),
        ("1,,2", "empty list item"),
        ("5,10,5", "5 given twice"),
        ("1..x", "'x' is not a number"),
        ("nan", "not a number"),
        ("-3", "not a number"),
    ],
)
def test_parse_fractions_errors_are_one_line(spec: str, needle: str) -> None:
    with pytest.raises(TalBenchError) as err:
        parse_fractions(spec)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_parse_ratios_and_choices() -> None:
    assert parse_ratios("0.01,0.06,1.0") == [0.01, 0.06, 1.0]
    for bad in ("", "0", "1.5", "0.1,,0.2", "0.1,0.1", "x"):
        with pytest.raises(TalBenchError):
            parse_ratios(bad)
    allowed = ("random", "grid", "block")
    assert parse_choices("block, random", allowed, "--strategies") == ["block", "random"]
    with pytest.raises(TalBenchError, match="unknown 'rnd'; choose from random, grid, block"):
        parse_choices("rnd", allowed, "--strategies")
    with pytest.raises(TalBenchError, match="given twice"):
        parse_choices("grid,grid", allowed, "--strategies")


def test_kinds_and_egs_ratios() -> None:
    check_kind("dps")
    check_kind("egs")
    with pytest.raises(TalBenchError, match="unknown --kind") as err:
        check_kind("xyz")
    assert "\n" not in str(err.value)
    assert parse_ratios("0,0.1,1.0", allow_zero=True) == [0.0, 0.1, 1.0]
    with pytest.raises(TalBenchError, match=r"outside \[0, 1\]"):
        parse_ratios("0,1.2", allow_zero=True)


def test_egs_grid_trains_strategy_free_ratios_once() -> None:
    spec = build_sampling_ratio("etad", "egs", "0,0.1,0.3,1.0", "random,grid,block")
    cells = [(c.params["egs_strategy"], c.params["egs_ratio"]) for c in spec.cells]
    # 0 (frozen encoder) and 1.0 (every snippet) do not depend on the strategy
    assert cells == [("random", 0.0), ("random", 0.1), ("random", 0.3), ("random", 1.0),
                     ("grid", 0.1), ("grid", 0.3), ("block", 0.1), ("block", 0.3)]  # fmt: skip
    assert spec.config["preset"] == "egs" and spec.seeds == {"train": [0]}
    assert spec.group_by == ["egs_strategy", "egs_ratio"]
    assert "step_mem_mib" in spec.metrics
    ov = spec.cells[6].payload["overrides"]["model"]
    assert (ov["egs_ratio"], ov["egs_strategy"]) == (0.1, "block")
    assert len({c.key for c in spec.cells}) == len(spec.cells)
    with pytest.raises(TalBenchError, match="samples randomly only"):
        build_sampling_ratio("etad", "egs", "0.1", "grid", sets=["model.egs_variant=chunked"])


CONFIG = {
    "data": {"dataset": "d", "fraction": 10.0, "slice": 2, "num_workers": 4},
    "train": {"epochs": 3, "seed": 5, "threads": 1},
    "model": {"hidden": 8},
}
PATHS = ["data.fraction", "data.slice", "train.seed"]


def test_run_key_is_the_hash_of_base_config_and_axes() -> None:
    cell = {"fraction_pct": 10.0, "slice": 2, "seed": 5}
    base = {"data": {"dataset": "d"}, "train": {"epochs": 3}, "model": {"hidden": 8}}
    assert drop_paths(CONFIG, [*PATHS, "train.threads", "data.num_workers"]) == base
    assert run_key(CONFIG, cell, PATHS) == config_hash({"config": base, "cell": cell}, length=16)
    assert CONFIG["train"]["threads"] == 1  # drop_paths copies


def test_run_key_ignores_threads_but_not_results_relevant_keys() -> None:
    cell = {"fraction_pct": 10.0, "slice": 2, "seed": 5}
    key = run_key(CONFIG, cell, PATHS)
    more_threads = {**CONFIG, "train": {**CONFIG["train"], "threads": 8}}
    assert run_key(more_threads, cell, PATHS) == key
    other_epochs = {**CONFIG, "train": {**CONFIG["train"], "epochs": 4}}
    assert run_key(other_epochs, cell, PATHS) != key
    assert run_key(CONFIG, {**cell, "slice": 3}, PATHS) != key


def test_aggregate_mean_and_sample_std_by_hand() -> None:
    rows = [
        {"fraction_pct": 10.0, "status": "ok", "map_avg_pct": 30.0},
        {"fraction_pct": 10.0, "status": "ok", "map_avg_pct": 34.0},
        {"fraction_pct": 10.0, "status": "ok", "map_avg_pct": 35.0},
        {"fraction_pct": 10.0, "status": "failed", "map_avg_pct": None},
        {"fraction_pct": 50.0, "status": "ok", "map_avg_pct": 40.0},
    ]
    g10, g50 = aggregate(rows, ["fraction_pct"], ["map_avg_pct"])
    # mean (30 + 34 + 35) / 3 = 33; deviations -3, 1, 2 -> sum of squares 14 / (3 - 1) = 7.
    assert g10 == {
        "fraction_pct": 10.0,
        "n": 3,
        "failed": 1,
        "map_avg_pct_mean": 33.0,
        "map_avg_pct_std": pytest.approx(math.sqrt(7.0)),
    }
    assert g50["n"] == 1 and g50["map_avg_pct_mean"] == 40.0 and g50["map_avg_pct_std"] is None


def test_pick_fields_keeps_names_and_map_columns() -> None:
    pick = pick_fields(["map_avg_pct", "epochs"])
    summary = {"map_avg_pct": 12.5, "map_pct_at_0.30": 20.0, "mAP": {"0.30": 20.0}, "x": 1}
    assert pick(summary) == {"map_avg_pct": 12.5, "epochs": None, "map_pct_at_0.30": 20.0}
    assert pick({}) == {"map_avg_pct": None, "epochs": None}


def test_step_time_counts_the_last_partial_batch() -> None:
    # 3 epochs x ceil(20 / 8) = 9 iterations in 1.8 s -> 200 ms per iteration.
    summary = {"epochs": 3, "num_train_items": 20, "train_time_s": 1.8}
    assert step_time_ms(summary, 8) == pytest.approx(200.0)
    assert step_time_ms({"epochs": 3}, 8) is None


def test_full_ratio_is_trained_once_per_seed() -> None:
    # Ratio 1 samples every proposal whatever the strategy: 3 strategies x 1 ratio + 1 full cell
    # per seed, the full cell under the first strategy listed.
    spec = build_sampling_ratio(ratios="0.06,1.0", strategies="grid,random,block", seeds=2)
    got = [(c.params["seed"], c.params["dps_strategy"], c.params["dps_ratio"]) for c in spec.cells]
    assert got == [
        (0, "grid", 0.06), (0, "grid", 1.0), (0, "random", 0.06), (0, "block", 0.06),
        (1, "grid", 0.06), (1, "grid", 1.0), (1, "random", 0.06), (1, "block", 0.06),
    ]  # fmt: skip
