"""`talbench data-scaling` / `talbench sampling-ratio` through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tal_bench.cli import app
from tal_bench.records import load_meta, open_run
from tal_bench.registry import DATASETS

TINY = "synthetic-thumos14-tiny"
needs_tiny = pytest.mark.skipif(TINY not in DATASETS, reason=f"{TINY} is not registered")
runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, list(args))


def _one_line_error(result, needle: str) -> None:
    assert result.exit_code == 2, result.output
    text = result.stderr.strip()
    assert text.startswith("error:") and needle in text, text
    assert "\n" not in text and "Traceback" not in text


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["data-scaling", "--fractions", "0..50"], "outside 1-100"),
        (["data-scaling", "--fractions", "5,x"], "'x' is not a number"),
        (["data-scaling", "--slices", "0"], "--slices must be >= 1"),
        (["data-scaling", "--set", "data.fraction=5"], "conflicts with the grid"),
        (["data-scaling", "--executor", "nowhere"], "unknown executor 'nowhere'"),
        (["data-scaling", "--jobs", "0"], "--jobs must be >= 1"),
        (["data-scaling", "--executor", "inline", "--timeout-s", "5"], "cannot enforce"),
        (["data-scaling", "--slurm-param", "novalue"], "bad --slurm-param"),
        (["sampling-ratio", "--kind", "egs", "--ratios", "0.1,1.5"], "outside [0, 1]"),
        (["sampling-ratio", "--kind", "xyz"], "unknown --kind"),
        (["sampling-ratio", "--ratios", "0.1,2"], "outside (0, 1]"),
        (["sampling-ratio", "--strategies", "random,spiral"], "unknown 'spiral'"),
        (["sampling-ratio", "--model", "dummy"], "has no detector proposal sampling"),
    ],
)
def test_bad_options_are_one_red_line(tmp_path: Path, args: list[str], needle: str) -> None:
    _one_line_error(_invoke(*args, "--out", str(tmp_path / "run")), needle)
    assert not (tmp_path / "run").exists()  # refused before any run directory was made


@needs_tiny
def test_data_scaling_json_summary_and_resume(tmp_path: Path) -> None:
    out = str(tmp_path / "run")
    args = [
        "data-scaling", "--model", "dummy", "--dataset", TINY, "--fractions", "50,100",
        "--slices", "1", "--set", "train.epochs=1", "--executor", "inline", "--out", out,
        "--json",
    ]  # fmt: skip
    first = _invoke(*args)
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["run_dir"] == out and summary["command"] == "data-scaling"
    assert (summary["cells"], summary["ok"], summary["skipped"]) == (2, 2, 0)
    assert [g["fraction_pct"] for g in summary["groups"]] == [50.0, 100.0]
    assert all(g["n"] == 1 and g["map_avg_pct_std"] is None for g in summary["groups"])
    rows = {r["fraction_pct"]: r for r in open_run(out).rows()}  # in the order cells finished
    assert sorted(rows) == [50.0, 100.0]
    assert summary["groups"][1]["map_avg_pct_mean"] == rows[100.0]["map_avg_pct"]
    assert "mean ± std" in first.stderr and "fraction %" in first.stderr

    again = json.loads(_invoke(*args).stdout)
    assert (again["ok"], again["skipped"], again["complete"]) == (0, 2, 2)
    assert again["groups"] == summary["groups"]
    assert len(open_run(out).rows()) == 2  # nothing recomputed
    meta = load_meta(out)
    assert meta["status"] == "ok" and len(meta["resumed_at"]) == 1
    grid_log = json.loads((Path(out) / "grid.json").read_text())
    assert len(grid_log["invocations"]) == 2


@needs_tiny
def test_sampling_ratio_rows_have_the_dps_columns(tmp_path: Path) -> None:
    out = str(tmp_path / "run")
    result = _invoke(
        "sampling-ratio", "--model", "etad", "--dataset", TINY, "--ratios", "0.06,0.3",
        "--strategies", "random", "--seeds", "1", "--set", "train.epochs=1",
        "--set", "model.max_duration=16",
        "--executor", "inline", "--out", out, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["ok"] == 2
    assert [(g["dps_strategy"], g["dps_ratio"]) for g in summary["groups"]] == [
        ("random", 0.06),
        ("random", 0.3),
    ]
    for row in open_run(out).rows():
        assert row["status"] == "ok" and row["seed"] == 0
        assert row["step_time_ms"] > 0 and row["peak_mem_mib"] > 0
        assert (
            row["step_time_ms"] * row["epochs"]
            >= 0.999 * 1000 * row["train_time_s"] / (row["num_train_items"])
        )  # at most one iteration per item


@pytest.mark.slow  # ~15 s of CPU; lighter tests cover its parts: the grid spec
# (test_grid_specs), one EGS training (tests/models/test_etad_egs), the EGS report (tests/report)
def test_egs_grid_and_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALBENCH_CACHE", str(tmp_path / "cache"))
    run_dir, rep = tmp_path / "egs", tmp_path / "report"
    args = ["sampling-ratio", "--kind", "egs", "--ratios", "0,0.5", "--strategies",
            "random,block", "--dataset", "synthetic-thumos14-frames-tiny", "--executor", "inline",
            "--set", "train.epochs=1", "--set", "model.encoder.width=8", "--out", str(run_dir),
            "--json"]  # fmt: skip
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["cells"], summary["ok"]) == (3, 3)  # 0 once, 0.5 per strategy
    rows = [r for r in open_run(run_dir).rows() if r.get("kind") == "cell"]
    assert {(r["egs_strategy"], r["egs_ratio"]) for r in rows} == {
        ("random", 0.0),
        ("random", 0.5),
        ("block", 0.5),
    }
    assert all(r["step_mem_kind"] == "cpu_tensor_peak" for r in rows)
    mem = {r["egs_ratio"]: r["step_mem_mib"] for r in rows if r["egs_strategy"] == "random"}
    assert mem[0.5] > mem[0.0]  # activations kept for the sampled snippets
    result = _invoke("report", str(run_dir), "--out", str(rep))
    assert result.exit_code == 0, result.output
    page = (rep / "report.md").read_text()
    assert "EGS sampling ratio" in page and "cpu_tensor_peak" in page
    assert (rep / "figures" / "egs_ratios.png").is_file()
    assert (rep / "tables" / "egs_strategy_table.csv").is_file()
