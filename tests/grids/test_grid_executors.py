"""local, slurm (submitit's local cluster) and Ray run the same dummy-model grid to equal rows."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from tal_bench.errors import TalBenchError
from tal_bench.pipelines.data_scaling import build_data_scaling
from tal_bench.pipelines.executors import make_executor
from tal_bench.pipelines.grid import ExecOptions, execute_grid
from tal_bench.registry import DATASETS

TINY = "synthetic-thumos14-tiny"
# Columns that measure the machine or say who ran the cell; everything else must match.
MEASURED = {
    "executor", "row_time", "train_time_s", "eval_time_s", "wall_time_s", "peak_mem_mib",
    "step_time_ms", "train_cpu_s",
}  # fmt: skip

needs_tiny = pytest.mark.skipif(
    TINY not in DATASETS, reason=f"dataset {TINY} is not registered in this checkout"
)


@pytest.fixture(scope="module")
def spec():
    """2 fractions x 2 slices of the dummy detector, 2 epochs: 4 cells of about a second."""
    return build_data_scaling(
        "dummy", "50,100", 2, TINY, "cpu", ["train.epochs=2"], seed=0, threads=1
    )


@pytest.fixture(scope="module")
def local_rows(spec, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "run"
    summary = execute_grid(spec, ExecOptions("local", jobs=4), str(out))
    assert summary["ok"] == 4, summary
    return _rows(out)


def _rows(run_dir: Path) -> list[dict]:
    from tal_bench.records import open_run

    rows = [r for r in open_run(run_dir).rows() if r["kind"] == "cell"]
    return sorted(rows, key=lambda r: r["run_key"])


def _first_two(spec):
    """The grid's first two cells (50 %, slices 0 and 1): enough to compare executors."""
    return dataclasses.replace(spec, cells=spec.cells[:1] + spec.cells[2:3])


def _matching(rows: list[dict], spec) -> list[dict]:
    keys = {c.key for c in spec.cells}
    return [r for r in rows if r["run_key"] in keys]


def _comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in MEASURED} for r in rows]


@needs_tiny
def test_local_rows_are_complete(local_rows, spec) -> None:
    assert len(local_rows) == 4 and {r["status"] for r in local_rows} == {"ok"}
    assert {r["run_key"] for r in local_rows} == {c.key for c in spec.cells}
    for r in local_rows:
        assert r["executor"] == "local" and r["error"] is None
        assert 0.0 <= r["map_avg_pct"] <= 100.0 and r["train_time_s"] > 0
        assert r["seed"] == r["slice"]  # slice k trains with seed 0 + k
        assert "map_pct_at_0.30" in r and "map_pct_at_0.70" in r
    # 100 % draws every training video whatever the slice; the 50 % slices differ.
    full = [r for r in local_rows if r["fraction_pct"] == 100.0]
    half = [r for r in local_rows if r["fraction_pct"] == 50.0]
    assert full[0]["video_ids_hash"] == full[1]["video_ids_hash"]
    assert half[0]["video_ids_hash"] != half[1]["video_ids_hash"]
    assert 2 * half[0]["num_train_videos"] == pytest.approx(full[0]["num_train_videos"], abs=1)


@needs_tiny
def test_submitit_local_cluster_gives_the_same_rows(local_rows, spec, tmp_path) -> None:
    pytest.importorskip("submitit")
    opts = ExecOptions("slurm", jobs=2, slurm_cluster="local")
    sub = _first_two(spec)
    summary = execute_grid(sub, opts, str(tmp_path / "run"))
    assert summary["ok"] == 2
    rows = _rows(tmp_path / "run")
    assert {r["executor"] for r in rows} == {"slurm"}
    assert _comparable(rows) == _comparable(_matching(local_rows, sub))


@needs_tiny
def test_ray_gives_the_same_rows(local_rows, spec, tmp_path) -> None:
    ray = pytest.importorskip("ray")
    sub = _first_two(spec)
    summary = execute_grid(sub, ExecOptions("ray", jobs=2), str(tmp_path / "run"))
    assert summary["ok"] == 2
    assert not ray.is_initialized()  # the executor shut down the Ray it started
    rows = _rows(tmp_path / "run")
    assert {r["executor"] for r in rows} == {"ray"}
    assert _comparable(rows) == _comparable(_matching(local_rows, sub))


@pytest.mark.parametrize(("name", "extra"), [("ray", "ray"), ("slurm", "slurm")])
def test_missing_extra_is_a_one_line_error(monkeypatch, tmp_path, name, extra) -> None:
    module = {"ray": "ray", "slurm": "submitit"}[name]
    monkeypatch.setitem(sys.modules, module, None)  # makes `import <module>` fail
    with pytest.raises(TalBenchError) as err:
        make_executor(name, folder=tmp_path)
    assert f'pip install "tal-bench[{extra}]"' in str(err.value)
    assert "\n" not in str(err.value)


def test_slurm_without_srun_says_how_to_test_locally(monkeypatch, tmp_path) -> None:
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun anywhere
    ex = make_executor("slurm", folder=tmp_path)
    with pytest.raises(TalBenchError, match="--slurm-cluster local"):
        list(ex.run([], lambda key: None))
