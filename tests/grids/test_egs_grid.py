"""``talbench sampling-ratio --kind egs`` end to end on the tiny frames dataset, then the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tal_bench.cli import app
from tal_bench.records import open_run

runner = CliRunner()


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """The inline executor sets torch threads in this process; put them back afterwards."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow  # ~15 s of CPU; lighter tests cover its parts: the grid spec
# (test_grid_specs), one EGS training (tests/models/test_etad_egs), the EGS report (tests/report)
def test_egs_grid_and_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALBENCH_CACHE", str(tmp_path / "cache"))
    run_dir, rep = tmp_path / "egs", tmp_path / "report"
    args = ["sampling-ratio", "--kind", "egs", "--ratios", "0,0.5", "--strategies",
            "random,block", "--dataset", "synthetic-thumos14-frames-tiny", "--executor", "inline",
            "--set", "train.epochs=1", "--set", "model.encoder.width=8", "--out", str(run_dir),
            "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["cells"], summary["ok"]) == (3, 3)  # 0 once, 0.5 per strategy
    rows = [r for r in open_run(run_dir).rows() if r.get("kind") == "cell"]
    assert {(r["egs_strategy"], r["egs_ratio"]) for r in rows} == {
        ("random", 0.0), ("random", 0.5), ("block", 0.5)
    }
    assert all(r["step_mem_kind"] == "cpu_tensor_peak" for r in rows)
    mem = {r["egs_ratio"]: r["step_mem_mib"] for r in rows if r["egs_strategy"] == "random"}
    assert mem[0.5] > mem[0.0]  # activations kept for the sampled snippets
    result = runner.invoke(app, ["report", str(run_dir), "--out", str(rep)])
    assert result.exit_code == 0, result.output
    page = (rep / "report.md").read_text()
    assert "EGS sampling ratio" in page and "cpu_tensor_peak" in page
    assert (rep / "figures" / "egs_ratios.png").is_file()
    assert (rep / "tables" / "egs_strategy_table.csv").is_file()
