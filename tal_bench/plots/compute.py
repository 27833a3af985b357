"""Compute-efficiency figures: latency, MACs and memory against input length, every model on one
log-log plot (the study's Fig. 5), one model's inference time and GMACs on twin axes (Fig. 4,
TadTR in the study), the per-model summary with the model build time, and CPU/GPU utilisation
timelines with the training and evaluation phases shaded (Fig. 6), from ``talbench profile``
records.

As in :mod:`tal_bench.plots.figures`, each ``*_table`` function returns the exact numbers drawn
and each ``plot_*`` function returns a :class:`~tal_bench.plots.style.Plot` carrying them.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from tal_bench.plots.figures import ok_rows
from tal_bench.plots.style import Plot, add_footer, figure_context, measured_ticks, new_figure
from tal_bench.plots.tables import Table, fmt_num

_MIB_PER_GIB = 1024.0


def _series(df: pd.DataFrame, col: str) -> pd.Series:
    """Column ``col`` as floats, NaN when the column is missing."""
    if col not in df.columns:
        return pd.Series(np.nan, index=df.index, dtype=float)
    return pd.to_numeric(df[col], errors="coerce").astype(float)


def inference_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Profile rows that measure inference: ok, with a ``length``, not per-epoch training rows."""
    out = ok_rows(rows)
    if "length" not in out.columns:
        return out.iloc[0:0]
    out = out[out["length"].notna()]
    if "mode" in out.columns:
        out = out[out["mode"].fillna("infer") != "train"]
    if "kind" in out.columns:
        out = out[~out["kind"].isin(["epoch", "train"])]
    return out


def model_labels(rows: pd.DataFrame) -> pd.Series:
    """Each row's model name, with its preset and item mode added where the rows hold several
    of them for that model (``tadtr paper full`` beside ``tadtr cpu window``), so that runs of
    different settings are never averaged together."""
    model = rows["model"].astype(str)
    label = model.copy()
    for col in ("preset", "data_mode"):
        if col in rows.columns:
            value = rows[col].fillna("").astype(str)
            varies = value.groupby(model).transform("nunique") > 1
            label = label.where(~varies, label + " " + value)
    return label


def compute_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per model, device and input length: the mean of each compute measure over repeated rows.
    ``model`` is :func:`model_labels`' label (the name, plus preset and item mode where the
    rows mix them).

    ``memory_mib`` is the GPU peak allocation when the row has one, otherwise the process peak
    RSS; ``memory_kind`` says which.

    Args:
        rows: ``talbench profile`` rows (``model``, ``length`` and the optional measures).

    Returns:
        Columns ``model, device, length, latency_ms_median, latency_ms_iqr, macs, gmacs, params,
        build_s, memory_mib, memory_kind, data_mode, n_rows``, sorted by model, device,
        length (``data_mode``: how the input was cut: window, full or resize).
    """
    cols = [
        "model", "device", "length", "latency_ms_median", "latency_ms_iqr", "macs", "gmacs",
        "params", "build_s", "memory_mib", "memory_kind", "data_mode", "n_rows",
    ]  # fmt: skip
    inf = inference_rows(rows)
    if inf.empty:
        return pd.DataFrame(columns=cols)
    gpu_mem = _series(inf, "gpu_peak_allocated_mib")
    frame = pd.DataFrame(
        {
            "model": model_labels(inf),
            "device": inf["device"].fillna("cpu").astype(str) if "device" in inf else "cpu",
            "length": _series(inf, "length").astype(int),
            "latency_ms_median": _series(inf, "latency_ms_median"),
            "latency_ms_iqr": _series(inf, "latency_ms_iqr"),
            "macs": _series(inf, "macs"),
            "params": _series(inf, "params"),
            "build_s": _series(inf, "build_s"),
            "memory_mib": gpu_mem.where(gpu_mem.notna(), _series(inf, "peak_rss_mib")),
            "memory_kind": np.where(gpu_mem.notna(), "gpu_peak_allocated", "peak_rss"),
            "data_mode": inf["data_mode"].astype(str) if "data_mode" in inf else "",
        }
    )
    keys = ["model", "device", "length"]
    agg = frame.groupby(keys, sort=True).agg(
        latency_ms_median=("latency_ms_median", "mean"),
        latency_ms_iqr=("latency_ms_iqr", "mean"),
        macs=("macs", "mean"),
        params=("params", "mean"),
        build_s=("build_s", "mean"),
        memory_mib=("memory_mib", "mean"),
        memory_kind=("memory_kind", "first"),
        data_mode=("data_mode", "first"),
        n_rows=("length", "size"),
    )
    agg = agg.reset_index()
    agg["gmacs"] = agg["macs"] / 1e9
    return agg[cols]


def _log_y(ax: Any, values: pd.Series) -> None:
    """Logarithmic y axis with plain tick labels; within a decade only minor ticks get labels,
    so they are labelled too."""
    values = values[values > 0]
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter("{x:g}")
    if len(values) and values.max() < 10 * values.min():
        ax.yaxis.set_minor_formatter("{x:g}")


_MARKERS = "osD^vP<>"
_DASHES = ("-", "--", "-.", ":")


def _loglog_panel(ax: Any, table: pd.DataFrame, col: str, err_col: str | None) -> bool:
    """Draw ``col`` against length for each (model, device); returns whether anything was drawn."""
    drawn = False
    many_devices = table["device"].nunique() > 1
    for i, ((model, device), grp) in enumerate(table.groupby(["model", "device"], sort=True)):
        grp = grp[grp[col].notna() & (grp[col] > 0)]
        if grp.empty:
            continue
        label = f"{model} ({device})" if many_devices else str(model)
        yerr = grp[err_col].to_numpy(float) / 2 if err_col else None  # +/- half the IQR
        ax.errorbar(
            grp["length"],
            grp[col],
            yerr=yerr,
            # Markers and dashes differ too: models of near-equal cost (ActionFormer and TriDet
            # at the cpu presets) would otherwise hide one another.
            fmt=_MARKERS[i % len(_MARKERS)],
            linestyle=_DASHES[i % len(_DASHES)],
            markersize=6 if i % 2 else 5,
            capsize=2.5,
            color=f"C{i % 8}",
            label=label,
        )
        drawn = True
    if drawn:
        ax.set_xscale("log")
        measured_ticks(ax, table["length"])
        _log_y(ax, table[col])
        ax.legend(loc="upper left")
    else:
        ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("input length (feature steps)")
    return drawn


def plot_latency(table: pd.DataFrame, footer: str) -> Plot:
    """Median latency against input length (log-log), one colour per model, error bars +/- half
    the IQR."""
    with figure_context():
        fig = new_figure(6.4, 4.2)
        ax = fig.add_subplot()
        _loglog_panel(ax, table, "latency_ms_median", "latency_ms_iqr")
        ax.set_ylabel("latency per forward pass (ms, median)")
        ax.set_title("Inference latency against input length")
        add_footer(fig, footer)
    data = table[["model", "device", "length", "latency_ms_median", "latency_ms_iqr"]]
    return Plot("latency_vs_length", "Latency against input length", fig, data)


def plot_macs(table: pd.DataFrame, footer: str) -> Plot:
    """Multiply-accumulates (GMACs) against input length (log-log), one colour per model: the
    study's Fig. 5."""
    with figure_context():
        fig = new_figure(6.4, 4.2)
        ax = fig.add_subplot()
        _loglog_panel(ax, table, "gmacs", None)
        ax.set_ylabel("compute per forward pass (GMACs)")
        ax.set_title("Compute against input length (the study's Fig. 5)")
        add_footer(fig, footer)
    return Plot(
        "macs_vs_length",
        "MACs against input length",
        fig,
        table[["model", "device", "length", "macs", "gmacs"]],
    )


def time_macs_table(table: pd.DataFrame, model: str, device: str) -> pd.DataFrame:
    """One model's median latency and GMACs by input length (the two series of Fig. 4).

    Args:
        table: :func:`compute_table` output.
        model, device: which rows.

    Returns:
        Columns ``length, latency_ms_median, gmacs`` in length order.
    """
    sel = table[(table["model"] == model) & (table["device"] == device)]
    cols = ["length", "latency_ms_median", "gmacs"]
    return sel[cols].sort_values("length").reset_index(drop=True)


def plot_time_and_macs(table: pd.DataFrame, model: str, device: str, footer: str) -> Plot:
    """Inference time (left axis) and GMACs (right axis) against input length for one model,
    both logarithmic: the study's Fig. 4 (TadTR's, red GMACs and blue time as there).

    Args:
        table: :func:`compute_table` output.
        model, device: the model drawn and the device it ran on.
        footer: machine footer text.
    """
    data = time_macs_table(table, model, device)
    with figure_context():
        fig = new_figure(6.4, 4.2)
        ax = fig.add_subplot()
        twin = ax.twinx()
        time_ok = data[data["latency_ms_median"] > 0]
        macs_ok = data[data["gmacs"] > 0]
        ax.plot(time_ok["length"], time_ok["latency_ms_median"], "o-", color="tab:blue",
                label="inference time (ms, median)")  # fmt: skip
        twin.plot(macs_ok["length"], macs_ok["gmacs"], "s--", color="tab:red", label="GMACs")
        for axis, values in ((ax, time_ok["latency_ms_median"]), (twin, macs_ok["gmacs"])):
            if len(values):
                _log_y(axis, values)
        ax.set_xscale("log")
        measured_ticks(ax, data["length"])
        twin.grid(False)
        ax.set_xlabel("input length (feature steps)")
        ax.set_ylabel("inference time (ms, median)", color="tab:blue")
        twin.set_ylabel("compute (GMACs)", color="tab:red")
        handles = [*ax.get_legend_handles_labels()[0], *twin.get_legend_handles_labels()[0]]
        if handles:
            ax.legend(handles=handles, loc="upper left")
        mode = table[(table["model"] == model) & (table["device"] == device)]["data_mode"]
        how = {"full": "one pass", "window": "windows", "resize": "resized"}.get(
            str(mode.iloc[0]) if len(mode) else "", "?"
        )
        ax.set_title(f"{model} ({device}, {how}): inference time and GMACs (the study's Fig. 4)")
        add_footer(fig, footer)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"time_macs_{model}_{device}")
    return Plot(name, f"{model}: inference time and GMACs against input length", fig, data)


def model_summary_table(table: pd.DataFrame) -> Table:
    """Per model and device: parameters, build time, and GMACs and median latency at the
    longest input profiled (and at T = 2304, the ActionFormer family's training length, when
    profiled).

    Args:
        table: :func:`compute_table` output.
    """
    records = []
    for (model, device), grp in table.groupby(["model", "device"], sort=True):
        grp = grp.sort_values("length")
        last = grp.iloc[-1]
        at_2304 = grp[grp["length"] == 2304]["gmacs"]
        records.append({
            "model": model, "device": device, "params": grp["params"].mean(),
            "build_s": grp["build_s"].mean(), "gmacs_at_2304": at_2304.mean(),
            "max_length": int(last["length"]), "gmacs_at_max": last["gmacs"],
            "latency_ms_at_max": last["latency_ms_median"],
        })  # fmt: skip
    cols = ["model", "device", "params", "build_s", "gmacs_at_2304", "max_length",
            "gmacs_at_max", "latency_ms_at_max"]  # fmt: skip
    data = pd.DataFrame.from_records(records, columns=cols)
    display = pd.DataFrame(
        {
            "model": data["model"],
            "device": data["device"],
            "params (M)": (data["params"] / 1e6).map(fmt_num),
            "build time (s)": data["build_s"].map(lambda v: fmt_num(v, 3)),
            "GMACs at L = 2304": data["gmacs_at_2304"].map(lambda v: fmt_num(v, 3)),
            "longest L (steps)": data["max_length"].map(lambda v: fmt_num(v, 0)),
            "GMACs at longest L": data["gmacs_at_max"].map(lambda v: fmt_num(v, 3)),
            "latency at longest L (ms, median)": data["latency_ms_at_max"].map(fmt_num),
        }
    )
    title = "Per model: size, build time (constructor + init + move to device), longest input"
    return Table("model_compute", title, data, display)


def plot_memory(table: pd.DataFrame, footer: str) -> Plot:
    """Peak memory (GPU allocation, else process RSS) against input length (log-log)."""
    kinds = sorted(set(table["memory_kind"].dropna()))
    what = {"gpu_peak_allocated": "GPU peak allocated", "peak_rss": "process peak RSS"}
    with figure_context():
        fig = new_figure(6.4, 4.2)
        ax = fig.add_subplot()
        _loglog_panel(ax, table, "memory_mib", None)
        ax.set_ylabel(f"peak memory (MiB; {' / '.join(what.get(k, k) for k in kinds) or 'n/a'})")
        ax.set_title("Memory against input length")
        add_footer(fig, footer)
    return Plot(
        "memory_vs_length",
        "Peak memory against input length",
        fig,
        table[["model", "device", "length", "memory_mib", "memory_kind"]],
    )


# Sampler columns (tal_bench.profiling.samplers), with the older spellings as aliases:
# canonical name -> (accepted names, legend label).
_TIMELINE_COLS = {
    "cpu_pct": (("cpu_pct", "cpu_percent"), "system CPU (% of all logical CPUs)"),
    "gpu_util_pct": (("gpu_util_pct", "gpu_util"), "GPU utilisation (%)"),
    "proc_cpu_pct": (("proc_cpu_pct", "proc_cpu_percent"), "process CPU (% of one CPU)"),
    "rss_mib": (("rss_mib",), "process RSS"),
    "gpu_mem_used_mib": (("gpu_mem_used_mib", "gpu_mem_mib"), "GPU memory used"),
    "gpu_proc_mem_mib": (("gpu_proc_mem_mib",), "GPU memory of this process"),
}
_PANELS = (
    (("cpu_pct", "gpu_util_pct"), "utilisation (%)"),
    (("proc_cpu_pct",), "process CPU (%)"),
    (("rss_mib", "gpu_mem_used_mib", "gpu_proc_mem_mib"), "memory (MiB)"),
)
MAX_PHASE_LABELS = 16


def timeline_table(samples: pd.DataFrame) -> pd.DataFrame:
    """The sampled columns a timeline figure draws, with time relative to the first sample.

    Args:
        samples: sampler output: ``t_s`` (end of each sample's interval), optional ``dt_s``
            (interval length) and ``phase``, and any of the columns of ``_TIMELINE_COLS``
            (under their canonical or alias names).

    Returns:
        ``t_s`` (seconds since the start of the first sample's interval), ``dt_s``, ``phase``
        and the present measures under their canonical names, sorted by time.
    """
    out = pd.DataFrame({"t_s": pd.to_numeric(samples["t_s"], errors="coerce")})
    out["dt_s"] = pd.to_numeric(samples["dt_s"], errors="coerce") if "dt_s" in samples else 0.0
    out["phase"] = samples["phase"].astype(str) if "phase" in samples else ""
    for name, (aliases, _) in _TIMELINE_COLS.items():
        col = next((a for a in aliases if a in samples.columns), None)
        if col is not None and samples[col].notna().any():
            out[name] = pd.to_numeric(samples[col], errors="coerce")
    out = out[out["t_s"].notna()].sort_values("t_s", kind="stable").reset_index(drop=True)
    if not out.empty:
        out["dt_s"] = out["dt_s"].fillna(0.0)
        out["t_s"] = out["t_s"] - float((out["t_s"] - out["dt_s"]).iloc[0])
    return out


def phase_spans(data: pd.DataFrame) -> list[tuple[str, float, float]]:
    """Consecutive samples with the same phase as ``(phase, start_s, end_s)``; a sample covers
    ``[t_s - dt_s, t_s]``. The ``idle`` phase and empty labels are left out."""
    spans: list[tuple[str, float, float]] = []
    for phase, t_s, dt_s in zip(data["phase"], data["t_s"], data["dt_s"], strict=True):
        if spans and spans[-1][0] == phase:
            spans[-1] = (phase, spans[-1][1], float(t_s))
        else:
            spans.append((phase, float(t_s - dt_s), float(t_s)))
    return [s for s in spans if s[0] not in ("idle", "", "nan", "None")]


# Shades of the training and evaluation phases, as the study's Fig. 6 (yellow / red); other
# phases (input lengths, set-up) alternate greys.
_PHASE_COLOURS = (("train", "gold"), ("eval", "tab:red"))


def phase_colour(phase: str, index: int) -> str:
    """Shade of one phase: training yellow, evaluation red, others alternating greys."""
    for prefix, colour in _PHASE_COLOURS:
        if phase.startswith(prefix):
            return colour
    return "0.5" if index % 2 else "0.75"


def _shade_phases(axes: Any, spans: list[tuple[str, float, float]]) -> int:
    """Shade each phase on every panel and label it above the top panel; returns the number of
    label rows used (short neighbouring phases are staggered over up to 3 rows)."""
    total = max((end for _, _, end in spans), default=1.0) - min(
        (s for _, s, _ in spans), default=0
    )
    rows, level = 1, 0
    for i, (phase, start, end) in enumerate(spans):
        for ax in axes:
            ax.axvspan(start, end, color=phase_colour(phase, i), alpha=0.15, lw=0, zorder=0)
        if len(spans) > MAX_PHASE_LABELS:
            continue
        narrow = (end - start) < 0.08 * max(total, 1e-9)
        level = (level + 1) % 3 if narrow else 0
        rows = max(rows, level + 1)
        axes[0].annotate(phase, ((start + end) / 2, 1.0), xycoords=axes[0].get_xaxis_transform(),
                         xytext=(0, 3 + 9 * level), textcoords="offset points", ha="center",
                         va="bottom", fontsize=6)  # fmt: skip
    return rows


def plot_timeline(samples: pd.DataFrame, name: str, label: str, footer: str) -> Plot:
    """Utilisation (%), process CPU and memory (MiB) against time for one profiled run, with
    the sampler's phases (input lengths, epochs) shaded.

    Args:
        samples: the sampler's timeline rows (see :func:`timeline_table`).
        name: file stem for the figure.
        label: what was profiled (model, command), used in the title.
        footer: machine footer text.
    """
    data = timeline_table(samples)
    with figure_context():
        fig = new_figure(9.0, 6.0)
        axes = fig.subplots(3, 1, sharex=True, height_ratios=(3, 2, 2))
        for ax, (cols, ylabel) in zip(axes, _PANELS, strict=True):
            for col in cols:
                if col in data.columns:
                    ax.plot(data["t_s"], data[col], lw=1.1, label=_TIMELINE_COLS[col][1])
            ax.set_ylabel(ylabel)
            ax.set_ylim(bottom=0)
            if ax.get_legend_handles_labels()[0]:  # outside the axes: never hides data
                ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
            else:
                ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
        spans = phase_spans(data)
        label_rows = _shade_phases(axes, spans) if spans else 0
        axes[0].set_title(f"Utilisation timeline: {label}", pad=6 + 10 * label_rows)
        axes[-1].set_xlabel("time since the first sample (s)")
        add_footer(fig, footer)
    return Plot(name, f"Utilisation timeline: {label}", fig, data)
