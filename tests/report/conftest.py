"""One set of fabricated run directories and one report over them, shared by the report tests."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixtures  # noqa: E402

from tal_bench.pipelines.report import ReportResult, build_report  # noqa: E402


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every kind of run (data-scaling x2 with a fits.json, sampling-ratio, profiles, train)."""
    return fixtures.write_all(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="session")
def report(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> ReportResult:
    """The report over all fixture runs (PNG; the SVG path has its own smaller test)."""
    root = runs["etad"].parent
    return build_report([root], tmp_path_factory.mktemp("out") / "report", ("png",))


def raw_rows(run_dir: Path) -> list[dict[str, Any]]:
    """rows.jsonl read with json only (independent of tal_bench.records and pandas)."""
    text = (run_dir / "rows.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def standing_cells(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per run_key: the first ok row, else the last row (what a resumed grid stands by)."""
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.get("kind") != "cell":
            continue
        key = r["run_key"]
        if key not in best or best[key]["status"] != "ok":
            best[key] = r
    return list(best.values())
