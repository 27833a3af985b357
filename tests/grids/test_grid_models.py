"""One data-scaling grid over several models: cells, run keys, rows, resume per cell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tal_bench.cli import app
from tal_bench.errors import TalBenchError
from tal_bench.pipelines.data_scaling import build_data_scaling
from tal_bench.records import load_meta
from tal_bench.registry import DATASETS

TINY = "synthetic-thumos14-tiny"
needs_tiny = pytest.mark.skipif(TINY not in DATASETS, reason=f"{TINY} is not registered")
runner = CliRunner()
# Columns that measure the machine or say when the cell ran; everything else must match.
MEASURED = {"row_time", "train_time_s", "train_cpu_s", "eval_time_s", "wall_time_s",
            "peak_mem_mib"}  # fmt: skip


def test_every_model_fraction_slice_is_a_cell_with_its_one_model_key() -> None:
    both = build_data_scaling("dummy,etad", "10,100", 2, threads=1)
    alone = {m: build_data_scaling(m, "10,100", 2, threads=1) for m in ("dummy", "etad")}
    assert len(both.cells) == 2 * 2 * 2
    # a cell keeps the run key it has in its model's own grid (so one-model runs resume)
    assert [c.key for c in both.cells] == [c.key for m in alone for c in alone[m].cells]
    assert {
        (c.params["model"], c.params["fraction_pct"], c.params["slice"]) for c in both.cells
    } == {(m, f, k) for m in ("dummy", "etad") for f in (10.0, 100.0) for k in (0, 1)}
    assert [c.params["model"] for c in both.cells] == ["dummy"] * 4 + ["etad"] * 4
    assert all(c.payload["model"] == c.params["model"] for c in both.cells)
    assert (
        both.cells[0].label == "dummy 10% slice 0" and alone["etad"].cells[0].label == "10% slice 0"
    )
    assert both.config["models"] == ["dummy", "etad"] and set(both.config["bases"]) == {
        "dummy",
        "etad",
    }
    assert alone["etad"].config["base"]["model_name"] == "etad"  # one model: the old layout
    assert both.group_by == ["model", "fraction_pct"]


def test_every_model_must_have_the_preset() -> None:
    with pytest.raises(TalBenchError, match="unknown preset 'egs' for model 'dummy'"):
        build_data_scaling("etad,dummy", "10,100", 1, preset="egs")


@needs_tiny
def test_multi_model_grid_runs_and_resumes_per_cell(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["data-scaling", "--model", "dummy,etad", "--dataset", TINY, "--fractions", "50,100",
            "--slices", "1", "--set", "train.epochs=1", "--executor", "inline", "--out", str(out),
            "--json"]  # fmt: skip
    first = runner.invoke(app, argv)
    assert first.exit_code == 0, first.output
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert sorted((r["model"], r["fraction_pct"]) for r in rows) == [
        ("dummy", 50.0), ("dummy", 100.0), ("etad", 50.0), ("etad", 100.0)
    ]  # fmt: skip
    assert all(r["status"] == "ok" and r["train_cpu_s"] > 0 for r in rows)
    assert load_meta(out)["config"]["models"] == ["dummy", "etad"]
    # lose the last finished cell (as if killed before it was written): only it runs again
    lines = (out / "rows.jsonl").read_text().splitlines(keepends=True)
    (out / "rows.jsonl").write_text("".join(lines[:3]))
    again = runner.invoke(app, argv)
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout[again.stdout.index('{\n  "command"') :])
    assert (summary["skipped"], summary["ok"], summary["complete"]) == (3, 1, 4)
    redone = json.loads((out / "rows.jsonl").read_text().splitlines()[3])
    lost = json.loads(lines[3])
    assert {k: v for k, v in redone.items() if k not in MEASURED} == {
        k: v for k, v in lost.items() if k not in MEASURED
    }  # same seed, same cell: same numbers
    groups = {(g["model"], g["fraction_pct"]): g for g in summary["groups"]}
    assert groups[("etad", 100.0)]["map_avg_pct_mean"] == pytest.approx(
        next(r["map_avg_pct"] for r in rows if (r["model"], r["fraction_pct"]) == ("etad", 100.0))
    )
