"""Several models in one data-scaling run: fits per model, the report's model comparison
(Fig. 2, Table 2, projections side by side) and runs recognised by their meta.json command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tal_bench.errors import TalBenchError
from tal_bench.pipelines.fit import run_fit
from tal_bench.pipelines.report import build_report
from tal_bench.records import create_run

FRACTIONS = (10.0, 20.0, 40.0, 100.0)
# (model, fraction) -> per-slice (mAP, train s, train CPU s); slice k of every cell.
CELLS = {
    ("alpha", 10.0): [(10.0, 2.0, 3.0), (12.0, 2.5, 3.5)],
    ("alpha", 20.0): [(20.0, 4.0, 6.0), (23.0, 4.0, 6.0)],
    ("alpha", 40.0): [(31.0, 8.0, 12.0), (33.0, 8.5, 12.5)],
    ("alpha", 100.0): [(50.0, 10.0, 20.0), (54.0, 14.0, 22.0)],
    ("beta", 10.0): [(5.0, 1.0, 1.5), (6.0, 1.0, 1.5)],
    ("beta", 20.0): [(12.0, 2.0, 3.0), (14.0, 2.0, 3.0)],
    ("beta", 40.0): [(22.0, 4.0, 6.0), (21.0, 4.0, 6.0)],
    ("beta", 100.0): [(40.0, 7.0, 9.0), (40.0, 9.0, 13.0)],
}


def _grid(path: Path, command: str = "data-scaling", extra: dict | None = None) -> Path:
    config = {"model": "alpha,beta", "models": ["alpha", "beta"], "preset": "cpu"}
    run = create_run(path, command, config, {"base_seed": 0})
    for (model, frac), slices in CELLS.items():
        for k, (map_pct, train_s, cpu_s) in enumerate(slices):
            run.append_row({
                "kind": "cell", "run_key": f"{model}-{frac:g}-{k}", "model": model,
                "fraction_pct": frac, "slice": k, "seed": k, "map_avg_pct": map_pct,
                "train_time_s": train_s, "train_cpu_s": cpu_s, "status": "ok", "error": None,
                **(extra or {}),
            })  # fmt: skip
    run.finish("ok")
    return path


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = _grid(tmp_path_factory.mktemp("runs") / "cmp")
    run_fit(run, "5pl,pow3", target_pct=100.0, n_boot=5, n_boot_backtest=5, seed=0)
    return run


def _sd(*xs: float) -> float:
    mean = sum(xs) / len(xs)
    return math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))


def test_fit_writes_one_fit_per_model(fitted: Path) -> None:
    assert not (fitted / "fits.json").exists()
    for model in ("alpha", "beta"):
        fits = json.loads((fitted / "fits" / model / "fits.json").read_text())
        assert fits["schema"] == "talbench-fits/2" and fits["input"]["model"] == model
        assert (fitted / "fits" / model / "fits.png").is_file()
        anchors = {a["fraction_pct"]: a["map_mean_pct"] for a in fits["anchors"]}
        assert sorted(anchors) == list(FRACTIONS)
        for frac in FRACTIONS:  # the model's own cells, by hand
            values = [m for m, _, _ in CELLS[(model, frac)]]
            assert anchors[frac] == pytest.approx(sum(values) / 2)
        assert fits["projection"]["actual"] == pytest.approx({"alpha": 52.0, "beta": 40.0}[model])
        assert fits["projection"]["fractions_used"] == [10.0, 20.0, 40.0]


def test_fit_of_several_models_checks_all_before_writing(tmp_path: Path) -> None:
    run = _grid(tmp_path / "cmp")
    with pytest.raises(TalBenchError, match="fit range holds 2 fraction"):
        run_fit(run, "5pl", upto_pct=20.0, n_boot=2, n_boot_backtest=2)
    assert not (run / "fits").exists()
    with pytest.raises(TalBenchError, match="no rows of model 'gamma'; its models: alpha, beta"):
        run_fit(run, "5pl", model="gamma")


@pytest.fixture(scope="module")
def report(fitted: Path, tmp_path_factory: pytest.TempPathFactory):
    root = fitted.parent
    # the same rows under another command: a kind of grid the report does not know
    _grid(root / "novel", "novel-grid")
    return build_report([fitted, root / "novel"], tmp_path_factory.mktemp("out") / "r", ("png",))


def test_learning_curves_show_every_model_with_bands(report) -> None:
    curves = report.plots["learning_curves"].data.set_index(["model", "fraction_pct"])
    assert sorted(set(curves.index.get_level_values("model"))) == ["alpha", "beta"]
    for (model, frac), slices in CELLS.items():
        maps = [m for m, _, _ in slices]
        assert curves.loc[(model, frac), "mean"] == pytest.approx(sum(maps) / 2)
        assert curves.loc[(model, frac), "std"] == pytest.approx(_sd(*maps))
    assert curves.loc[("beta", 100.0), "std"] == 0.0


def test_table_2_gives_time_cpu_time_and_map_per_model_at_100(report) -> None:
    table = report.tables["study_table"].data.set_index("model")
    assert list(table.index) == ["alpha", "beta"]
    assert (table["fraction_pct"] == 100.0).all() and (table["n"] == 2).all()
    alpha, beta = table.loc["alpha"], table.loc["beta"]
    assert (alpha["map_avg_pct_mean"], alpha["map_avg_pct_std"]) == pytest.approx(
        (52.0, _sd(50, 54))
    )
    assert (alpha["train_time_s_mean"], alpha["train_time_s_std"]) == pytest.approx(
        (12.0, _sd(10, 14))
    )
    assert (alpha["train_cpu_s_mean"], alpha["train_cpu_s_std"]) == pytest.approx(
        (21.0, _sd(20, 22))
    )
    assert (beta["train_time_s_mean"], beta["train_cpu_s_mean"]) == pytest.approx((8.0, 11.0))
    display = report.tables["study_table"].display.set_index("model")
    assert display.loc["beta", "training CPU time (s)"] == f"11.0 ± {_sd(9, 13):.1f}"


def test_projections_side_by_side(report, fitted: Path) -> None:
    table = report.tables["projections"].data.set_index("model")
    assert list(table.index) == ["alpha", "beta"]
    for model in ("alpha", "beta"):
        proj = json.loads((fitted / "fits" / model / "fits.json").read_text())["projection"]
        row = table.loc[model]
        assert row["method"] == proj["selected"]
        assert row["projected"] == pytest.approx(proj["projected"])
        assert [row["lo"], row["hi"]] == pytest.approx(proj["interval"])
        assert row["actual"] == pytest.approx({"alpha": 52.0, "beta": 40.0}[model])
    assert {"fits_alpha", "fits_beta"} <= set(report.plots)


def test_runs_are_recognised_by_their_command(report) -> None:
    sections = {s.title: s for s in _sections(report)}
    # the unknown command gets a generic section with its rows, not a crash and not a curve
    other = report.tables["rows_novel-grid_novel"]
    assert len(other.data) == sum(len(v) for v in CELLS.values())
    assert "Other runs: novel-grid" in sections
    # its rows did not join the learning curves (n stays 2 per point: the cmp run alone) ...
    assert (report.plots["learning_curves"].data["n_rows"] == 2).all()


def test_a_data_scaling_run_with_odd_columns_is_still_a_learning_curve(tmp_path: Path) -> None:
    run = _grid(tmp_path / "odd-columns", "data-scaling", {"dps_ratio": 0.5})
    result = build_report([run], tmp_path / "r", ("png",))
    curves = result.plots["learning_curves"].data
    assert len(curves) == len(CELLS) and "sampling_ratios" not in result.plots


def _sections(report) -> list:
    text = Path(report.summary["markdown"]).read_text()
    return [_Title(line[3:].strip()) for line in text.splitlines() if line.startswith("## ")]


class _Title:
    def __init__(self, title: str) -> None:
        self.title = title


def test_cells_two_grids_share_count_once(tmp_path: Path) -> None:
    # a second grid holding alpha's 100 % cells again (same run keys, as a model comparison
    # re-trains the main job's cells) and one cell of its own (slice 2)
    other = create_run(tmp_path / "again", "data-scaling", {"model": "alpha"}, {"base_seed": 0})
    for k, (map_pct, train_s, cpu_s) in enumerate([*CELLS[("alpha", 100.0)], (46.0, 9.0, 18.0)]):
        other.append_row({
            "kind": "cell", "run_key": f"alpha-100-{k}", "model": "alpha", "fraction_pct": 100.0,
            "slice": k, "seed": k, "map_avg_pct": map_pct, "train_time_s": train_s,
            "train_cpu_s": cpu_s, "status": "ok", "error": None,
        })  # fmt: skip
    other.finish("ok")
    result = build_report([_grid(tmp_path / "cmp"), tmp_path / "again"], tmp_path / "r", ("png",))
    curves = result.plots["learning_curves"].data.set_index(["model", "fraction_pct"])
    assert curves.loc[("alpha", 100.0), "n_rows"] == 3  # slices 0, 1 once each, plus slice 2
    assert curves.loc[("alpha", 100.0), "mean"] == pytest.approx((50 + 54 + 46) / 3)
    assert curves.loc[("alpha", 10.0), "n_rows"] == 2
