"""Work a grid's cells share: built once, the same rows as each cell alone; launch order."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from grid_cellfns import RecordingReporter, make_cells, marker_cell

from tal_bench.data import create_dataset
from tal_bench.pipelines.data_scaling import build_data_scaling
from tal_bench.pipelines.executors import LocalExecutor, Task
from tal_bench.pipelines.grid import ExecOptions, execute_grid, pick_fields, run_grid, train_cell
from tal_bench.pipelines.resolve import apply_protocol, resolve_run_config
from tal_bench.pipelines.shared import (
    build_eval_inputs,
    items_key,
    pooled_key,
    shared_eval_inputs,
)
from tal_bench.records import create_run, open_run
from tal_bench.registry import DATASETS

TINY = "synthetic-thumos14-tiny"
needs_tiny = pytest.mark.skipif(TINY not in DATASETS, reason=f"{TINY} is not registered")
# Columns that measure the machine or say who ran the cell; everything else must match.
MEASURED = {"executor", "row_time", "train_time_s", "train_cpu_s", "eval_time_s", "wall_time_s",
            "peak_mem_mib"}  # fmt: skip


@needs_tiny
def test_shared_path_rows_equal_each_cell_run_alone(tmp_path: Path) -> None:
    # The grid path: the first cell builds <run>/shared, the next loads it (and ETAD's
    # prediction pass reuses RoI tables); the plain path: train_cell with no shared directory,
    # one cell after another in this process, which is what every cell did before.
    spec = build_data_scaling("etad", "50,100", 1, TINY, "cpu", ["train.epochs=1"], threads=1)
    summary = execute_grid(spec, ExecOptions("inline"), str(tmp_path / "run"))
    assert summary["ok"] == 2
    grid = {r["run_key"]: r for r in open_run(tmp_path / "run").rows()}
    cfg = _cfg(spec.cells[0])
    assert sorted(p.name for p in (tmp_path / "run" / "shared").iterdir()) == [
        f"items-{items_key(cfg)}.pt",
        f"pooled-{pooled_key(cfg)}.pt",
    ]  # one file each, no leftover temporary
    for cell in spec.cells:
        alone = spec.pick(train_cell(cell.payload))
        row = grid[cell.key]
        assert {k: v for k, v in row.items() if k in alone and k not in MEASURED} == {
            k: v for k, v in alone.items() if k not in MEASURED
        }
        assert row["map_avg_pct"] > 0


def _cfg(cell):
    payload = cell.payload
    return apply_protocol(
        resolve_run_config(payload["model"], payload["preset"], payload["overrides"])
    )


@needs_tiny
def test_shared_test_data_is_what_a_cell_builds(tmp_path: Path) -> None:
    cfg = apply_protocol(resolve_run_config("etad", "cpu", {"data": {"dataset": TINY}}))
    ds = create_dataset(cfg.data.dataset, cfg.data.root)
    train, test = ds.resolve_subset(cfg.data.train_subset), ds.resolve_subset(cfg.data.test_subset)
    built = build_eval_inputs(ds, cfg, train, test)
    shared_eval_inputs(ds, cfg, train, test, tmp_path)  # builds and leaves the file
    loaded = shared_eval_inputs(ds, cfg, train, test, tmp_path)  # reads it
    assert loaded.video_ids == built.video_ids == ds.video_ids(test)
    assert len(loaded.items) == len(built.items) > len(built.video_ids)  # several windows each
    for got, want in zip(loaded.items, built.items, strict=True):
        assert got.keys() == want.keys()
        for key, value in want.items():
            if torch.is_tensor(value):
                assert torch.equal(got[key], value) and got[key].dtype == value.dtype
            else:
                assert got[key] == value and type(got[key]) is type(value)
    assert set(loaded.pooled) == set(ds.video_ids(train)) | set(ds.video_ids(test))
    assert all((loaded.pooled[v] == built.pooled[v]).all() for v in built.pooled)
    # an unwritable directory (here: a file in its place) leaves the cell with its own copy
    blocker = tmp_path / "blocked"
    blocker.write_text("")
    assert len(shared_eval_inputs(ds, cfg, train, test, blocker / "shared").items) == len(
        built.items
    )


@needs_tiny
def test_items_too_large_to_keep_are_cut_by_each_cell(tmp_path: Path, monkeypatch) -> None:
    import tal_bench.pipelines.shared as shared

    cfg = apply_protocol(resolve_run_config("etad", "cpu", {"data": {"dataset": TINY}}))
    ds = create_dataset(cfg.data.dataset, cfg.data.root)
    train, test = ds.resolve_subset(cfg.data.train_subset), ds.resolve_subset(cfg.data.test_subset)
    monkeypatch.setattr(shared, "MAX_ITEM_BYTES", 64 * 64 * 4)  # not even two windows
    shared_eval_inputs(ds, cfg, train, test, tmp_path)
    loaded = shared_eval_inputs(ds, cfg, train, test, tmp_path)
    assert loaded.items is None and len(loaded.pooled) > len(loaded.video_ids)


def test_frames_items_are_cut_by_each_cell(tmp_path: Path) -> None:
    # snippet clips are not stored with the shared features: a frames dataset shares none
    overrides = {"data": {"dataset": "synthetic-thumos14-frames-tiny"}}
    cfg = apply_protocol(resolve_run_config("etad", "egs", overrides))
    ds = create_dataset(cfg.data.dataset, cfg.data.root)
    train, test = ds.resolve_subset(cfg.data.train_subset), ds.resolve_subset(cfg.data.test_subset)
    shared_eval_inputs(ds, cfg, train, test, tmp_path)
    assert shared_eval_inputs(ds, cfg, train, test, tmp_path).items is None


def _keys(model: str = "etad", **data) -> tuple[str, str]:
    cfg = apply_protocol(resolve_run_config(model, "cpu", {"data": data}))
    return items_key(cfg), pooled_key(cfg)


def test_key_follows_what_the_items_depend_on() -> None:
    items, pooled = _keys()
    assert _keys(fraction=10.0, slice=3, num_workers=2) == (items, pooled)  # not the draw
    for changed in ({"window": 32}, {"window_stride": 16}, {"test_window_stride": 24},
                    {"window_min_inside": 0.75}, {"downsample": 4}):  # fmt: skip
        assert _keys(**changed) == (_keys(**changed)[0], pooled) != (items, pooled), changed
    assert _keys(dataset=TINY)[1] != pooled and _keys(dataset=TINY)[0] != items


def test_models_of_other_modes_share_only_the_pooled_features() -> None:
    # ETAD cuts windows, ActionFormer and TemporalMaxer read whole videos: their test items
    # differ, the pooled video features do not; the two full-mode models share both.
    etad, actionformer, maxer = _keys("etad"), _keys("actionformer"), _keys("temporalmaxer")
    assert etad[0] != actionformer[0] and etad[1] == actionformer[1]
    assert actionformer == maxer
    # window-mode geometry that full mode never reads does not split the full-mode items
    assert _keys("actionformer", window=32)[0] == actionformer[0]


@needs_tiny
def test_shared_files_hold_each_modes_own_items(tmp_path: Path) -> None:
    # A window-mode and a full-mode cell of one grid: each loads the items it would build itself
    for model in ("etad", "actionformer", "etad", "actionformer"):  # second pass: read back
        cfg = apply_protocol(resolve_run_config(model, "cpu", {"data": {"dataset": TINY}}))
        ds = create_dataset(cfg.data.dataset, cfg.data.root)
        train = ds.resolve_subset(cfg.data.train_subset)
        test = ds.resolve_subset(cfg.data.test_subset)
        loaded = shared_eval_inputs(ds, cfg, train, test, tmp_path)
        built = build_eval_inputs(ds, cfg, train, test)
        assert len(loaded.items) == len(built.items)
        for got, want in zip(loaded.items, built.items, strict=True):
            assert torch.equal(got["feats"], want["feats"]) and got["t0_s"] == want["t0_s"]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert [n.split("-")[0] for n in names] == ["items", "items", "pooled"]
    full = apply_protocol(resolve_run_config("actionformer", "cpu", {"data": {"dataset": TINY}}))
    assert full.data.mode == "full"


def test_costliest_cells_start_first(tmp_path: Path) -> None:
    cells = make_cells(tmp_path, [{"name": n, "value": 1.0} for n in "abcd"])
    costs = {"a": 1.0, "b": 3.0, "c": 2.0, "d": 3.0}
    cells = [dataclasses.replace(c, cost=costs[c.label]) for c in cells]
    run, reporter = create_run(tmp_path / "run", "grid-test", {}, {}), RecordingReporter()
    result = run_grid(run, cells, LocalExecutor(1), pick_fields([]), marker_cell, 1, reporter)
    started = [e[1] for e in reporter.events if e[0] == "start"]
    assert started == ["key-b", "key-d", "key-c", "key-a"]  # equal costs keep grid order
    assert [r["run_key"] for r in result.rows] == [c.key for c in cells]


def test_data_scaling_cells_cost_more_with_the_fraction() -> None:
    spec = build_data_scaling("dummy", "1,50,100", 2, threads=1)
    by_fraction = {c.params["fraction_pct"]: c.cost for c in spec.cells}
    assert by_fraction[1.0] < by_fraction[50.0] < by_fraction[100.0]


def test_data_scaling_cells_cost_what_their_preset_says() -> None:
    # cost = 25 s of start-up and evaluation + the preset's full_train_s x fraction; dummy's
    # preset names none (60 s), tridet's cpu preset 81 s, temporalmaxer's 47 s
    spec = build_data_scaling("dummy,tridet,temporalmaxer", "10,100", 1, threads=1)
    cost = {(c.params["model"], c.params["fraction_pct"]): c.cost for c in spec.cells}
    assert cost[("dummy", 10.0)] == pytest.approx(25 + 6.0)
    assert cost[("tridet", 100.0)] == pytest.approx(25 + 81.0)
    assert cost[("temporalmaxer", 10.0)] == pytest.approx(25 + 4.7)


def test_local_workers_see_the_environment_of_their_launch(tmp_path: Path, monkeypatch) -> None:
    # Workers fork from a server started once; each must still get the grid's environment as
    # it is when the cell launches, as a freshly spawned interpreter would.
    task = Task("k", marker_cell, {"marker_dir": str(tmp_path), "name": "a", "value": 1.0})
    for value in ("first", "second"):
        monkeypatch.setenv("TALBENCH_MARKER_ENV", value)
        (outcome,) = LocalExecutor(1).run([task], lambda key: None)
        assert outcome.status == "ok" and outcome.summary["marker_env"] == value
