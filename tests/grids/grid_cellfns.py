"""Cell functions and helpers for the grid tests (importable by spawned workers by name)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from tal_bench.pipelines.grid import Cell


def marker_cell(payload: dict[str, Any]) -> dict[str, Any]:
    """Leave one marker file per invocation, then behave as ``payload["mode"]`` says."""
    marker_dir = Path(payload["marker_dir"])
    stamp = f"{payload['name']}.{os.getpid()}.{time.time_ns()}"
    (marker_dir / stamp).write_text(str(os.getpid()))
    time.sleep(payload.get("sleep_s", 0.0))
    mode = payload.get("mode", "ok")
    if mode == "raise":
        raise ValueError(f"cell {payload['name']} was asked to fail\nsecond line")
    if mode == "exit":
        os._exit(3)
    if mode == "hang":
        time.sleep(600)
    torch = sys.modules.get("torch")
    return {
        "map_avg_pct": payload["value"],
        "train_time_s": 0.25,
        "worker_pid": os.getpid(),
        "omp_threads": os.environ.get("OMP_NUM_THREADS"),
        "marker_env": os.environ.get("TALBENCH_MARKER_ENV"),
        "torch_threads": torch.get_num_threads() if torch is not None else None,
    }


def make_cells(marker_dir: Path, specs: list[dict[str, Any]]) -> list[Cell]:
    """One cell per spec dict (``name``, ``value``, optional ``mode``/``sleep_s``)."""
    cells = []
    for spec in specs:
        payload = {"marker_dir": str(marker_dir), **spec}
        params = {"name": spec["name"], "group": spec.get("group", "g")}
        cells.append(Cell(f"key-{spec['name']}", params, payload, spec["name"]))
    return cells


def invocations(marker_dir: Path, name: str) -> int:
    """How many times the cell ``name`` started."""
    return len(list(Path(marker_dir).glob(f"{name}.*")))


class RecordingReporter:
    """Keeps every reporter callback as an event tuple."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def grid_started(self, cells, todo) -> None:
        self.events.append(("grid", len(cells), len(todo)))

    def cell_started(self, cell) -> None:
        self.events.append(("start", cell.key))

    def cell_finished(self, cell, row) -> None:
        self.events.append(("done", cell.key, row["status"]))

    def grid_finished(self) -> None:
        self.events.append(("end",))
