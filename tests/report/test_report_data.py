"""The numbers drawn and tabulated by ``talbench report`` equal the records.

Expected values are recomputed here from ``rows.jsonl``/``fits.json`` with ``json`` and
``statistics`` (no pandas groupby, no tal_bench aggregation), then compared with the ``data``
frames the plotting/table functions return.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import raw_rows, standing_cells

from tal_bench.fits import METHODS
from tal_bench.pipelines.report import ReportResult, build_report
from tal_bench.plots import compute, figures
from tal_bench.plots.runs import dedupe_cells, find_timelines


def _by(rows: list[dict], keys: tuple[str, ...], value: str) -> dict[tuple, list[float]]:
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        if r["status"] == "ok" and r.get(value) is not None:
            groups[tuple(r[k] for k in keys)].append(float(r[value]))
    return groups


def test_learning_curve_points_are_means_of_ok_cells(
    report: ReportResult, runs: dict[str, Path]
) -> None:
    data = report.plots["learning_curves"].data
    for model in ("etad", "actionformer"):
        cells = standing_cells(raw_rows(runs[model]))
        groups = _by(cells, ("fraction_pct",), "map_avg_pct")
        got = data[data["model"] == model].set_index("fraction_pct")
        assert sorted(got.index) == sorted(float(f) for (f,) in groups)
        for (frac,), values in groups.items():
            # One seed per slice here, so the per-slice means are the values themselves.
            assert got.loc[frac, "mean"] == pytest.approx(statistics.fmean(values), abs=1e-12)
            assert got.loc[frac, "n_rows"] == len(values)
            if len(values) > 1:
                assert got.loc[frac, "std"] == pytest.approx(statistics.stdev(values), abs=1e-12)
            else:
                assert np.isnan(got.loc[frac, "std"])


def test_failed_and_resumed_cells_are_handled(report: ReportResult, runs: dict[str, Path]) -> None:
    data = report.plots["learning_curves"].data.set_index(["model", "fraction_pct"])
    # etad at 2 %: slice 2 failed (OOM) -> mean of 2 slices; at 5 %: slice 1 failed, then ok.
    assert data.loc[("etad", 2.0), "n_rows"] == 2
    assert data.loc[("etad", 5.0), "n_rows"] == 3
    assert data.loc[("etad", 100.0), "n_rows"] == 2  # slice 2 timed out
    failures = report.tables["failures"].data
    assert report.summary["failures"] == len(failures) == 4
    assert sorted(failures["status"]) == ["failed", "failed", "failed", "timeout"]
    errors = " ".join(failures["error"])
    assert "CUDA out of memory. Tried to allocate 2.00 GiB" in errors
    assert "killed by SIGTERM" not in errors  # superseded by the resumed ok row
    oom = failures[failures["error"].str.contains("2.00 GiB")].iloc[0]
    assert (oom["model"], oom["fraction_pct"], oom["slice"]) == ("etad", 2.0, 2.0)


def test_dedupe_keeps_first_ok_else_last_row() -> None:
    rows = pd.DataFrame(
        [
            {"run_key": "a", "status": "failed", "v": 1},
            {"run_key": "a", "status": "ok", "v": 2},
            {"run_key": "a", "status": "ok", "v": 3},
            {"run_key": "b", "status": "failed", "v": 4},
            {"run_key": "b", "status": "timeout", "v": 5},
            {"run_key": None, "status": "ok", "v": 6},
        ]
    )
    assert dedupe_cells(rows)["v"].tolist() == [2, 5, 6]


def test_sampling_ratio_table_equals_records(report: ReportResult, runs: dict[str, Path]) -> None:
    data = report.plots["sampling_ratios"].data.set_index(["dps_strategy", "dps_ratio"])
    cells = standing_cells(raw_rows(runs["ratio"]))
    for col in ("map_avg_pct", "train_time_s", "peak_mem_mib", "step_time_ms"):
        for (strategy, ratio), values in _by(cells, ("dps_strategy", "dps_ratio"), col).items():
            row = data.loc[(strategy, ratio)]
            assert row[f"{col}_mean"] == pytest.approx(statistics.fmean(values), abs=1e-9)
            if len(values) > 1:
                assert row[f"{col}_std"] == pytest.approx(statistics.stdev(values), abs=1e-9)
    assert data.loc[("block", 1.0), "n_rows"] == 1  # its second seed ran out of memory
    assert len(data) == 18
    # The strategy table (ETAD Table 5) is the same numbers.
    pd.testing.assert_frame_equal(
        report.tables["strategy_table"].data, report.plots["sampling_ratios"].data
    )


def test_egs_figure_and_table_equal_records(report: ReportResult, runs: dict[str, Path]) -> None:
    data = report.plots["egs_ratios"].data.set_index(["egs_strategy", "egs_ratio"])
    cells = standing_cells(raw_rows(runs["egs"]))
    for col in ("map_avg_pct", "train_time_s", "train_cpu_s", "step_mem_mib", "step_time_ms"):
        for (strategy, ratio), values in _by(cells, ("egs_strategy", "egs_ratio"), col).items():
            assert data.loc[(strategy, ratio), f"{col}_mean"] == pytest.approx(
                statistics.fmean(values), abs=1e-9
            )
    # ratios 0 and 1 were trained once (random); every strategy shows those cells
    for ratio in (0.0, 1.0):
        for strategy in ("grid", "block"):
            pd.testing.assert_series_equal(
                data.loc[(strategy, ratio)], data.loc[("random", ratio)], check_names=False
            )
    assert data.loc[("block", 0.3), "n_rows"] == 1 and len(data) == 12
    pd.testing.assert_frame_equal(
        report.tables["egs_strategy_table"].data, report.plots["egs_ratios"].data
    )
    # the memory panel is the per-step peak, and the DPS figure and the learning curves keep
    # their own rows
    axes = report.plots["egs_ratios"].figure.axes
    assert axes[1].get_ylabel() == "training CPU time (s)"
    assert axes[2].get_ylabel().startswith("peak memory of one")
    assert "egs_ratio" not in report.plots["sampling_ratios"].data.columns
    assert (report.plots["learning_curves"].data["model"] == "etad").sum() == 8


def test_compute_tables_equal_records(report: ReportResult, runs: dict[str, Path]) -> None:
    rows = [r for r in raw_rows(runs["profile"]) if r["status"] == "ok"]
    lat = report.plots["latency_vs_length"].data.set_index(["model", "length"])
    macs = report.plots["macs_vs_length"].data.set_index(["model", "length"])
    mem = report.plots["memory_vs_length"].data.set_index(["model", "length"])
    assert len(lat) == len(rows) == 15  # the OOM at 16384 is not drawn
    for r in rows:
        key = (r["model"], r["length"])
        assert lat.loc[key, "latency_ms_median"] == r["latency_ms_median"]
        assert lat.loc[key, "latency_ms_iqr"] == r["latency_ms_iqr"]
        assert macs.loc[key, "gmacs"] == pytest.approx(r["macs"] / 1e9, rel=1e-12)
        assert mem.loc[key, "memory_mib"] == r["gpu_peak_allocated_mib"]
        assert mem.loc[key, "memory_kind"] == "gpu_peak_allocated"


def test_memory_falls_back_to_rss_without_gpu_column() -> None:
    rows = pd.DataFrame(
        [{"model": "m", "length": 64, "status": "ok", "peak_rss_mib": 123.0, "macs": 5e8}]
    )
    table = compute.compute_table(rows)
    assert table.loc[0, "memory_mib"] == 123.0 and table.loc[0, "memory_kind"] == "peak_rss"
    assert np.isnan(table.loc[0, "latency_ms_median"])  # missing optional column -> NaN


def test_fit_curves_are_the_recorded_fits(report: ReportResult, runs: dict[str, Path]) -> None:
    fits = json.loads((runs["etad"] / "fits.json").read_text())
    proj = fits["projection"]
    data = report.plots["fits_etad"].data
    anchors = data[data["series"] == "anchors"]
    assert anchors["fraction_pct"].tolist() == [a["fraction_pct"] for a in fits["anchors"]]
    assert anchors["map_pct"].tolist() == [a["map_mean_pct"] for a in fits["anchors"]]
    drawn = set(data.loc[data["series"] == "projection", "family"])
    assert drawn >= {"5pl", "exp", "last", "loglog", proj["selected"]}
    for name in drawn - {"ensemble"}:
        pts = data[(data["series"] == "projection") & (data["family"] == name)]
        x = pts["fraction_pct"].to_numpy()
        params = proj["methods"][name]["params"]
        want = np.clip(METHODS[name].func(x, *(params[p] for p in METHODS[name].params)), 0, 100)
        np.testing.assert_allclose(pts["map_pct"].to_numpy(), want, rtol=1e-12)
        assert x.max() == pytest.approx(proj["target"])
    if "ensemble" in drawn:  # the weighted mean of its members' curves
        weights = proj["methods"]["ensemble"]["weights"]
        pts = data[(data["series"] == "projection") & (data["family"] == "ensemble")]
        x = pts["fraction_pct"].to_numpy()
        members = [
            w * METHODS[m].predict(x, proj["methods"][m]["params"]) for m, w in weights.items()
        ]
        np.testing.assert_allclose(pts["map_pct"], sum(members) / sum(weights.values()))
    for name in drawn:
        target = data[(data["series"] == "target") & (data["family"] == name)].iloc[0]
        entry = proj["methods"][name]
        assert target["map_pct"] == entry["projected"]
        assert [target["lo"], target["hi"]] == (entry["interval"] or entry["interval_bootstrap"])
    actual = data[data["series"] == "actual"].iloc[0]
    assert actual["map_pct"] == proj["actual"]


def test_fit_projection_and_backtest_tables(report: ReportResult, runs: dict[str, Path]) -> None:
    fits = json.loads((runs["etad"] / "fits.json").read_text())
    proj = fits["projection"]
    table = report.tables["fits_etad"].data.set_index("family")
    assert sorted(table.index) == sorted(fits["families"])
    for fam, entry in fits["families"].items():
        assert table.loc[fam, "r2"] == entry["r2"]
        assert table.loc[fam, "aic"] == entry["aic"]
        assert table.loc[fam, "params"] == entry["params"]
    head = report.tables["projection_etad"].data.iloc[0]
    assert head["selected"] == proj["selected"] and head["projected"] == proj["projected"]
    assert [head["lo"], head["hi"]] == proj["interval"]
    assert head["warning"] == (proj["warning"] or "")
    bt = report.tables["backtest_etad"].data.set_index("method")
    assert set(bt.index) == set(proj["methods"]) >= {"last", "loglog", "ensemble", "5pl", "exp"}
    assert bt["selected"].sum() == 1 and bt.loc[proj["selected"], "selected"]
    for name, entry in proj["methods"].items():
        assert bt.loc[name, "projected"] == entry["projected"]
        for key in ("mae", "coverage", "coverage_bootstrap"):
            want = entry["backtest"][key]
            assert (np.isnan(bt.loc[name, key]) and want is None) or bt.loc[name, key] == want
    scored = bt["mae"].dropna()
    assert scored.is_monotonic_increasing  # sorted by backtest error
    assert bt.loc[proj["selected"], "mae"] == scored.min()


def test_study_table(report: ReportResult, runs: dict[str, Path]) -> None:
    data = report.tables["study_table"].data.set_index(["model", "source"])
    cells = standing_cells(raw_rows(runs["etad"]))
    full = _by(cells, ("fraction_pct",), "train_time_s")[(100,)]
    row = data.loc[("etad", "grid")]
    assert row["fraction_pct"] == 100.0 and row["n"] == len(full) == 2
    assert row["train_time_s_mean"] == pytest.approx(statistics.fmean(full))
    assert row["train_time_s_std"] == pytest.approx(statistics.stdev(full))
    train = data.loc[("etad", "train")]
    assert train["n"] == 1 and train["map_avg_pct_mean"] == 51.0
    assert np.isnan(train["map_avg_pct_std"])
    profile = data.loc[("etad", "profile")]  # profile --mode train: peak RSS as its memory
    assert profile["map_avg_pct_mean"] == 12.5 and profile["peak_mem_mib_mean"] == 2204.0
    # Sampling-ratio cells change the training itself: never in the study table.
    assert len(data) == 4


def test_profile_table_excludes_failed_and_epoch_rows(report: ReportResult) -> None:
    data = report.tables["profile_table"].data
    assert len(data) == 15 and set(data["mode"]) == {"infer"}
    assert 16384 not in set(data[data["model"] == "actionformer"]["length"])


def test_timeline_data_equal_samples(report: ReportResult, runs: dict[str, Path]) -> None:
    text = (runs["profile"] / "timeline.jsonl").read_text()
    samples = [json.loads(line) for line in text.splitlines()]
    name = next(k for k in report.plots if k.startswith("timeline_") and "profile-infer" in k)
    data = report.plots[name].data
    start = samples[0]["t_s"] - samples[0]["dt_s"]
    np.testing.assert_allclose(data["t_s"], [s["t_s"] - start for s in samples])
    np.testing.assert_allclose(data["cpu_pct"], [s["cpu_pct"] for s in samples])
    np.testing.assert_allclose(data["gpu_util_pct"], [s["gpu_util_pct"] for s in samples])
    spans = compute.phase_spans(data)
    assert [s[0] for s in spans] == [f"L={n}" for n in (128, 256, 512, 1024, 2048, 4096, 8192)]
    # 1.5 s per length sampled every 0.5 s, after 1 s idle: L=128 covers [1.0, 2.5].
    assert spans[0][1:] == pytest.approx((1.0, 2.5))


def test_learning_curve_std_over_slice_means() -> None:
    # Two seeds per slice: the band is the std of the slice means, the point the mean of rows.
    rows = pd.DataFrame(
        {
            "kind": "cell",
            "status": "ok",
            "model": "m",
            "fraction_pct": 10.0,
            "slice": [0, 0, 1, 1, 2],
            "map_avg_pct": [10.0, 12.0, 20.0, 22.0, 30.0],
        }
    )
    got = figures.learning_curve_table(rows).iloc[0]
    assert got["mean"] == pytest.approx(18.8)
    assert got["std"] == pytest.approx(statistics.stdev([11.0, 21.0, 30.0]))
    assert got["n_slices"] == 3 and got["n_rows"] == 5


def test_train_profile_table_equals_epoch_rows(report: ReportResult, runs: dict[str, Path]) -> None:
    epochs = [r for r in raw_rows(runs["train_profile"]) if r["kind"] == "train_epoch"]
    data = report.tables["train_profile"].data
    assert data["epoch"].tolist() == [r["epoch"] for r in epochs]
    for col in ("epoch_time_s", "step_ms_mean", "loss", "cpu_util_mean", "peak_rss_mib"):
        assert data[col].tolist() == [r[col] for r in epochs]


def test_per_length_timelines_are_joined(tmp_path: Path) -> None:
    for length, t0 in ((1000, 0.5), (200, 0.5)):  # each isolated process restarts its clock
        samples = [{"t_s": t0 + i * 0.5, "dt_s": 0.5, "phase": f"L={length}", "cpu_pct": 50.0}
                   for i in range(3)]  # fmt: skip
        (tmp_path / f"timeline_L{length}.json").write_text(json.dumps(samples))
    (timeline,) = find_timelines(tmp_path)
    assert [p.name for p in timeline.paths] == ["timeline_L200.json", "timeline_L1000.json"]
    assert timeline.samples["phase"].tolist() == ["L=200"] * 3 + ["L=1000"] * 3
    # L=200 ends at 1.5 s; L=1000's samples follow it: 1.5 + (0.5, 1.0, 1.5).
    assert timeline.samples["t_s"].tolist() == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]


def test_lone_fits_json_is_found_and_named_by_its_input(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    from tal_bench.pipelines.fit import run_fit

    fits = run_fit(runs["actionformer"], "5pl,exp", out_dir=tmp_path / "fit-af", n_boot=0,
                   n_boot_backtest=0)  # fmt: skip
    out = build_report([tmp_path / "fit-af"], tmp_path / "rep")
    assert out.summary["runs"] == 1
    data = out.plots["fits_actionformer"].data
    target = data[data["series"] == "target"].set_index("family")
    methods = fits["projection"]["methods"]
    for name in ("5pl", "exp", "last", "loglog"):
        assert target.loc[name, "map_pct"] == methods[name]["projected"]
    # 5pl has more parameters than the first backtest cut has fractions (3 of 5): no calibrated
    # interval, and no bootstrap one either -> none drawn.
    assert methods["5pl"]["backtest"]["n_forecasts"] == 0 and np.isnan(target.loc["5pl", "lo"])
    footer = " ".join(t.get_text() for t in out.plots["fits_actionformer"].figure.texts)
    assert "AMD EPYC 7763" in footer  # the machine of the input run


def test_full_ratio_cell_is_shared_by_strategies_without_one() -> None:
    # talbench sampling-ratio trains ratio 1 once (under the first strategy): the other
    # strategies' curves end at that same point; a strategy with its own ratio-1 cells keeps them.
    def cell(strategy: str, ratio: float, m: float) -> dict:
        return {"kind": "cell", "status": "ok", "model": "etad", "dps_strategy": strategy,
                "dps_ratio": ratio, "map_avg_pct": m, "map_pct_at_0.50": m,
                "train_time_s": 10 * m, "peak_mem_mib": m, "step_time_ms": m}  # fmt: skip

    rows = pd.DataFrame(
        [
            cell("random", 0.06, 30.0),
            cell("random", 1.0, 32.0),
            cell("grid", 0.06, 29.0),
            cell("block", 0.06, 25.0),
            cell("block", 1.0, 40.0),
        ]  # fmt: skip
    )
    table = figures.sampling_ratio_table(rows).set_index(["dps_strategy", "dps_ratio"])
    assert table.loc[("grid", 1.0), "map_avg_pct_mean"] == 32.0
    assert table.loc[("grid", 1.0), "train_time_s_mean"] == 320.0
    assert table.loc[("block", 1.0), "map_avg_pct_mean"] == 40.0  # its own cell, not shared
    assert table.loc[("random", 1.0), "n_rows"] == 1 and len(table) == 6


def test_profile_table_shows_machine_drift_when_recorded() -> None:
    from tal_bench.plots.tables import profile_table

    base = {"status": "ok", "model": "etad", "device": "cpu", "mode": "infer", "threads": 2}
    rows = pd.DataFrame(
        [
            {**base, "length": 100, "machine_drift_frac": 0.05},
            {**base, "length": 100, "machine_drift_frac": -0.01},  # repeated: the mean
            {**base, "length": 300},  # recorded before the control existed
        ]
    )
    shown = profile_table(rows).display["machine drift (%)"].tolist()
    assert shown == ["2.0", "-"]
