"""Report tables from record rows: training time and mAP per model (the study's Table 2), fit
parameters and errors, the profile summary, ETAD's sampling-strategy tables (ETAD Table 5) and
the list of failed cells; plus plain Markdown/HTML renderers.

Each builder returns a :class:`Table` whose ``data`` keeps full-precision numbers (what tests
compare) and whose ``display`` holds the formatted strings the report prints.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tal_bench.plots.figures import ok_rows


@dataclass
class Table:
    """A report table.

    Attributes:
        name: file stem (``study_table``, ``fits_etad`` ...).
        title: one-line caption.
        data: full-precision numbers, one row per table row.
        display: the same rows as formatted strings (column headers carry units).
    """

    name: str
    title: str
    data: pd.DataFrame
    display: pd.DataFrame


def fmt_num(value: Any, decimals: int = 2) -> str:
    """A number with fixed decimals, ``-`` for missing/NaN, thousands separators for counts."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool | str):
        return str(value)
    return f"{value:,.{decimals}f}"


def fmt_mean_std(mean: Any, std: Any, decimals: int = 2) -> str:
    """``mean +/- std``, or just the mean when std is missing."""
    if fmt_num(std) == "-":
        return fmt_num(mean, decimals)
    return f"{fmt_num(mean, decimals)} ± {fmt_num(std, decimals)}"


def _stats(grp: pd.DataFrame, col: str) -> tuple[float, float]:
    if col not in grp.columns:
        return math.nan, math.nan
    values = pd.to_numeric(grp[col], errors="coerce").dropna()
    mean = float(values.mean()) if len(values) else math.nan
    std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    return mean, std


_STUDY_COLS = ("map_avg_pct", "map_pct_at_0.50", "train_time_s", "train_cpu_s", "peak_mem_mib")
# Row kind -> where the result comes from (grid cell, talbench train, profile --mode train).
_SOURCES = {"cell": "grid", "result": "train", "train": "profile"}


def study_table(rows: pd.DataFrame) -> Table:
    """Training time and mAP per model at its largest training fraction (the study's Table 2).

    Uses ok grid cells (``kind == "cell"``), ``talbench train`` results (``kind == "result"``)
    and training profiles (``kind == "train"``, whose peak memory is the process peak RSS);
    sampling-ratio cells are left out (they change the training itself).

    Args:
        rows: rows of any runs, with a ``model`` column.

    Returns:
        Table with ``model, source, fraction_pct, n`` and mean/std of ``map_avg_pct``,
        ``map_pct_at_0.50``, ``train_time_s``, ``train_cpu_s`` (training process CPU time, when
        recorded), ``peak_mem_mib``.
    """
    ok = ok_rows(rows)
    ok = (
        ok.assign(kind=ok["kind"].fillna("result"))
        if "kind" in ok.columns
        else ok.assign(kind="result")
    )
    ok = ok[ok["kind"].isin(list(_SOURCES))]
    for col in ("dps_ratio", "egs_ratio"):
        if col in ok.columns:
            ok = ok[ok[col].isna()]
    if "fraction_pct" not in ok.columns:
        ok = ok.assign(fraction_pct=100.0)
    ok = ok.assign(fraction_pct=pd.to_numeric(ok["fraction_pct"], errors="coerce").fillna(100.0))
    records = []
    for (model, kind), grp in ok.groupby(["model", "kind"], sort=True):
        top = grp[grp["fraction_pct"] == grp["fraction_pct"].max()]
        rec: dict[str, Any] = {
            "model": model,
            "source": _SOURCES[kind],
            "fraction_pct": float(top["fraction_pct"].iloc[0]),
            "n": len(top),
        }
        if "peak_mem_mib" not in top.columns or top["peak_mem_mib"].isna().all():
            top = top.assign(peak_mem_mib=top.get("peak_rss_mib"))
        for col in _STUDY_COLS:
            rec[f"{col}_mean"], rec[f"{col}_std"] = _stats(top, col)
        records.append(rec)
    data = pd.DataFrame.from_records(
        records,
        columns=["model", "source", "fraction_pct", "n"]
        + [f"{c}_{s}" for c in _STUDY_COLS for s in ("mean", "std")],
    )
    display = pd.DataFrame(
        {
            "model": data["model"],
            "source": data["source"],
            "training data (%)": data["fraction_pct"].map(lambda v: fmt_num(v, 0)),
            "runs": data["n"].astype(str),
            "avg mAP (%)": _ms(data, "map_avg_pct"),
            "mAP@0.50 (%)": _ms(data, "map_pct_at_0.50"),
            "training time (s)": _ms(data, "train_time_s", 1),
            "training CPU time (s)": _ms(data, "train_cpu_s", 1),
            "peak memory (MiB)": _ms(data, "peak_mem_mib", 0),
        }
    )
    return Table("study_table", "Training time and mAP per model (mean ± std)", data, display)


def _ms(data: pd.DataFrame, col: str, decimals: int = 2) -> list[str]:
    return [
        fmt_mean_std(m, s, decimals)
        for m, s in zip(data[f"{col}_mean"], data[f"{col}_std"], strict=True)
    ]


def strategy_table(ratio_table: pd.DataFrame, kind: str = "dps") -> Table:
    """ETAD Table 5 (the DPS or the EGS column): mAP, time and memory per sampling strategy and
    ratio.

    Args:
        ratio_table: :func:`tal_bench.plots.figures.sampling_ratio_table` output for ``kind``.
        kind: ``dps`` or ``egs``.
    """
    data = ratio_table.reset_index(drop=True)
    columns = {
        "model": data["model"],
        "strategy": data[f"{kind}_strategy"],
        "ratio": data[f"{kind}_ratio"].map(lambda v: fmt_num(v, 3)),
        "runs": data["n_rows"].astype(str),
        "mAP@0.50 (%)": _ms(data, "map_pct_at_0.50"),
        "avg mAP (%)": _ms(data, "map_avg_pct"),
        "training time (s)": _ms(data, "train_time_s", 1),
        "step time (ms)": _ms(data, "step_time_ms", 1),
        "peak memory (MiB)": _ms(data, "peak_mem_mib", 0),
    }
    if kind == "egs":
        columns["training CPU time (s)"] = _ms(data, "train_cpu_s", 1)
        columns["step peak memory (MiB)"] = _ms(data, "step_mem_mib", 1)
        name, title = "egs_strategy_table", "EGS sampling strategies and ratios"
    else:
        name, title = "strategy_table", "DPS sampling strategies and ratios"
    return Table(name, title, data, pd.DataFrame(columns))


_PROFILE_COLS = (
    "threads",
    "params",
    "macs",
    "latency_ms_median",
    "latency_ms_iqr",
    "peak_rss_mib",
    "gpu_peak_allocated_mib",
    "cpu_util_mean",
    "gpu_util_mean",
    "roofline_fraction",
    "machine_drift_frac",
)


def profile_table(rows: pd.DataFrame) -> Table:
    """One line per profiled (model, device, mode, length): the recorded measures (mean of
    repeated rows). Missing optional columns show as ``-``.

    Args:
        rows: ``talbench profile`` rows.
    """
    ok = ok_rows(rows)
    ok = ok[ok["length"].notna()] if "length" in ok.columns else ok.iloc[0:0]
    if "kind" in ok.columns:  # per-epoch training rows are summarised by their timeline
        ok = ok[~ok["kind"].isin(["epoch"])]
    ok = ok.assign(
        device=ok["device"].fillna("cpu") if "device" in ok.columns else "cpu",
        mode=ok["mode"].fillna("infer") if "mode" in ok.columns else "infer",
    )
    keys = ["model", "device", "mode", "length"]
    records = []
    for key, grp in ok.groupby(keys, sort=True):
        rec = dict(zip(keys, key, strict=True))
        rec["n"] = len(grp)
        for col in _PROFILE_COLS:
            rec[col] = _stats(grp, col)[0]
        records.append(rec)
    data = pd.DataFrame.from_records(records, columns=[*keys, "n", *_PROFILE_COLS])
    display = pd.DataFrame(
        {
            "model": data["model"],
            "device": data["device"],
            "mode": data["mode"],
            "length (steps)": data["length"].map(_cell_text),
            "threads": data["threads"].map(lambda v: fmt_num(v, 0)),
            "params (M)": (data["params"] / 1e6).map(fmt_num),
            "GMACs": (data["macs"] / 1e9).map(lambda v: fmt_num(v, 3)),
            "latency (ms, median)": data["latency_ms_median"].map(fmt_num),
            "latency IQR (ms)": data["latency_ms_iqr"].map(fmt_num),
            "peak RSS (MiB)": data["peak_rss_mib"].map(lambda v: fmt_num(v, 0)),
            "GPU peak alloc (MiB)": data["gpu_peak_allocated_mib"].map(lambda v: fmt_num(v, 0)),
            "CPU util (%)": data["cpu_util_mean"].map(lambda v: fmt_num(v, 1)),
            "GPU util (%)": data["gpu_util_mean"].map(lambda v: fmt_num(v, 1)),
            "roofline fraction": data["roofline_fraction"].map(lambda v: fmt_num(v, 3)),
            # the control matmul's change over the timing: no latency is steadier than this
            "machine drift (%)": (100 * data["machine_drift_frac"]).map(lambda v: fmt_num(v, 1)),
        }
    )
    return Table("profile_table", "Profile summary (mean over repeated rows)", data, display)


_EPOCH_COLS = ("epoch_time_s", "step_ms_mean", "loss", "cpu_util_mean", "gpu_util_mean",
               "peak_rss_mib", "gpu_peak_allocated_mib")  # fmt: skip


def train_profile_table(rows: pd.DataFrame) -> Table:
    """Per epoch of a training profile (``kind == "train_epoch"``): time, step time, loss,
    utilisation and memory peaks, as recorded.

    Args:
        rows: ``talbench profile --mode train`` rows.
    """
    ep = ok_rows(rows, kind="train_epoch")
    keys = [k for k in ("model", "device", "threads", "epoch") if k in ep.columns]
    data = ep[[*keys, *(c for c in _EPOCH_COLS if c in ep.columns)]].reset_index(drop=True)
    data = data.reindex(columns=[*keys, *_EPOCH_COLS])
    display = pd.DataFrame(
        {
            **{k: data[k].map(_cell_text) for k in keys},
            "epoch time (s)": data["epoch_time_s"].map(lambda v: fmt_num(v, 1)),
            "step time (ms)": data["step_ms_mean"].map(lambda v: fmt_num(v, 1)),
            "loss": data["loss"].map(lambda v: fmt_num(v, 4)),
            "CPU util (%)": data["cpu_util_mean"].map(lambda v: fmt_num(v, 1)),
            "GPU util (%)": data["gpu_util_mean"].map(lambda v: fmt_num(v, 1)),
            "peak RSS (MiB)": data["peak_rss_mib"].map(lambda v: fmt_num(v, 0)),
            "GPU peak alloc (MiB)": data["gpu_peak_allocated_mib"].map(lambda v: fmt_num(v, 0)),
        }
    )
    return Table("train_profile", "Training profile per epoch", data, display)


_FAILURE_KEYS = ("kind", "model", "fraction_pct", "slice", "seed", "dps_strategy", "dps_ratio",
                 "egs_strategy", "egs_ratio", "length", "device")  # fmt: skip


def failures_table(rows: pd.DataFrame, root: Path | None = None) -> Table:
    """Every row whose ``status`` is not ``ok``, with the cell it belongs to and its error.

    Args:
        rows: rows of all runs (``run_dir`` column from :func:`tal_bench.records.load_rows`).
        root: directory that ``run_dir`` is shown relative to, when it lies below it.
    """
    status = rows["status"] if "status" in rows.columns else pd.Series("ok", index=rows.index)
    bad = rows[status.fillna("ok") != "ok"]
    keys = [k for k in _FAILURE_KEYS if k in bad.columns and bad[k].notna().any()]
    extra = [c for c in ("status", "error") if c in bad.columns]
    data = bad[[c for c in ("run_dir", *keys, *extra) if c in bad.columns]]
    data = data.reset_index(drop=True)
    display = data.copy().astype(object)
    display["run_dir"] = [relative_path(p, root) for p in data["run_dir"]]
    for col in display.columns:
        display[col] = [_cell_text(v) for v in display[col]]
    return Table("failures", f"Failed cells ({len(data)})", data, display)


def relative_path(path: Any, root: Path | None) -> str:
    """``path`` relative to ``root`` when it lies below it, else unchanged (as text)."""
    if root is None:
        return str(path)
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _cell_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def to_markdown(table: Table) -> str:
    """The display frame as a GitHub-flavoured Markdown table (pipes in cells escaped)."""
    df = table.display
    if df.empty:
        return "_(no rows)_\n"

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in df.columns) + " |"]
    lines.append("|" + "|".join("---" for _ in df.columns) + "|")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def to_html(table: Table) -> str:
    """The display frame as an escaped HTML ``<table>`` (no inline scripts or styles)."""
    df = table.display
    if df.empty:
        return '<p class="empty">(no rows)</p>\n'
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
        for row in df.itertuples(index=False)
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n"


def fit_table(fits: dict[str, Any], model: str) -> Table:
    """Parameters and goodness of fit of every family in a ``fits.json`` (fits on all anchors).

    Args:
        fits: the ``fits.json`` object.
        model: model name (table name and caption).
    """
    cols = ["family", "status", "params", "r2", "rmse", "aic", "mean_abs_error", "at_bound"]
    records = []
    for fam, entry in sorted((fits.get("families") or {}).items()):
        records.append({
            "family": fam,
            "status": entry.get("status", "?"),
            "params": dict(entry.get("params") or {}),
            **{k: _num(entry.get(k)) for k in ("r2", "rmse", "aic", "mean_abs_error")},
            "at_bound": ", ".join(entry.get("at_bound") or []),
        })  # fmt: skip
    data = pd.DataFrame.from_records(records, columns=cols)
    display = pd.DataFrame(
        {
            "family": data["family"],
            "status": data["status"],
            "parameters": [", ".join(f"{k}={v:.4g}" for k, v in p.items()) for p in data["params"]],
            "R²": data["r2"].map(lambda v: fmt_num(v, 4)),
            "RMSE (mAP pts)": data["rmse"].map(lambda v: fmt_num(v, 3)),
            "AIC": data["aic"].map(fmt_num),
            "mean |error| (mAP pts)": data["mean_abs_error"].map(lambda v: fmt_num(v, 3)),
            "at bound": data["at_bound"].replace("", "-"),
        }
    )
    return Table(f"fits_{model}", f"Curve fits on all points: {model}", data, display)


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def _interval_text(iv: Any) -> str:
    return "-" if not iv else f"[{fmt_num(iv[0])}, {fmt_num(iv[1])}]"


def projection_table(fits: dict[str, Any], model: str) -> Table:
    """The headline: the selected method's projection, its interval, the measured value and
    the warning when the projection should not be trusted (next to the number).

    Args:
        fits: the ``fits.json`` object (``projection`` section).
        model: model name (table name and caption).
    """
    proj = fits.get("projection") or {}
    lo, hi = (proj.get("interval") or [None, None])[:2]
    data = pd.DataFrame([{
        "model": model, "upto_pct": _num(proj.get("upto")), "target_pct": _num(proj.get("target")),
        "selected": proj.get("selected") or "-", "projected": _num(proj.get("projected")),
        "lo": _num(lo), "hi": _num(hi), "level": _num(proj.get("level")),
        "actual": _num(proj.get("actual")), "error": _num(proj.get("error")),
        "warning": proj.get("warning") or "",
    }])  # fmt: skip
    display = pd.DataFrame({
        "fit on ≤ (%)": data["upto_pct"].map(lambda v: fmt_num(v, 0)),
        "target (%)": data["target_pct"].map(lambda v: fmt_num(v, 0)),
        "selected by backtest": data["selected"],
        "projected (mAP pts)": data["projected"].map(fmt_num),
        f"{_num(proj.get('level')):.0%} interval": [_interval_text(proj.get("interval"))],
        "measured (mAP pts)": data["actual"].map(fmt_num),
        "error (mAP pts)": data["error"].map(fmt_num),
        "trust": data["warning"].replace("", "no warning"),
    })  # fmt: skip
    return Table(f"projection_{model}", f"Projection: {model}", data, display)


def projections_table(fits_by_model: list[tuple[str, dict[str, Any]]]) -> Table:
    """The projections of several fits side by side, one row per fit (model): the method the
    backtest selected, its projection and interval at the target, and the measured value there
    when the curve has it.

    Args:
        fits_by_model: ``(model, fits.json object)`` pairs, in report order.
    """
    records = []
    for model, fits in fits_by_model:
        proj = fits.get("projection") or {}
        lo, hi = (proj.get("interval") or [None, None])[:2]
        records.append({
            "model": model, "upto_pct": _num(proj.get("upto")),
            "target_pct": _num(proj.get("target")), "method": proj.get("selected") or "-",
            "projected": _num(proj.get("projected")), "lo": _num(lo), "hi": _num(hi),
            "level": _num(proj.get("level")), "actual": _num(proj.get("actual")),
            "actual_std": _num(proj.get("actual_std")), "trusted": not proj.get("warning"),
        })  # fmt: skip
    data = pd.DataFrame.from_records(records, columns=[
        "model", "upto_pct", "target_pct", "method", "projected", "lo", "hi", "level", "actual",
        "actual_std", "trusted"])  # fmt: skip
    display = pd.DataFrame({
        "model": data["model"],
        "fit on ≤ (%)": data["upto_pct"].map(lambda v: fmt_num(v, 0)),
        "target (%)": data["target_pct"].map(lambda v: fmt_num(v, 0)),
        "method": data["method"],
        "projected (mAP pts)": data["projected"].map(fmt_num),
        "interval": [_interval_text([lo, hi]) if not math.isnan(lo) else "-"
                     for lo, hi in zip(data["lo"], data["hi"], strict=True)],
        "level": data["level"].map(lambda v: "-" if math.isnan(v) else f"{v:.0%}"),
        "measured (mAP pts)": [fmt_mean_std(m, s) for m, s in
                               zip(data["actual"], data["actual_std"], strict=True)],
        "trust": data["trusted"].map({True: "no warning", False: "warning (see below)"}),
    })  # fmt: skip
    return Table("projections", "Projections per model, side by side", data, display)


def backtest_table(fits: dict[str, Any], model: str) -> Table:
    """Every family, baseline and the ensemble: backtest error and interval coverage on the fit
    range, and the projection to the target with both intervals. Sorted by backtest error.

    Args:
        fits: the ``fits.json`` object (``projection`` section).
        model: model name (table name and caption).
    """
    proj = fits.get("projection") or {}
    records = []
    for name, entry in (proj.get("methods") or {}).items():
        bt = entry.get("backtest") or {}
        records.append({
            "method": name, "kind": entry.get("kind", "family"),
            "selected": name == proj.get("selected"), "status": entry.get("status", "ok"),
            "mae": _num(bt.get("mae")), "max_abs_error": _num(bt.get("max_abs_error")),
            "n_forecasts": int(bt.get("n_forecasts") or 0), "n_pairs": int(bt.get("n_pairs") or 0),
            "coverage": _num(bt.get("coverage")),
            "coverage_bootstrap": _num(bt.get("coverage_bootstrap")),
            "projected": _num(entry.get("projected")),
            "interval": entry.get("interval"),
            "interval_bootstrap": entry.get("interval_bootstrap"),
        })  # fmt: skip
    cols = ["method", "kind", "selected", "status", "mae", "max_abs_error", "n_forecasts",
            "n_pairs", "coverage", "coverage_bootstrap", "projected", "interval",
            "interval_bootstrap"]  # fmt: skip
    data = pd.DataFrame.from_records(records, columns=cols)
    data = data.sort_values("mae", kind="stable", na_position="last").reset_index(drop=True)
    display = pd.DataFrame({
        "method": [f"{m} ✓" if s else m for m, s in zip(data["method"], data["selected"],
                                                        strict=True)],
        "kind": data["kind"],
        "backtest mean |error| (mAP pts)": [
            "not backtested" if n == 0 and st == "ok" else fmt_num(v)
            for v, n, st in zip(data["mae"], data["n_forecasts"], data["status"], strict=True)
        ],
        "max |error|": data["max_abs_error"].map(fmt_num),
        "coverage": data["coverage"].map(lambda v: "-" if math.isnan(v) else f"{v:.0%}"),
        "coverage, slices only": data["coverage_bootstrap"].map(
            lambda v: "-" if math.isnan(v) else f"{v:.0%}"),
        "projected (mAP pts)": data["projected"].map(fmt_num),
        "interval": data["interval"].map(_interval_text),
        "interval, slices only": data["interval_bootstrap"].map(_interval_text),
    })  # fmt: skip
    upto, target = _num(proj.get("upto")), _num(proj.get("target"))
    title = (f"Backtest on ≤ {upto:g} % and projection to {target:g} %: {model} "
             "(✓ = selected by backtest error)")  # fmt: skip
    return Table(f"backtest_{model}", title, data, display)
