"""Finding and loading the run directories a report is made from.

A run directory is one with a ``meta.json`` (any ``talbench`` command), or a directory holding
only a ``fits.json`` (``talbench fit --out DIR``). Besides its rows, a run may hold a
``fits.json`` and sampler timelines: ``timeline.jsonl`` (``talbench profile``), any other
``*timeline*.jsonl``/``.csv``, and ``timeline_L<length>.json`` files written by isolated
per-length profiling, which are joined into one timeline in length order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tal_bench.errors import TalBenchError
from tal_bench.plots.style import machine_label
from tal_bench.records import META_FILE, load_meta, load_rows

FITS_FILE = "fits.json"
_PER_LENGTH = re.compile(r"^timeline_L(\d+)\.json$")


@dataclass
class Timeline:
    """One sampler timeline of a run: a name, the files it comes from and the samples."""

    name: str
    paths: list[Path]
    samples: pd.DataFrame


@dataclass
class RunData:
    """One loaded run directory."""

    path: Path
    meta: dict[str, Any]
    rows: pd.DataFrame
    fits: dict[str, Any] | None = None
    timelines: list[Timeline] = field(default_factory=list)

    @property
    def label(self) -> str:
        """Machine footer line for figures made from this run."""
        return machine_label(self.meta, run_threads(self))


def run_threads(run: RunData) -> int | None:
    """Torch threads of a run: from its rows, its config, or a grid's invocation log."""
    if "threads" in run.rows.columns:
        values = pd.to_numeric(run.rows["threads"], errors="coerce").dropna().unique()
        if len(values) == 1:
            return int(values[0])
    train = (run.meta.get("config") or {}).get("train") or {}
    value = train.get("threads") if isinstance(train, dict) else None
    if isinstance(value, int):
        return value
    return _grid_threads(run.path / "grid.json")


def _grid_threads(path: Path) -> int | None:
    """Torch threads per cell from a grid's invocation log, when every invocation agrees."""
    try:
        history = json.loads(path.read_text(encoding="utf-8"))
        values = {inv.get("exec", {}).get("threads") for inv in history.get("invocations", [])}
    except (OSError, ValueError, AttributeError):
        return None
    return values.pop() if len(values) == 1 and isinstance(next(iter(values)), int) else None


def discover_runs(paths: list[str | Path]) -> list[Path]:
    """Run directories at or below each path (``meta.json``, or a lone ``fits.json``), sorted.

    Raises:
        TalBenchError: a path does not exist, or no run directory is found at all.
    """
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise TalBenchError(f"{path} does not exist; pass run directories or their parents")
        if path.is_file():
            path = path.parent
        for name in (META_FILE, FITS_FILE):
            hits = [path / name] if (path / name).is_file() else []
            for hit in hits + sorted(path.rglob(name)):
                found.setdefault(hit.parent.resolve(), None)
    if not found:
        shown = ", ".join(str(p) for p in paths)
        raise TalBenchError(
            f"no run directories (with {META_FILE}) under {shown}; pass directories written by "
            "talbench data-scaling / sampling-ratio / fit / profile / train"
        )
    return sorted(found)


def model_name(meta: dict[str, Any], path: Path) -> str:
    """The model a run's config names (``model_name``, ``model`` or ``model.name``)."""
    config = meta.get("config") or {}
    for key in ("model_name", "model"):
        value = config.get(key)
        if isinstance(value, dict):
            value = value.get("name")
        if isinstance(value, str) and value:
            return value
    run = config.get("run")  # talbench profile: {"profile": ..., "run": <RunConfig>}
    if isinstance(run, dict) and isinstance(run.get("model_name"), str):
        return run["model_name"]
    return path.name


def load_run(path: Path) -> RunData:
    """Load ``meta.json``, the rows (``model`` filled in from the config when missing, one row
    per grid cell), ``fits.json`` and the timelines of one run directory."""
    fits = _read_fits(path)
    if not (path / META_FILE).is_file():  # a lone fits.json: describe it by its input run
        return RunData(path, _fit_input_meta(fits), pd.DataFrame({"run_dir": []}), fits)
    meta = load_meta(path)
    rows = load_rows(path)
    default_model = model_name(meta, path)
    if "model" not in rows.columns:
        rows["model"] = default_model
    rows["model"] = rows["model"].fillna(default_model).astype(str)
    return RunData(path, meta, dedupe_cells(rows), fits, find_timelines(path))


def _read_fits(path: Path) -> dict[str, Any] | None:
    if not (path / FITS_FILE).is_file():
        return None
    try:
        return json.loads((path / FITS_FILE).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TalBenchError(f"{path / FITS_FILE} is not valid JSON ({exc.msg})") from None


def _fit_input_meta(fits: dict[str, Any] | None) -> dict[str, Any]:
    source = Path(str(((fits or {}).get("input") or {}).get("path") or ""))
    src = source if source.is_dir() else source.parent
    if str(source) and (src / META_FILE).is_file():
        return {**load_meta(src), "command": "fit", "status": "ok"}
    return {"command": "fit", "status": "ok"}


def dedupe_cells(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per grid cell (``run_key``): its first ok row, else its latest row.

    A resumed grid appends a new row for a cell that failed before; only the outcome that
    stands counts, as in the grid runner. Rows without a ``run_key`` are kept as they are.
    """
    if "run_key" not in rows.columns or rows.empty:
        return rows
    keyed = rows["run_key"].notna()
    cells = rows[keyed]
    ok = cells["status"].fillna("ok").eq("ok") if "status" in cells.columns else True
    first_ok = cells[ok].drop_duplicates("run_key", keep="first")
    rest = cells[~cells["run_key"].isin(first_ok["run_key"])]
    kept = pd.concat([rows[~keyed], first_ok, rest.drop_duplicates("run_key", keep="last")])
    return kept.sort_index(kind="stable").reset_index(drop=True)


def read_samples(path: Path) -> pd.DataFrame:
    """A sampler file (JSON lines, CSV, or a JSON list of samples) as a DataFrame."""
    try:
        if path.suffix == ".jsonl":
            lines = path.read_text(encoding="utf-8").splitlines()
            return pd.DataFrame([json.loads(line) for line in lines if line.strip()])
        if path.suffix == ".csv":
            return pd.read_csv(path)
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise TalBenchError(f"cannot read timeline {path} ({exc}); is the file intact?") from None
    if isinstance(obj, dict) and isinstance(obj.get("samples"), list):
        obj = obj["samples"]
    return pd.DataFrame(obj)


def find_timelines(path: Path) -> list[Timeline]:
    """The run's timelines: each ``*timeline*.jsonl``/``.csv`` file, plus all
    ``timeline_L<n>.json`` files joined in length order (each restarts its clock, so later
    files are shifted to start where the previous one ended)."""
    out = []
    for file in sorted(path.iterdir()):
        if file.is_file() and "timeline" in file.name and file.suffix in (".jsonl", ".csv"):
            out.append(Timeline(file.stem, [file], read_samples(file)))
    per_length = sorted(
        (int(m.group(1)), f) for f in path.iterdir() if (m := _PER_LENGTH.match(f.name))
    )
    if per_length:
        files = [f for _, f in per_length]
        out.append(Timeline("timeline_per_length", files, _join_samples(files)))
    return out


def _join_samples(files: list[Path]) -> pd.DataFrame:
    frames, offset_s = [], 0.0
    for file in files:
        samples = read_samples(file)
        if samples.empty or "t_s" not in samples.columns:
            continue
        t_s = pd.to_numeric(samples["t_s"], errors="coerce")
        frames.append(samples.assign(t_s=t_s + offset_s))
        offset_s = float(t_s.max() + offset_s)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
