"""``talbench report``: find run directories, load their records and write every figure and table
of the study and of ETAD, plus one self-contained HTML page and a Markdown page.

Runs are recognised by the command recorded in their ``meta.json`` (:func:`run_kind`), not by
their names or by which columns their rows happen to have: ``data-scaling`` runs make the
learning curves and Table 2 (with ``talbench train`` results and training profiles),
``sampling-ratio`` runs the DPS or EGS section (their config's ``kind``), ``profile`` runs the
compute and timeline sections, ``fits.json`` files (``talbench fit``) the projections. A run of
a command the report does not know gets a generic section listing its rows. Each kind of run has
its own section function, called by :func:`build_report` in report order.

Fitted curves are drawn only from ``fits.json`` files (``talbench fit`` output); the report never
fits on its own, so the curves shown are exactly the recorded ones.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tal_bench.errors import TalBenchError
from tal_bench.plots import compute, figures, tables
from tal_bench.plots.html import FigureFiles, Section, render_html, render_markdown
from tal_bench.plots.runs import RunData, Timeline, discover_runs, load_run, model_name
from tal_bench.plots.style import Plot, footer_text, save_figure
from tal_bench.records import atomic_write_text

FORMATS = ("png", "svg")
MAX_TIMELINES = 12  # timeline figures per report; more are listed, not drawn


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
    from tal_bench.pipelines.checks import check_out_dir

    check_out_dir(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        if not ((out_dir / "report.html").exists() or (out_dir / "report.md").exists()):
            raise TalBenchError(
                f"{out_dir} is not empty and holds no earlier report; pass a new or empty --out"
            )
        for sub in ("figures", "tables"):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
    try:
        (out_dir / "figures").mkdir(parents=True, exist_ok=True)
        (out_dir / "tables").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TalBenchError(
            f"cannot create {out_dir} ({exc.strerror}); pass a writable --out"
        ) from None


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


def _unique_cells(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per run key: grids that share cells (the main job and a model comparison both
    train ETAD's 10 % slice 0) record the same training twice, which must count once. An ok
    row is kept over a failed one; otherwise the first run's row."""
    if rows.empty or "run_key" not in rows.columns:
        return rows
    failed = rows["status"].ne("ok") if "status" in rows.columns else False
    order = rows.assign(_failed=failed).sort_values("_failed", kind="stable")
    return order.drop_duplicates("run_key").drop(columns="_failed").sort_index()


# --------------------------------------------------------------------------- kinds of run

KNOWN_COMMANDS = ("data-scaling", "sampling-ratio", "profile", "train", "fit")


def run_kind(run: RunData) -> str:
    """What a run is, from the command in its ``meta.json``: the command, with the sampler for
    ``sampling-ratio`` (``sampling-ratio/dps``, ``sampling-ratio/egs``); ``other`` when unknown."""
    command = str(run.meta.get("command") or "")
    if command == "sampling-ratio":
        return f"sampling-ratio/{(run.meta.get('config') or {}).get('kind') or 'dps'}"
    return command if command in KNOWN_COMMANDS else "other"


def runs_of(runs: list[RunData], *kinds: str) -> list[RunData]:
    """The runs of these kinds (``run_kind``), in their order."""
    return [run for run in runs if run_kind(run) in kinds]


def _profile_mask(rows: pd.DataFrame) -> pd.Series:
    if "length" not in rows.columns:
        return pd.Series(False, rows.index)
    return rows["length"].notna() & ~_is_cell(rows)


def _train_mask(rows: pd.DataFrame) -> pd.Series:
    """``talbench train`` results and the summary row of ``talbench profile --mode train``."""
    if "kind" not in rows.columns:
        return pd.Series(False, rows.index)
    return rows["kind"].isin(["result", "train"]) & ~_profile_mask(rows)


def _footer(runs: list[RunData]) -> str:
    return footer_text(run.label for run in runs)


def _scaling_section(rep: _Report, runs: list[RunData], metric: str) -> None:
    """The study's Fig. 2 (learning curves of every model, ± std bands) and Table 2 (training
    time and mAP per model at its largest fraction) from data-scaling runs; Table 2 also takes
    ``talbench train`` results and training profiles."""
    rows, used = _rows_of(runs_of(runs, "data-scaling"), _is_cell)
    rows = _unique_cells(rows)
    train_rows, _ = _rows_of(runs_of(runs, "train", "profile"), _train_mask)
    if rows.empty and train_rows.empty:
        return
    sec = Section("Data efficiency")
    if not rows.empty:
        _check_metric(rows, metric)
        curves = figures.learning_curve_table(rows, metric)
        sec.figures.append(rep.figure(figures.plot_learning_curves(curves, metric, _footer(used))))
        sec.notes.append(
            f"Points: mean {figures.metric_label(metric)} of the ok cells per training fraction; "
            "band: ± one sample standard deviation of the per-slice means."
        )
    both = pd.concat([rows, train_rows], ignore_index=True)
    sec.tables.append(rep.table(tables.study_table(both)))
    sec.notes.append(
        "Table: per model at its largest training fraction, mean ± sample std over the ok runs; "
        "training time is wall time, CPU time the training process's user + system time (which "
        "other jobs on a shared machine do not inflate)."
    )
    rep.sections.append(sec)


def _check_metric(rows: pd.DataFrame, metric: str) -> None:
    if metric not in rows.columns:
        known = sorted(c for c in rows.columns if c.startswith("map_"))
        raise TalBenchError(
            f"--metric {metric!r} is not a column of the data-scaling rows; "
            f"choose one of {', '.join(known) or 'map_avg_pct'}"
        )


def _fit_model(run: RunData, by_path: dict[Path, RunData]) -> str:
    """Model of the data a fits.json was fitted on: as fits.json records it, else its own
    run's rows, else its input run."""
    recorded = ((run.fits or {}).get("input") or {}).get("model")
    if isinstance(recorded, str) and recorded:
        return recorded
    if "model" in run.rows.columns and not run.rows.empty:
        return str(run.rows["model"].iloc[0])
    source = Path(str(((run.fits or {}).get("input") or {}).get("path") or ""))
    src = (source if source.is_dir() else source.parent).resolve()
    if src in by_path and src != run.path.resolve():
        return _fit_model(by_path[src], {})
    return model_name(run.meta, run.path)


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
    sec = Section("Curve fits and projections")
    sec.notes.append(
        "As recorded by talbench fit (fits.json); the report does not refit. Each method is "
        "fitted on the fit range and scored by backtest: fitted on the fractions up to each cut, "
        "it forecasts every larger fraction of the range; the lowest mean error is selected. "
        "Coverage: how often the interval held the measured mean in the backtest. The interval "
        "adds the method's own backtest error to the slice-to-slice spread (bootstrap over "
        "slices); 'slices only' is the bootstrap alone."
    )
    by_path = {r.path.resolve(): r for r in runs}
    scaling_rows = _unique_cells(_rows_of(runs_of(runs, "data-scaling"), _is_cell)[0])
    names: set[str] = set()
    models = [_fit_model(run, by_path) for run in fit_runs]
    sec.tables.append(rep.table(tables.projections_table(
        [(m, r.fits or {}) for m, r in zip(models, fit_runs, strict=True)])))  # fmt: skip
    for run, model in zip(fit_runs, models, strict=True):
        fits = run.fits or {}
        key = _unique(f"{model}", names)
        anchors = _fit_anchors(run, model, scaling_rows)
        table = figures.fit_plot_table(fits, anchors)
        sec.figures.append(rep.figure(figures.plot_fit(f"fits_{key}", model, fits, table,
                                                       run.label)))  # fmt: skip
        sec.tables.append(rep.table(tables.projection_table(fits, key)))
        sec.tables.append(rep.table(tables.backtest_table(fits, key)))
        sec.tables.append(rep.table(tables.fit_table(fits, key)))
        sec.notes += _fit_notes(fits, model)
    rep.sections.append(sec)


def _fit_notes(fits: dict[str, Any], model: str) -> list[str]:
    """The warning (also in the projection table) and the methods that could not be fitted."""
    proj = fits.get("projection") or {}
    notes = [f"{model}: {proj['warning']}"] if proj.get("warning") else []
    return notes + [
        f"{model}: {name} could not be fitted on the fit range ({entry.get('message') or '?'})"
        for name, entry in sorted((proj.get("methods") or {}).items())
        if entry.get("status", "ok") != "ok"
    ]


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
        _time_macs_figures(rep, sec, table, footer)
        sec.tables.append(rep.table(compute.model_summary_table(table)))
    sec.tables.append(rep.table(tables.profile_table(rows)))
    rep.sections.append(sec)


def _time_macs_figures(rep: _Report, sec: Section, table: pd.DataFrame, footer: str) -> None:
    """The study's Fig. 4 (TadTR's time and GMACs on twin axes), for every profiled model."""
    for model, device in table[["model", "device"]].drop_duplicates().itertuples(index=False):
        sec.figures.append(rep.figure(compute.plot_time_and_macs(table, model, device, footer)))
    sec.notes.append(
        "Inference time and GMACs on twin axes, one figure per model, its title saying how the "
        "input was cut (the study draws TadTR's in one pass over the whole input: talbench "
        "profile --model tadtr --preset paper --set data.mode=full --set data.downsample=1; "
        "window-mode detectors otherwise run their "
        "windows)."
    )


def _timeline_label(run: RunData, timeline: Timeline) -> str:
    models = sorted(set(run.rows["model"])) if "model" in run.rows.columns else []
    what = ", ".join(models[:3]) + (f" and {len(models) - 3} more" if len(models) > 3 else "")
    what = what or run.path.name
    mode = {"timeline_per_length": ", one process per length"}.get(timeline.name, "")
    return f"{what} ({run.meta.get('command', '?')} run {run.path.name}{mode})"


def _timeline_section(rep: _Report, runs: list[RunData]) -> None:
    items = [(run, t) for run in runs for t in run.timelines]
    epochs, used = _rows_of(runs, _train_profile_mask)
    if not items and epochs.empty:
        return
    sec = Section("Utilisation timelines")
    for i, (run, timeline) in enumerate(items[:MAX_TIMELINES]):
        if timeline.samples.empty or "t_s" not in timeline.samples.columns:
            sec.notes.append(f"{timeline.paths[0]}: no t_s column or no samples; not drawn.")
            continue
        name = f"timeline_{i:02d}_{run.path.name}_{timeline.name}"
        label = _timeline_label(run, timeline)
        sec.figures.append(rep.figure(compute.plot_timeline(timeline.samples, name, label,
                                                            run.label)))  # fmt: skip
    if len(items) > MAX_TIMELINES:
        skipped = ", ".join(str(t.paths[0]) for _, t in items[MAX_TIMELINES:])
        sec.notes.append(f"{len(items) - MAX_TIMELINES} more timelines not drawn: {skipped}")
    if not epochs.empty:
        sec.tables.append(rep.table(tables.train_profile_table(epochs)))
    rep.sections.append(sec)


def _train_profile_mask(rows: pd.DataFrame) -> pd.Series:
    if "kind" not in rows.columns:
        return pd.Series(False, rows.index)
    return rows["kind"].isin(["train_epoch", "train"])


def _ratio_section(rep: _Report, runs: list[RunData]) -> None:
    rows, used = _rows_of(runs_of(runs, "sampling-ratio/dps"), _is_cell)
    if rows.empty:
        return
    sec = Section("DPS sampling ratio")
    table = figures.sampling_ratio_table(rows)
    sec.figures.append(rep.figure(figures.plot_sampling_ratios(table, _footer(used))))
    sec.notes.append("Mean over ok cells at each ratio; error bars: ± one sample std.")
    if (table["dps_ratio"] >= 1.0).any():
        sec.notes.append(
            "Ratio 1.0 samples every proposal, so the strategies coincide there: talbench "
            "sampling-ratio trains it once (first strategy) and each strategy shows those cells."
        )
    sec.tables.append(rep.table(tables.strategy_table(table)))
    rep.sections.append(sec)


def _egs_section(rep: _Report, runs: list[RunData]) -> None:
    rows, used = _rows_of(runs_of(runs, "sampling-ratio/egs"), _is_cell)
    if rows.empty:
        return
    sec = Section("EGS sampling ratio (end-to-end training)")
    table = figures.sampling_ratio_table(rows, "egs")
    sec.figures.append(rep.figure(figures.plot_sampling_ratios(table, _footer(used), "egs")))
    kinds = sorted(set(rows.get("step_mem_kind", pd.Series(dtype=str)).dropna()))
    sec.notes.append(
        "Mean over ok cells at each encoder-gradient ratio; error bars: ± one sample std. Ratio "
        "0 is the frozen encoder (the pre-extracted-features baseline); ratios 0 and 1 do not "
        "depend on the strategy, so they are trained once (first strategy) and each strategy "
        "shows those cells."
    )
    if figures.time_column(table, "egs") == "train_cpu_s":
        sec.notes.append(
            "Training time: CPU time of the training process (one torch thread per cell), which "
            "other jobs on a shared machine do not inflate as they do the wall time in the table."
        )
    if figures.memory_column(table, "egs") == "step_mem_mib":
        sec.notes.append(
            f"Memory: the peak of one training step ({', '.join(kinds)}): on CUDA "
            "torch.cuda.max_memory_allocated, on the CPU the bytes of the tensors the step "
            "creates (activations, saved tensors, gradients, optimizer state), without the "
            "process's baseline (profiling.memory.TensorPeak)."
        )
    sec.tables.append(rep.table(tables.strategy_table(table, "egs")))
    rep.sections.append(sec)


MAX_GENERIC_ROWS = 200  # rows listed per run of an unknown command


def _other_section(rep: _Report, runs: list[RunData]) -> None:
    """Runs of commands the report has no section for: their rows, listed as recorded."""
    names: set[str] = set()
    for run in runs_of(runs, "other"):
        command = str(run.meta.get("command") or "?")
        sec = Section(f"Other runs: {command}")
        rows = run.rows.drop(columns=["run_dir"], errors="ignore")
        shown = rows.head(MAX_GENERIC_ROWS)
        key = _unique(f"rows_{command}_{run.path.name}", names)
        title = f"{command} run {run.path.name}: {len(rows)} rows"
        display = shown.astype(object).where(shown.notna(), "-").astype(str)
        sec.tables.append(rep.table(tables.Table(key, title, shown, display)))
        sec.notes.append(
            f"The report has no section for {command!r} runs (known: "
            f"{', '.join(KNOWN_COMMANDS)}); its rows are listed as recorded"
            + (f", the first {MAX_GENERIC_ROWS}." if len(rows) > MAX_GENERIC_ROWS else ".")
        )
        rep.sections.append(sec)


def _failure_section(rep: _Report, runs: list[RunData]) -> int:
    frames = [run.rows for run in runs if not run.rows.empty]
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run_dir"])
    table = rep.table(tables.failures_table(rows, root=Path.cwd()))
    sec = Section("Failures")
    bad_runs = [r for r in runs if r.meta.get("status") not in ("ok", None)]
    sec.notes += [_status_note(r) for r in bad_runs]
    if table.data.empty:
        sec.notes.append("No failed cells.")
    sec.tables.append(table)
    rep.sections.append(sec)
    return len(table.data)


def _status_note(run: RunData) -> str:
    status = run.meta.get("status")
    if status == "running":
        return f"run {run.path} has status 'running': still running, or killed before it finished."
    return f"run {run.path} ended with status {status!r}."


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
    display = data.assign(
        run_dir=[tables.relative_path(p, Path.cwd()) for p in data["run_dir"]],
        rows=data["rows"].astype(str),
    )
    table = tables.Table("runs", f"Run directories read ({len(runs)})", data, display)
    rep.sections.append(Section("Runs", tables=[rep.table(table)]))


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
    _compute_section(rep, runs_of(runs, "profile"))
    _timeline_section(rep, runs_of(runs, "profile"))
    _ratio_section(rep, runs)
    _egs_section(rep, runs)
    _other_section(rep, runs)
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
    atomic_write_text(html_path, render_html(title, intro, rep.sections))
    atomic_write_text(md_path, render_markdown(title, intro, rep.sections, rep.out_dir))
    summary = {
        "figures": [str(p) for p in rep.figure_paths],
        "tables": [str(p) for p in rep.table_paths],
        "html": str(html_path),
        "markdown": str(md_path),
        "runs": len(runs),
        "failures": failures,
    }
    return ReportResult(summary, rep.plots, rep.tables)
