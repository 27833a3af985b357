"""Data-efficiency figures: learning curves (the study's Fig. 2), fitted curves and
extrapolations (Fig. 3), and ETAD's sampling-ratio sweeps (ETAD Fig. 4 for DPS, Fig. 5 for EGS).

Every public ``*_table`` function turns record rows into the exact numbers a figure draws, and
every ``plot_*`` function returns a :class:`~tal_bench.plots.style.Plot` whose ``data`` is that
table, so tests compare numbers with the records instead of reading pixels.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from tal_bench.plots.style import Plot, add_footer, figure_context, measured_ticks, new_figure

_THRESHOLD_COL = re.compile(r"^map_pct_at_(\d+(?:\.\d+)?)$")


def metric_label(metric: str) -> str:
    """Axis label with unit for a mAP column, e.g. ``map_pct_at_0.50`` -> ``mAP@0.50 (%)``."""
    if metric == "map_avg_pct":
        return "average mAP (%)"
    match = _THRESHOLD_COL.match(metric)
    if match:
        return f"mAP@{float(match.group(1)):.2f} (%)"
    return metric


def ok_rows(rows: pd.DataFrame, kind: str | None = None) -> pd.DataFrame:
    """Rows of ``kind`` (when the column exists) whose ``status`` is ``"ok"`` (or missing)."""
    out = rows
    if kind is not None and "kind" in out.columns:
        out = out[out["kind"] == kind]
    if "status" in out.columns:
        out = out[out["status"].fillna("ok") == "ok"]
    return out


def learning_curve_table(rows: pd.DataFrame, metric: str = "map_avg_pct") -> pd.DataFrame:
    """Per model and training fraction: mean of the "ok" cells and the spread over slices.

    ``mean`` is the mean of every ok row at that fraction; ``std`` is the sample standard
    deviation (ddof=1) of the per-slice means (with one seed per slice: of the rows), NaN for a
    single slice.

    Args:
        rows: grid rows with ``model``, ``fraction_pct``, ``slice`` and ``metric`` columns.
        metric: the mAP column to aggregate (points, 0-100).

    Returns:
        Columns ``model, fraction_pct, mean, std, n_rows, n_slices``, sorted by model, fraction.
    """
    cols = ["model", "fraction_pct", "mean", "std", "n_rows", "n_slices"]
    cells = ok_rows(rows, kind="cell")
    if metric not in cells.columns or cells.empty:
        return pd.DataFrame(columns=cols)
    cells = cells[cells[metric].notna()]
    if "slice" not in cells.columns:
        cells = cells.assign(slice=np.arange(len(cells)))
    records = []
    for (model, frac), grp in cells.groupby(["model", "fraction_pct"], sort=True):
        per_slice = grp.groupby("slice")[metric].mean()
        std = float(per_slice.std(ddof=1)) if len(per_slice) > 1 else float("nan")
        records.append(
            (model, float(frac), float(grp[metric].mean()), std, len(grp), len(per_slice))
        )
    return pd.DataFrame.from_records(records, columns=cols)


def _band(ax: Any, x: np.ndarray, mean: np.ndarray, std: np.ndarray, color: str) -> None:
    has_std = ~np.isnan(std)
    if has_std.any():
        ax.fill_between(
            x[has_std], (mean - std)[has_std], (mean + std)[has_std], color=color, alpha=0.18, lw=0
        )


def _slices_text(n_slices: pd.Series) -> str:
    lo, hi = int(n_slices.min()), int(n_slices.max())
    return f"{hi} slices" if lo == hi else f"{lo}-{hi} slices"


def plot_learning_curves(curves: pd.DataFrame, metric: str, footer: str) -> Plot:
    """Mean mAP against training fraction, one line per model with a +/- std band over slices.

    Args:
        curves: the output of :func:`learning_curve_table`.
        metric: the aggregated column (for the axis label).
        footer: machine footer text.

    Returns:
        The figure and ``curves`` as its data.
    """
    with figure_context():
        fig = new_figure(6.4, 4.2)
        ax = fig.add_subplot()
        for i, (model, grp) in enumerate(curves.groupby("model", sort=True)):
            color = f"C{i % 8}"
            x = grp["fraction_pct"].to_numpy(float)
            mean = grp["mean"].to_numpy(float)
            ax.plot(x, mean, "o-", color=color, label=f"{model} ({_slices_text(grp['n_slices'])})")
            _band(ax, x, mean, grp["std"].to_numpy(float), color)
        ax.set_xlabel("training data (% of training videos)")
        ax.set_ylabel(metric_label(metric))
        ax.set_title("Learning curves (band: ± 1 std over slices)")
        ax.set_xlim(0, 102)
        if not curves.empty:
            ax.legend(loc="lower right")
        add_footer(fig, footer)
    return Plot("learning_curves", "Learning curves: mAP against training data", fig, curves)


def _shared_ratios(ratios: pd.Series, kind: str) -> pd.Series:
    """Ratios where every strategy trains the same: 1 (nothing left out), and EGS 0 (nothing
    gets gradients). ``talbench sampling-ratio`` trains them once, under the first strategy."""
    ratios = ratios.astype(float)
    return (ratios >= 1.0) | ((ratios <= 0.0) if kind == "egs" else False)


def _share_full_ratio(cells: pd.DataFrame, kind: str = "dps") -> pd.DataFrame:
    """Give every strategy without a cell at a strategy-free ratio the model's cells there."""
    ratio, strategy = f"{kind}_ratio", f"{kind}_strategy"
    shared = cells[_shared_ratios(cells[ratio], kind)]
    extra = []
    for (model, _), src in shared.groupby(["model", ratio], sort=False):
        have = set(src[strategy])
        src = src[src[strategy] == src[strategy].iloc[0]]
        for s in cells.loc[cells["model"] == model, strategy].unique():
            if s not in have:
                extra.append(src.assign(**{strategy: s}))
    return pd.concat([cells, *extra], ignore_index=True) if extra else cells


RATIO_VALUES = {
    "dps": ["map_avg_pct", "map_pct_at_0.50", "train_time_s", "peak_mem_mib", "step_time_ms"],
    "egs": ["map_avg_pct", "map_pct_at_0.50", "train_time_s", "train_cpu_s", "peak_mem_mib",
            "step_mem_mib", "step_time_ms"],
}  # fmt: skip


def sampling_ratio_table(rows: pd.DataFrame, kind: str = "dps") -> pd.DataFrame:
    """Per model, strategy and ratio of a sampling study: mean/std of mAP, time and memory.

    Args:
        rows: sampling-ratio grid rows (``<kind>_ratio``, ``<kind>_strategy`` and the usual
            cell columns); optional columns missing from the records come out as NaN.
        kind: ``dps`` (detector proposal sampling) or ``egs`` (encoder gradient sampling).

    Returns:
        Columns ``model, <kind>_strategy, <kind>_ratio, n_rows`` and ``<col>_mean``/``<col>_std``
        for ``RATIO_VALUES[kind]`` (mAP, mAP@0.50, train time, peak memory, step time; EGS also
        ``step_mem_mib``). Strategy-free ratios (1; EGS 0) appear under every strategy.
    """
    values = RATIO_VALUES[kind]
    keys = ["model", f"{kind}_strategy", f"{kind}_ratio"]
    cols = [*keys, "n_rows"] + [f"{v}_{s}" for v in values for s in ("mean", "std")]
    cells = ok_rows(rows, kind="cell")
    if cells.empty or keys[2] not in cells.columns:
        return pd.DataFrame(columns=cols)
    cells = cells[cells[keys[2]].notna()]
    cells = cells.assign(**{keys[1]: cells.get(keys[1], "random")}).copy()
    cells[keys[1]] = cells[keys[1]].fillna("random")
    cells = _share_full_ratio(cells, kind)
    records = []
    for key, grp in cells.groupby(keys, sort=True):
        rec: dict[str, Any] = dict(zip(keys, key, strict=True))
        rec[keys[2]] = float(rec[keys[2]])
        rec["n_rows"] = len(grp)
        for v in values:
            col = grp[v].dropna().astype(float) if v in grp.columns else pd.Series(dtype=float)
            rec[f"{v}_mean"] = float(col.mean()) if len(col) else float("nan")
            rec[f"{v}_std"] = float(col.std(ddof=1)) if len(col) > 1 else float("nan")
        records.append(rec)
    return pd.DataFrame.from_records(records, columns=cols)


def _recorded(table: pd.DataFrame, col: str) -> bool:
    return bool(table.get(f"{col}_mean", pd.Series(dtype=float)).notna().any())


def memory_column(table: pd.DataFrame, kind: str) -> str:
    """The memory a sampling figure draws: EGS's per-step peak (``step_mem_mib``: CUDA max
    allocated, or the CPU tensor peak) when recorded, else the run's ``peak_mem_mib``."""
    return "step_mem_mib" if kind == "egs" and _recorded(table, "step_mem_mib") else "peak_mem_mib"


def time_column(table: pd.DataFrame, kind: str) -> str:
    """The training time a sampling figure draws: for EGS the process CPU time (``train_cpu_s``)
    when recorded, which a machine shared with other jobs does not inflate as it does wall time
    (cells run one torch thread each); else the wall time ``train_time_s``."""
    return "train_cpu_s" if kind == "egs" and _recorded(table, "train_cpu_s") else "train_time_s"


_RATIO_PANELS = (
    ("map_avg_pct", "average mAP (%)"),
    ("train_time_s", "training time (s)"),
    ("peak_mem_mib", "peak memory (MiB)"),
)
_AXIS_LABELS = {
    "dps": "DPS sampling ratio (fraction of proposals)",
    "egs": "EGS ratio (fraction of snippets)",
}


def plot_sampling_ratios(table: pd.DataFrame, footer: str, kind: str = "dps") -> Plot:
    """mAP, training time and memory against the sampling ratio, one line per strategy.

    DPS ratios are drawn on a log axis (ETAD Fig. 4); EGS ratios, which start at 0, at evenly
    spaced positions labelled with the ratio (as ETAD Fig. 5).

    Args:
        table: the output of :func:`sampling_ratio_table` for ``kind``.
        footer: machine footer text.
        kind: ``dps`` or ``egs``.

    Returns:
        The figure and ``table`` as its data.
    """
    ratio, strategy = f"{kind}_ratio", f"{kind}_strategy"
    panels = list(_RATIO_PANELS)
    if memory_column(table, kind) == "step_mem_mib":
        panels[2] = ("step_mem_mib", "peak memory of one training step (MiB)")
    if time_column(table, kind) == "train_cpu_s":
        panels[1] = ("train_cpu_s", "training CPU time (s)")
    ticks = sorted(table[ratio].astype(float).unique())
    where = {r: i for i, r in enumerate(ticks)}
    with figure_context():
        fig = new_figure(10.5, 3.6)
        axes = fig.subplots(1, len(panels))
        groups = list(table.groupby(["model", strategy], sort=True))
        many_models = table["model"].nunique() > 1
        for ax, (col, label) in zip(axes, panels, strict=True):
            for i, ((model, strat), grp) in enumerate(groups):
                name = f"{model} {strat}" if many_models else str(strat)
                x = grp[ratio].to_numpy(float)
                y = grp[f"{col}_mean"].to_numpy(float)
                if np.isnan(y).all():
                    continue
                if kind == "egs":
                    x = np.array([where[v] for v in x], dtype=float)
                ax.errorbar(x, y, yerr=grp[f"{col}_std"].to_numpy(float), fmt="o-",
                            color=f"C{i % 8}", capsize=2.5, label=name)  # fmt: skip
            if kind == "egs":
                ax.set_xticks(range(len(ticks)), [f"{100 * r:g} %" for r in ticks])
            else:
                ax.set_xscale("log")
            ax.set_xlabel(_AXIS_LABELS[kind])
            ax.set_ylabel(label)
        for ax, title in zip(axes, ("mAP", "training time", "peak memory"), strict=True):
            ax.set_title(title)
        if groups:
            axes[0].legend(title="strategy", loc="best")
        add_footer(fig, footer)
    name = "sampling_ratios" if kind == "dps" else "egs_ratios"
    title = f"{kind.upper()} sampling ratio: mAP, time and memory"
    return Plot(name, title, fig, table)


# ----------------------------------------------------------------------------- fits (Fig. 3)

# The study's two families and the two naive baselines; the selected method is added.
FIT_METHODS_DRAWN = ("ensemble", "5pl", "exp", "last", "loglog")
_FIT_COLS = ["series", "family", "fraction_pct", "map_pct", "lo", "hi"]


def _predict(family: str, params: dict[str, float], x: np.ndarray) -> np.ndarray | None:
    """``METHODS[family]`` at ``x``; None when the family or a parameter is unknown."""
    from tal_bench.fits import METHODS  # plots read fits; fits never import plots

    curve = METHODS.get(family)
    if curve is None or not params or any(p not in params for p in curve.params):
        return None
    return np.asarray(curve.predict(x, params), dtype=float)


def _method_curve(methods: dict[str, Any], name: str, x: np.ndarray) -> np.ndarray | None:
    """A projected method's curve at ``x``; the ensemble's is its members' weighted mean."""
    entry = methods.get(name) or {}
    if entry.get("status") != "ok":
        return None
    weights = entry.get("weights")
    if weights:
        curves = [(w, _method_curve(methods, m, x)) for m, w in weights.items()]
        if any(c is None for _, c in curves):
            return None
        return sum(w * c for w, c in curves) / sum(w for w, _ in curves)  # type: ignore[operator]
    return _predict(name, entry.get("params") or {}, x)


def _methods_drawn(fits: dict[str, Any]) -> list[str]:
    proj = fits.get("projection") or {}
    names = [*([proj["selected"]] if proj.get("selected") else []), *FIT_METHODS_DRAWN]
    methods = proj.get("methods") or {}
    return [m for m in dict.fromkeys(names) if (methods.get(m) or {}).get("status") == "ok"]


def fits_anchor_table(fits: dict[str, Any]) -> pd.DataFrame:
    """The anchors stored in a ``fits.json`` in :func:`learning_curve_table` form (std NaN for
    a single slice)."""
    cols = ["fraction_pct", "mean", "std", "n_slices"]
    recs = [
        (float(a["fraction_pct"]), float(a["map_mean_pct"]),
         float("nan") if a.get("map_std_pct") is None else float(a["map_std_pct"]),
         int(a.get("n_slices", 1)))
        for a in fits.get("anchors") or []
    ]  # fmt: skip
    return pd.DataFrame.from_records(recs, columns=cols)


def fit_plot_table(fits: dict[str, Any], anchors: pd.DataFrame, n_grid: int = 200) -> pd.DataFrame:
    """Everything a fit figure draws, as rows of one table.

    Series: ``anchors`` (measured mean mAP, ``lo``/``hi`` = mean -/+ std), ``projection`` (a
    method fitted on the fit range, drawn up to the target: the selected method, the ensemble,
    the study's 5PL and exponential, and the baselines), ``target`` (its value at the target
    with the calibrated interval in ``lo``/``hi``, the bootstrap one when there is none) and
    ``actual`` (the measured mean at the target).

    Args:
        fits: a ``fits.json`` object.
        anchors: one model's :func:`learning_curve_table` rows.
        n_grid: points per drawn curve (log-spaced).
    """
    rows: list[tuple[Any, ...]] = [
        ("anchors", "", r.fraction_pct, r.mean, r.mean - r.std, r.mean + r.std)
        for r in anchors.itertuples()
    ]
    proj = fits.get("projection") or {}
    target = float(proj.get("target") or 100.0)
    x_min = float(anchors["fraction_pct"].min()) if len(anchors) else 1.0
    grid = np.geomspace(max(x_min, 1e-3), max(target, x_min), n_grid)
    methods = proj.get("methods") or {}
    for name in _methods_drawn(fits):
        y = _method_curve(methods, name, grid)
        if y is not None:
            rows += [
                ("projection", name, x, v, np.nan, np.nan) for x, v in zip(grid, y, strict=True)
            ]
        entry = methods[name]
        lo, hi = entry.get("interval") or entry.get("interval_bootstrap") or [np.nan, np.nan]
        if entry.get("projected") is not None:
            rows.append(("target", name, target, float(entry["projected"]), lo, hi))
    if proj.get("actual") is not None:
        rows.append(("actual", "", target, float(proj["actual"]), np.nan, np.nan))
    return pd.DataFrame.from_records(rows, columns=_FIT_COLS)


def plot_fit(name: str, model: str, fits: dict[str, Any], table: pd.DataFrame, footer: str) -> Plot:
    """Learning curve with the projections from the fit range to the target (Fig. 3).

    Args:
        name: file stem.
        model: model name for the title.
        fits: the ``fits.json`` object (fit range, selected method, warning).
        table: :func:`fit_plot_table` output.
        footer: machine footer text.
    """
    proj = fits.get("projection") or {}
    level = float(proj.get("level") or 0.95)
    pts = table[table["series"] == "anchors"]
    with figure_context():
        fig = new_figure(8.6, 4.6)
        ax = fig.add_subplot()
        ax.set_xscale("log")
        if proj.get("upto") is not None and not pts.empty:
            upto = float(proj["upto"])
            ax.axvspan(float(pts["fraction_pct"].min()) / 1.2, upto, color="0.95", zorder=0,
                       label=f"fit range (≤ {upto:g} %)")  # fmt: skip
        ax.errorbar(pts["fraction_pct"], pts["map_pct"], yerr=pts["map_pct"] - pts["lo"], fmt="o",
                    color="k", capsize=2.5, label="measured mean ± std", zorder=5)  # fmt: skip
        drawn = list(dict.fromkeys(table.loc[table["series"] == "target", "family"]))
        for i, method in enumerate(drawn):
            # Projections share the target x; spread them a little so intervals stay readable.
            shift = 1.0 + 0.03 * (i - (len(drawn) - 1) / 2)
            _draw_method(ax, table, method, f"C{i % 8}", method == proj.get("selected"), level,
                         shift)  # fmt: skip
        actual = table[table["series"] == "actual"]
        ax.plot(actual["fraction_pct"], actual["map_pct"], "*", ms=11, color="k",
                label="measured at target", zorder=6)  # fmt: skip
        measured_ticks(ax, pts["fraction_pct"].to_numpy(float))
        ax.set_xlabel("training data (% of training videos, log scale)")
        ax.set_ylabel(metric_label(str(fits.get("metric", "map_avg_pct"))))
        title = f"Projection from the fit range: {model}"
        ax.set_title(
            title + ("\n(do not trust it: see the warning)" if proj.get("warning") else "")
        )
        # Outside the axes: with many methods inside it covered the curves it explains.
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=7)
        add_footer(fig, footer)
    return Plot(name, f"Projection from the fit range: {model}", fig, table)


def _draw_method(
    ax: Any, table: pd.DataFrame, method: str, color: str, selected: bool, level: float,
    shift: float,
) -> None:  # fmt: skip
    """One method: its curve from the fit range on, and its projection with interval."""
    rows = table[table["family"] == method]
    curve = rows[rows["series"] == "projection"]
    if not curve.empty:
        ax.plot(curve["fraction_pct"], curve["map_pct"], "-" if selected else "--", color=color,
                lw=2.2 if selected else 1.0,
                label=method + (" (selected)" if selected else ""))  # fmt: skip
    for r in rows[rows["series"] == "target"].itertuples():
        err = None
        if not (np.isnan(r.lo) or np.isnan(r.hi)):
            err = [[max(r.map_pct - r.lo, 0.0)], [max(r.hi - r.map_pct, 0.0)]]
        label = f"{method} projection ({level:.0%} interval)"
        ax.errorbar([r.fraction_pct * shift], [r.map_pct], yerr=err, fmt="D", color=color,
                    capsize=3, ms=5, label=label)  # fmt: skip
