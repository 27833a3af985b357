"""``talbench fit`` end to end: CSV and run-directory inputs, outputs, user errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tal_bench.cli import app
from tal_bench.fits import CURVES
from tal_bench.pipelines.fit import load_anchors, run_fit
from tal_bench.records import create_run

runner = CliRunner()
FRACTIONS = [1, 2, 3, 5, 7, 10, 20, 50, 100]
TRUE = {"a": 60.0, "b": 30.0, "c": 0.5}  # pow3; 57 mAP at 100 %


def _write_csv(path: Path, n_slices: int = 3) -> Path:
    rng = np.random.default_rng(7)
    lines = ["fraction,mAP,slice"]
    for f in FRACTIONS:
        for s in range(n_slices):
            y = CURVES["pow3"].predict(np.array(float(f)), TRUE) + rng.normal(0, 0.3)
            lines.append(f"{f},{y:.4f},{s}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_end_to_end(tmp_path: Path) -> None:
    csv = _write_csv(tmp_path / "scaling.csv")
    args = [
        "fit", str(csv), "--families", "pow3,exp3,5pl", "--upto", "20", "--n-boot", "20",
        "--json",
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    on_disk = json.loads((tmp_path / "fits.json").read_text())
    assert summary == on_disk
    assert (tmp_path / "fits.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["input"]["n_used"] == 27 and summary["input"]["n_fractions"] == 9
    assert list(summary["families"]) == ["pow3", "exp3", "5pl"]
    for fam in summary["families"].values():
        assert set(fam) >= {"params", "r2", "rmse", "aic", "mean_abs_error", "at_bound", "status"}
    pow3 = summary["families"]["pow3"]
    assert pow3["status"] == "ok" and pow3["params"]["a"] == pytest.approx(60, abs=1.0)
    ext = summary["extrapolation"]
    assert set(ext) >= {"upto", "selected", "projected", "interval", "actual", "error",
                        "per_family"}  # fmt: skip
    assert ext["upto"] == 20 and ext["fractions_used"] == [1, 2, 3, 5, 7, 10, 20]
    assert ext["selected"] in ("pow3", "exp3", "5pl")
    means = summary["anchors"]
    assert ext["actual"] == pytest.approx(means[-1]["map_mean_pct"])
    assert ext["error"] == pytest.approx(ext["projected"] - ext["actual"])
    assert ext["per_family"]["pow3"]["projected"] == pytest.approx(57.0, abs=1.5)


def test_run_directory_input_ignores_failed_cells(tmp_path: Path) -> None:
    run = create_run(tmp_path / "ds", "data-scaling", {"model": "dummy"}, {"base_seed": 0})
    for f in FRACTIONS:
        for s in range(2):
            y = float(CURVES["pow3"].predict(np.array(float(f)), TRUE))
            run.append_row({"kind": "cell", "run_key": f"{f}/{s}", "fraction_pct": f,
                            "slice": s, "status": "ok", "map_avg_pct": y + 0.1 * s})  # fmt: skip
    # A cell that failed for good, and one that failed and then succeeded when resumed.
    run.append_row({"kind": "cell", "run_key": "15/0", "fraction_pct": 15, "slice": 0,
                    "status": "failed", "map_avg_pct": None, "error": "OOM"})  # fmt: skip
    run.append_row({"kind": "cell", "run_key": "1/0", "fraction_pct": 1, "slice": 0,
                    "status": "failed", "map_avg_pct": None, "error": "killed"})  # fmt: skip
    run.append_row({"kind": "summary", "fraction_pct": 1, "map_avg_pct": 0.0})
    anchors, info = load_anchors(run.path)
    assert info["n_failed"] == 1 and info["n_used"] == 18 and info["command"] == "data-scaling"
    assert list(anchors.fractions) == FRACTIONS  # 15 % has no ok cell
    summary = run_fit(run.path, "pow3", n_boot=0, target_pct=100)
    assert (run.path / "fits.json").exists() and (run.path / "fits.png").exists()
    assert summary["families"]["pow3"]["params"]["c"] == pytest.approx(0.5, rel=0.02)
    assert summary["extrapolation"]["interval"] is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("frac,score\n1,2\n", "needs columns fraction,mAP"),
        ("fraction,mAP\n0.1,20\n0.5,30\n", "look like fractions of 1, give percent"),
        ("fraction,mAP\n10,120\n", "mAP must be points in [0, 100]"),
        ("fraction,mAP\n10,abc\n", "scaling.csv:2: fraction and mAP must be numbers"),
    ],
)
def test_bad_csv_is_one_line_error(tmp_path: Path, text: str, message: str) -> None:
    csv = tmp_path / "scaling.csv"
    csv.write_text(text)
    result = runner.invoke(app, ["fit", str(csv), "--n-boot", "0"])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_unknown_family_and_missing_input(tmp_path: Path) -> None:
    csv = _write_csv(tmp_path / "scaling.csv", n_slices=1)
    result = runner.invoke(app, ["fit", str(csv), "--families", "pow3,sigmoid"])
    assert result.exit_code == 2 and "unknown curve families sigmoid" in result.stderr
    result = runner.invoke(app, ["fit", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
    result = runner.invoke(app, ["fit", str(csv), "--n-boot", "-1"])
    assert result.exit_code == 2 and "--n-boot and --holdout must be >= 0" in result.stderr
    result = runner.invoke(app, ["fit", str(csv), "--upto", "5", "--first-k", "2"])
    assert result.exit_code == 2 and "either --upto or --first-k" in result.stderr
