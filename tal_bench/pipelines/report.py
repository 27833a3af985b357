"""``talbench report``: find run directories, load their records and write every figure and table
of the study and of ETAD, plus one self-contained HTML page and a Markdown page.

Runs are recognised by their contents, not their names: grid cells (``kind == "cell"``) without
``dps_ratio`` are data-scaling cells, with it sampling-ratio cells; rows with a ``length`` are
profiles; ``kind`` ``epoch``/``result`` rows come from ``talbench train``; a ``fits.json`` comes
from ``talbench fit``; files named ``*timeline*`` next to the rows are sampler timelines.

Fitted curves are drawn only from ``fits.json`` files (``talbench fit`` output); the report never
fits on its own, so the curves shown are exactly the recorded ones.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tal_bench.errors import TalBenchError
from tal_bench.plots import compute, figures, tables
from tal_bench.plots.html import FigureFiles, Section, render_html, render_markdown
from tal_bench.plots.style import Plot, footer_text, machine_label, save_figure
from tal_bench.records import META_FILE, load_meta, load_rows

log = logging.getLogger(__name__)

FORMATS = ("png", "svg")
MAX_TIMELINES = 12  # timeline figures per report; more are listed, not drawn
_TIMELINE_SUFFIXES = (".jsonl", ".csv", ".json")


@dataclass
class RunData:
    """One loaded run directory."""

    path: Path
    meta: dict[str, Any]
    rows: pd.DataFrame
    fits: dict[str, Any] | None = None
    timelines: list[Path] = field(default_factory=list)

    @property
    def label(self) -> str:
        """Machine footer line for figures made from this run."""
        return machine_label(self.meta, _threads(self))


def _threads(run: RunData) -> int | None:
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
    """Run directories (holding ``meta.json``) at or below each path, sorted, without repeats.

    Raises:
        TalBenchError: a path does not exist, or no run directory is found at all.
    """
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise TalBenchError(f"{path} does not exist; pass run directories or their parents")
        metas = [path / META_FILE] if (path / META_FILE).is_file() else []
        metas += sorted(path.rglob(META_FILE)) if path.is_dir() else []
        for meta in metas:
            found.setdefault(meta.parent.resolve(), None)
    if not found:
        shown = ", ".join(str(p) for p in paths)
        raise TalBenchError(
            f"no run directories (with {META_FILE}) under {shown}; pass directories written by "
            "talbench data-scaling / sampling-ratio / fit / profile / train"
        )
    return sorted(found)


def _model_name(meta: dict[str, Any], path: Path) -> str:
    config = meta.get("config") or {}
    for key in ("model_name", "model"):
        value = config.get(key)
        if isinstance(value, dict):
            value = value.get("name")
        if isinstance(value, str) and value:
            return value
    return path.name


def load_run(path: Path) -> RunData:
    """Load ``meta.json``, the rows (with ``model`` filled in from the config when missing),
    ``fits.json`` and the timeline files of one run directory."""
    meta = load_meta(path)
    rows = load_rows(path)
    default_model = _model_name(meta, path)
    if "model" not in rows.columns:
        rows["model"] = default_model
    rows["model"] = rows["model"].fillna(default_model).astype(str)
    rows = dedupe_cells(rows)
    fits = None
    if (path / "fits.json").is_file():
        try:
            fits = json.loads((path / "fits.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise TalBenchError(f"{path / 'fits.json'} is not valid JSON ({exc.msg})") from None
    timelines = sorted(
        p for p in path.iterdir()
        if p.is_file() and "timeline" in p.name and p.suffix in _TIMELINE_SUFFIXES
    )  # fmt: skip
    return RunData(path, meta, rows, fits, timelines)


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
    rest = cells[~cells["run_key"].isin(first_ok["run_key"])].drop_duplicates(
        "run_key", keep="last"
    )
    kept = pd.concat([rows[~keyed], first_ok, rest])
    return kept.sort_index(kind="stable").reset_index(drop=True)


def read_timeline(path: Path) -> pd.DataFrame:
    """A sampler timeline file (JSON lines, CSV, or JSON list/dict of columns) as a DataFrame."""
    try:
        if path.suffix == ".jsonl":
            return pd.read_json(path, lines=True)
        if path.suffix == ".csv":
            return pd.read_csv(path)
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise TalBenchError(f"cannot read timeline {path} ({exc}); is the file intact?") from None
    if isinstance(obj, dict) and isinstance(obj.get("samples"), list):
        obj = obj["samples"]
    return pd.DataFrame(obj)


def parse_formats(text: str) -> tuple[str, ...]:
    """``"png,svg"`` -> ``("png", "svg")``; unknown formats raise TalBenchError."""
    fmts = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise TalBenchError(
            f"unknown figure format(s) {', '.join(bad) or repr(text)}; use png, svg or png,svg"
        )
    return fmts


def _prepare_out(out_dir: Path) -> None:
    """Create ``out_dir``; an earlier report there is replaced, anything else is refused."""
    if out_dir.exists() and any(out_dir.iterdir()):
        if not ((out_dir / "report.html").exists() or (out_dir / "report.md").exists()):
            raise TalBenchError(
                f"{out_dir} is not empty and holds no earlier report; pass a new or empty --out"
            )
        for sub in ("figures", "tables"):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    (out_dir / "tables").mkdir(parents=True, exist_ok=True)


@dataclass
class _Report:
    """What is being written: output places and everything produced so far."""

    out_dir: Path
    formats: tuple[str, ...]
    sections: list[Section] = field(default_factory=list)
    figure_paths: list[Path] = field(default_factory=list)
    table_paths: list[Path] = field(default_factory=list)
    plots: dict[str, Plot] = field(default_factory=dict)
    tables: dict[str, tables.Table] = field(default_factory=dict)

    def figure(self, plot: Plot) -> FigureFiles:
        paths = save_figure(plot.figure, self.out_dir / "figures", plot.name, self.formats)
        self.figure_paths += paths
        self.plots[plot.name] = plot
        return FigureFiles(plot.title, paths)

    def table(self, table: tables.Table) -> tables.Table:
        path = self.out_dir / "tables" / f"{table.name}.csv"
        table.data.to_csv(path, index=False)
        self.table_paths.append(path)
        self.tables[table.name] = table
        return table


def _rows_of(runs: list[RunData], predicate: Any) -> tuple[pd.DataFrame, list[RunData]]:
    """Rows selected by ``predicate(rows) -> bool mask``, concatenated, and the runs used."""
    frames, used = [], []
    for run in runs:
        if run.rows.empty:
            continue
        sel = run.rows[predicate(run.rows)]
        if not sel.empty:
            frames.append(sel)
            used.append(run)
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), used


def _is_cell(rows: pd.DataFrame) -> pd.Series:
    return rows["kind"].eq("cell") if "kind" in rows.columns else pd.Series(False, rows.index)


def _scaling_mask(rows: pd.DataFrame) -> pd.Series:
    no_ratio = rows["dps_ratio"].isna() if "dps_ratio" in rows.columns else True
    return _is_cell(rows) & no_ratio


def _ratio_mask(rows: pd.DataFrame) -> pd.Series:
    if "dps_ratio" not in rows.columns:
        return pd.Series(False, rows.index)
    return _is_cell(rows) & rows["dps_ratio"].notna()


def _profile_mask(rows: pd.DataFrame) -> pd.Series:
    if "length" not in rows.columns:
        return pd.Series(False, rows.index)
    return rows["length"].notna() & ~_is_cell(rows)


def _train_mask(rows: pd.DataFrame) -> pd.Series:
    if "kind" not in rows.columns:
        return pd.Series(False, rows.index)
    return rows["kind"].isin(["epoch", "result"]) & ~_profile_mask(rows)


def _footer(runs: list[RunData]) -> str:
    return footer_text(run.label for run in runs)


def _scaling_section(rep: _Report, runs: list[RunData], metric: str) -> None:
    rows, used = _rows_of(runs, _scaling_mask)
    train_rows, train_used = _rows_of(runs, _train_mask)
    if rows.empty and train_rows.empty:
        return
    sec = Section("Data efficiency")
    if not rows.empty:
        curves = figures.learning_curve_table(rows, metric)
        sec.figures.append(rep.figure(figures.plot_learning_curves(curves, metric, _footer(used))))
        sec.notes.append(
            f"Points: mean {figures.metric_label(metric)} of the ok cells per training fraction; "
            "band: ± one sample standard deviation of the per-slice means."
        )
    both = pd.concat([rows, train_rows], ignore_index=True)
    sec.tables.append(rep.table(tables.study_table(both)))
    rep.sections.append(sec)


def _fit_model(run: RunData, by_path: dict[Path, RunData]) -> str:
    """Model of the data a fits.json was fitted on: its own run's rows, else its input run."""
    if not run.rows.empty and "model" in run.rows.columns:
        return str(run.rows["model"].iloc[0])
    source = (run.fits or {}).get("input", {}).get("path")
    if source:
        src = Path(source)
        src = src if src.is_dir() else src.parent
        if src.resolve() in by_path:
            return _fit_model(by_path[src.resolve()], {})
        if (src / META_FILE).is_file():
            return _model_name(load_meta(src), src)
    return _model_name(run.meta, run.path)


def _fit_anchors(run: RunData, model: str, metric_rows: pd.DataFrame) -> pd.DataFrame:
    """The points the fit was made on (stored in fits.json), else the model's grid means."""
    anchors = figures.fits_anchor_table(run.fits or {})
    if anchors.empty and not metric_rows.empty:
        curves = figures.learning_curve_table(metric_rows, "map_avg_pct")
        anchors = curves[curves["model"] == model].drop(columns="model")
    return anchors


def _fit_section(rep: _Report, runs: list[RunData]) -> None:
    fit_runs = [r for r in runs if r.fits]
    if not fit_runs:
        return
    sec = Section("Curve fits and extrapolation")
    sec.notes.append(
        "Curves as recorded by talbench fit (fits.json); the report does not refit. Solid: "
        "family fitted on all points; dashed: fitted on the first points only and projected to "
        "the target fraction, with the bootstrap interval of the projection."
    )
    by_path = {r.path.resolve(): r for r in runs}
    scaling_rows, _ = _rows_of(runs, _scaling_mask)
    names: set[str] = set()
    for run in fit_runs:
        model = _fit_model(run, by_path)
        key = _unique(f"{model}", names)
        anchors = _fit_anchors(run, model, scaling_rows)
        table = figures.fit_plot_table(run.fits or {}, anchors)
        plot = figures.plot_fit(f"fits_{key}", model, run.fits or {}, table, run.label)
        sec.figures.append(rep.figure(plot))
        sec.tables.append(rep.table(tables.fit_table(run.fits or {}, key)))
        sec.tables.append(rep.table(tables.extrapolation_table(run.fits or {}, key)))
    rep.sections.append(sec)


def _unique(name: str, taken: set[str]) -> str:
    """``name`` made file-safe and distinct from ``taken`` (``-2``, ``-3`` ... appended)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "model"
    out, n = safe, 1
    while out in taken:
        n += 1
        out = f"{safe}-{n}"
    taken.add(out)
    return out


def _inference_mask(rows: pd.DataFrame) -> pd.Series:
    mask = pd.Series(False, rows.index)
    mask[compute.inference_rows(rows[_profile_mask(rows)]).index] = True
    failed = rows["status"].fillna("ok").ne("ok") if "status" in rows.columns else False
    return mask | (_profile_mask(rows) & failed)  # failed rows: for the profile table's context


def _compute_section(rep: _Report, runs: list[RunData]) -> None:
    rows, used = _rows_of(runs, _inference_mask)
    if rows.empty:
        return
    sec = Section("Compute against input length")
    table = compute.compute_table(rows)
    footer = _footer(used)
    if not table.empty:
        for plot_fn in (compute.plot_latency, compute.plot_macs, compute.plot_memory):
            sec.figures.append(rep.figure(plot_fn(table, footer)))
        sec.notes.append(
            "Latency: median per forward pass, error bars ± half the interquartile range. "
            "MACs: multiply-accumulates counted by the profiler. Both axes logarithmic."
        )
    sec.tables.append(rep.table(tables.profile_table(rows)))
    rep.sections.append(sec)


def _timeline_label(run: RunData, path: Path) -> str:
    models = sorted(set(run.rows["model"])) if "model" in run.rows.columns else []
    what = ", ".join(models[:3]) or run.path.name
    return f"{what} ({run.meta.get('command', '?')} run {run.path.name})"


def _timeline_section(rep: _Report, runs: list[RunData]) -> None:
    items = [(run, p) for run in runs for p in run.timelines]
    if not items:
        return
    sec = Section("Utilisation timelines")
    for i, (run, path) in enumerate(items[:MAX_TIMELINES]):
        samples = read_timeline(path)
        if "t_s" not in samples.columns or samples.empty:
            sec.notes.append(f"{path}: no t_s column or no samples; not drawn.")
            continue
        name = f"timeline_{i:02d}_{run.path.name}_{path.stem}"
        plot = compute.plot_timeline(samples, name, _timeline_label(run, path), run.label)
        sec.figures.append(rep.figure(plot))
    if len(items) > MAX_TIMELINES:
        skipped = ", ".join(str(p) for _, p in items[MAX_TIMELINES:])
        sec.notes.append(f"{len(items) - MAX_TIMELINES} more timelines not drawn: {skipped}")
    rep.sections.append(sec)


def _ratio_section(rep: _Report, runs: list[RunData]) -> None:
    rows, used = _rows_of(runs, _ratio_mask)
    if rows.empty:
        return
    sec = Section("DPS sampling ratio")
    table = figures.sampling_ratio_table(rows)
    sec.figures.append(rep.figure(figures.plot_sampling_ratios(table, _footer(used))))
    sec.notes.append("Mean over ok cells at each ratio; error bars: ± one sample std.")
    sec.tables.append(rep.table(tables.strategy_table(table)))
    rep.sections.append(sec)


def _failure_section(rep: _Report, runs: list[RunData]) -> int:
    frames = [run.rows for run in runs if not run.rows.empty]
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run_dir"])
    table = rep.table(tables.failures_table(rows, root=Path.cwd()))
    sec = Section("Failures")
    bad_runs = [r for r in runs if r.meta.get("status") not in ("ok", None)]
    sec.notes += [f"run {r.path} ended with status {r.meta.get('status')!r}." for r in bad_runs]
    if table.data.empty:
        sec.notes.append("No failed cells.")
    sec.tables.append(table)
    rep.sections.append(sec)
    return len(table.data)


def _runs_section(rep: _Report, runs: list[RunData]) -> None:
    data = pd.DataFrame(
        {
            "run_dir": [str(r.path) for r in runs],
            "command": [str(r.meta.get("command", "?")) for r in runs],
            "status": [str(r.meta.get("status", "?")) for r in runs],
            "rows": [len(r.rows) for r in runs],
            "machine": [r.label for r in runs],
        }
    )
    display = data.assign(run_dir=[tables.relative_path(p, Path.cwd()) for p in data["run_dir"]])
    display = display.assign(rows=data["rows"].astype(str))
    rep.sections.append(
        Section(
            "Runs",
            tables=[
                rep.table(
                    tables.Table("runs", f"Run directories read ({len(runs)})", data, display)
                )
            ],
        )
    )


def build_report(
    paths: list[str | Path],
    out_dir: str | Path,
    formats: tuple[str, ...] = ("png",),
    metric: str = "map_avg_pct",
) -> ReportResult:
    """Read every run under ``paths`` and write figures, tables, ``report.html`` and ``report.md``.

    Args:
        paths: run directories or directories searched recursively for ``meta.json``.
        out_dir: report directory: ``figures/``, ``tables/`` (CSV), ``report.html``,
            ``report.md``. An earlier report there is replaced; any other non-empty directory is
            refused.
        formats: figure formats, ``png`` and/or ``svg``.
        metric: mAP column for the learning curves (``map_avg_pct``, ``map_pct_at_0.50`` ...).

    Returns:
        The summary ``{"figures": [paths], "tables": [csv paths], "html", "markdown",
        "runs": n, "failures": n}`` and every plot/table by name (their ``data`` frames are the
        exact numbers drawn/printed).

    Raises:
        TalBenchError: no run directory found, a record is unreadable, or ``out_dir`` is unusable.
    """
    formats = parse_formats(",".join(formats))
    run_dirs = discover_runs(list(paths))
    runs = [load_run(p) for p in run_dirs]
    out = Path(out_dir)
    _prepare_out(out)
    rep = _Report(out, formats)
    _scaling_section(rep, runs, metric)
    _fit_section(rep, runs)
    _compute_section(rep, runs)
    _timeline_section(rep, runs)
    _ratio_section(rep, runs)
    failures = _failure_section(rep, runs)
    _runs_section(rep, runs)
    return _write_pages(rep, runs, failures)


@dataclass
class ReportResult:
    """What :func:`build_report` wrote, plus the plotted/tabulated numbers by name."""

    summary: dict[str, Any]  # the ``--json`` summary
    plots: dict[str, Plot]
    tables: dict[str, tables.Table]


def _write_pages(rep: _Report, runs: list[RunData], failures: int) -> ReportResult:
    title = "tal-bench report"
    intro = [
        f"{len(runs)} run directories, {len(rep.figure_paths)} figure files, "
        f"{failures} failed cells.",
        "Every figure names in its footer the machine it was measured on (CPU, GPU, torch "
        "threads) and the tal_bench commit.",
    ]
    html_path, md_path = rep.out_dir / "report.html", rep.out_dir / "report.md"
    html_path.write_text(render_html(title, intro, rep.sections), encoding="utf-8")
    md_path.write_text(render_markdown(title, intro, rep.sections, rep.out_dir), encoding="utf-8")
    summary = {
        "figures": [str(p) for p in rep.figure_paths],
        "tables": [str(p) for p in rep.table_paths],
        "html": str(html_path),
        "markdown": str(md_path),
        "runs": len(runs),
        "failures": failures,
    }
    return ReportResult(summary, rep.plots, rep.tables)
