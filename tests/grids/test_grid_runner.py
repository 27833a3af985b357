"""The grid runner with injected cell functions: failures, timeouts, resume, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from grid_cellfns import RecordingReporter, invocations, make_cells, marker_cell

from tal_bench.pipelines.executors import LocalExecutor, make_executor
from tal_bench.pipelines.grid import pick_fields, run_grid
from tal_bench.records import create_run, load_meta, load_rows, open_run

PICK = pick_fields(["map_avg_pct", "train_time_s", "worker_pid", "torch_threads", "omp_threads"])
HERE = Path(__file__).resolve().parent


def _run(tmp_path: Path, name: str = "run"):
    return create_run(tmp_path / name, "grid-test", {"grid": "test"}, {"seed": 0})


def test_inline_grid_writes_one_row_per_cell_and_a_failure_is_a_row(tmp_path: Path) -> None:
    cells = make_cells(
        tmp_path,
        [
            {"name": "a", "value": 10.0},
            {"name": "b", "value": 0.0, "mode": "raise"},
            {"name": "c", "value": 30.0},
        ],
    )
    run, reporter = _run(tmp_path), RecordingReporter()
    result = run_grid(run, cells, make_executor("inline"), PICK, marker_cell, None, reporter)
    assert result.counts == {"cells": 3, "ok": 2, "failed": 1, "timeout": 0, "skipped": 0}
    rows = open_run(run.path).rows()
    assert [r["name"] for r in rows] == ["a", "b", "c"]
    assert [r["status"] for r in rows] == ["ok", "failed", "ok"]
    failed = rows[1]
    assert failed["error"] == "ValueError: cell b was asked to fail"  # first line only
    assert "Traceback" in failed["traceback"] and failed["map_avg_pct"] is None
    assert rows[0]["map_avg_pct"] == 10.0 and rows[0]["error"] is None
    assert all(r["kind"] == "cell" and r["executor"] == "inline" for r in rows)
    assert reporter.events[0] == ("grid", 3, 3) and reporter.events[-1] == ("end",)
    assert ("done", "key-b", "failed") in reporter.events


def test_resume_skips_ok_cells_and_reruns_failed_ones(tmp_path: Path) -> None:
    specs = [{"name": n, "value": float(i)} for i, n in enumerate("abcd")]
    cells = make_cells(tmp_path, specs)
    run = _run(tmp_path)
    # A previous invocation finished a and c, and b failed; d never started.
    run.append_row({"kind": "cell", "run_key": "key-a", "status": "ok", "map_avg_pct": 0.0})
    run.append_row({"kind": "cell", "run_key": "key-b", "status": "failed", "error": "x"})
    run.append_row({"kind": "cell", "run_key": "key-c", "status": "ok", "map_avg_pct": 2.0})
    result = run_grid(run, cells, make_executor("inline"), PICK, marker_cell, None)
    assert result.counts["skipped"] == 2 and result.counts["ok"] == 2
    assert [invocations(tmp_path, n) for n in "abcd"] == [0, 1, 0, 1]
    # The grid's rows: one per cell, the ok row preferred over the earlier failure.
    assert [(r["run_key"], r["status"]) for r in result.rows] == [
        ("key-a", "ok"), ("key-b", "ok"), ("key-c", "ok"), ("key-d", "ok"),
    ]  # fmt: skip
    again = run_grid(run, cells, make_executor("inline"), PICK, marker_cell, None)
    assert again.counts == {"cells": 4, "ok": 0, "failed": 0, "timeout": 0, "skipped": 4}


def test_local_executor_failures_timeouts_and_dead_workers_are_rows(tmp_path: Path) -> None:
    cells = make_cells(
        tmp_path,
        [
            {"name": "ok1", "value": 1.0},
            {"name": "hang", "value": 0.0, "mode": "hang"},
            {"name": "boom", "value": 0.0, "mode": "raise"},
            {"name": "dies", "value": 0.0, "mode": "exit"},
        ],
    )
    run = _run(tmp_path)
    t0 = time.perf_counter()
    result = run_grid(run, cells, LocalExecutor(jobs=4, timeout_s=4.0), PICK, marker_cell, 1)
    elapsed = time.perf_counter() - t0
    by_name = {r["name"]: r for r in open_run(run.path).rows()}
    assert by_name["ok1"]["status"] == "ok" and by_name["ok1"]["map_avg_pct"] == 1.0
    # threads per worker applied: OMP_NUM_THREADS, which torch reads when a cell imports it
    # (the worker itself no longer imports torch), and torch's own setting if it is loaded
    assert by_name["ok1"]["omp_threads"] == "1"
    assert by_name["ok1"]["torch_threads"] in (None, 1)
    assert by_name["ok1"]["worker_pid"] != os.getpid()  # ran in a fresh process
    assert (
        by_name["hang"]["status"] == "timeout" and "timed out after 4 s" in by_name["hang"]["error"]
    )
    assert 4.0 <= by_name["hang"]["wall_time_s"] < 15.0
    assert by_name["boom"]["status"] == "failed"
    assert by_name["boom"]["error"].startswith("ValueError: cell boom")
    assert by_name["dies"]["status"] == "failed" and "exit code 3" in by_name["dies"]["error"]
    assert result.counts == {"cells": 4, "ok": 1, "failed": 2, "timeout": 1, "skipped": 0}
    assert elapsed < 60.0  # the hanging cell did not hold the grid for its 600 s


DRIVER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {here!r})
    from pathlib import Path
    from grid_cellfns import make_cells, marker_cell
    from tal_bench.pipelines.grid import ExecOptions, GridSpec, execute_grid, pick_fields

    if __name__ == "__main__":
        tmp = Path({tmp!r})
        specs = [{{"name": f"c{{i}}", "value": float(i), "sleep_s": {sleep_s}}} for i in range(3)]
        spec = GridSpec(
            "grid-test", make_cells(tmp / "markers", specs), {{"grid": "crash"}}, {{}}, {{}},
            ["group"], ["map_avg_pct"], pick_fields(["map_avg_pct", "worker_pid"]),
        )
        execute_grid(spec, ExecOptions("local", jobs=2), str(tmp / "run"), cell_fn=marker_cell)
    """
)


def _driver(tmp_path: Path, sleep_s: float) -> list[str]:
    (tmp_path / "markers").mkdir(exist_ok=True)
    script = DRIVER.format(here=str(HERE), tmp=str(tmp_path), sleep_s=sleep_s)
    return [sys.executable, "-c", script]


def _wait_rows(path: Path, n: int, proc: subprocess.Popen, limit_s: float = 90.0) -> None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"driver exited early ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.05)
    pytest.fail("the driver wrote no rows in time")


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in state  # a zombie has stopped running


def test_kill_9_mid_grid_then_resume_recomputes_nothing_finished(tmp_path: Path) -> None:
    cmd = _driver(tmp_path, sleep_s=0.4)
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    rows_path = tmp_path / "run" / "rows.jsonl"
    _wait_rows(rows_path, 1, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    before = open_run(tmp_path / "run").rows()
    finished = {r["name"] for r in before}
    assert 1 <= len(finished) < 3, "kill -9 must land mid-grid"
    pids = [int(p.read_text()) for p in (tmp_path / "markers").iterdir() if p.read_text()]
    time.sleep(1.0)  # workers get SIGKILL from PR_SET_PDEATHSIG when their parent dies
    assert all(_gone(pid) for pid in pids), "orphaned workers kept running after kill -9"

    # Resume: the same grid on the same run directory, in a fresh process.
    subprocess.run(cmd, check=True, timeout=120, capture_output=True)
    rows = open_run(tmp_path / "run").rows()
    assert [json.loads(line) for line in rows_path.read_text().splitlines()] == rows
    ok = [r["name"] for r in rows if r["status"] == "ok"]
    assert sorted(ok) == [f"c{i}" for i in range(3)]  # every cell done exactly once
    for name in finished:
        assert invocations(tmp_path / "markers", name) == 1, f"{name} was recomputed"
    frame = load_rows(tmp_path / "run", kind="cell")
    assert len(frame) == 3 and set(frame["status"]) == {"ok"}
    assert load_meta(tmp_path / "run")["status"] == "ok"


def test_sigterm_stops_the_grid_cleanly(tmp_path: Path) -> None:
    proc = subprocess.Popen(_driver(tmp_path, sleep_s=600), stderr=subprocess.PIPE, text=True)
    markers = tmp_path / "markers"
    t0 = time.perf_counter()
    while len(list(markers.iterdir())) < 2:  # both workers are inside their cells
        assert time.perf_counter() - t0 < 90 and proc.poll() is None, "workers did not start"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) != 0
    assert load_meta(tmp_path / "run")["status"] == "interrupted"
    pids = [int(p.read_text()) for p in markers.iterdir()]
    time.sleep(0.5)
    assert all(_gone(pid) for pid in pids), "workers kept running after SIGTERM"
