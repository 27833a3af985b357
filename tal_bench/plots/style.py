"""Shared figure style: fixed rcParams, the machine footer and deterministic saving.

Figures are built on ``matplotlib.figure.Figure`` directly (never ``pyplot``), so no global
figure registry grows and only the Agg/SVG canvases are ever touched. All style values live
in :data:`RC`; they are applied with ``matplotlib.rc_context`` while a figure is built, so a
caller's own rcParams never change our output and ours never leak into theirs.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")  # headless and deterministic; must precede any pyplot import elsewhere

from matplotlib.figure import Figure  # noqa: E402

# Fixed style: the same records always give the same pixels (for one matplotlib version).
RC: dict[str, Any] = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.labelsize": 9.0,
    "legend.fontsize": 8.0,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.6,
    "lines.markersize": 4.5,
    "axes.prop_cycle": matplotlib.cycler(
        color=[
            "#1f77b4",
            "#d62728",
            "#2ca02c",
            "#ff7f0e",
            "#9467bd",
            "#8c564b",
            "#e377c2",
            "#17becf",
        ]
    ),
    "svg.hashsalt": "tal-bench",  # stable element ids in SVG output
    "svg.fonttype": "path",  # text as paths: the SVG renders the same without our fonts
    "path.simplify": True,
}

# The bottom strip (fraction of the figure height per footer line) reserved for the footer.
_FOOTER_LINE_FRAC = 0.035
_FOOTER_WRAP_CHARS_PER_INCH = 19  # ~7 pt text


@dataclass
class Plot:
    """A built figure together with exactly the numbers drawn on it.

    Attributes:
        name: file stem (``learning_curves``, ``latency_vs_length`` ...).
        title: one-line title used in the HTML/Markdown report.
        figure: the matplotlib figure (footer included).
        data: the aggregated table that was plotted, one row per drawn point.
    """

    name: str
    title: str
    figure: Figure
    data: pd.DataFrame


@contextmanager
def figure_context() -> Iterator[None]:
    """Apply :data:`RC` while building a figure."""
    with matplotlib.rc_context(RC):
        yield


def new_figure(width_in: float, height_in: float) -> Figure:
    """A constrained-layout figure that is not registered with pyplot.

    Args:
        width_in: width in inches.
        height_in: height in inches.

    Returns:
        The figure; call within :func:`figure_context` so that :data:`RC` applies.
    """
    return Figure(figsize=(width_in, height_in), layout="constrained")


def machine_label(meta: dict[str, Any], threads: int | None = None) -> str:
    """One line naming where a run was measured, for a figure footer.

    Args:
        meta: a run's ``meta.json`` (uses ``machine`` and ``commit``; missing keys are skipped).
        threads: torch threads used by the measurement, when known.

    Returns:
        e.g. ``"CPU: AMD EPYC 7763 (16 logical) | GPU: none | threads: 1 | commit 1a2b3c4d"``;
        threads show as ``not recorded`` when unknown.
    """
    machine = meta.get("machine") or {}
    cpu = machine.get("cpu_model") or "unknown CPU"
    cores = machine.get("cpu_logical")
    cpu_text = f"{cpu} ({cores} logical)" if cores else cpu
    gpus = machine.get("gpus") or []
    gpu_names = sorted({str(g.get("name", "?")) for g in gpus if isinstance(g, dict)})
    gpu_text = ", ".join(f"{n} x{_count(gpus, n)}" for n in gpu_names) or "none"
    parts = [f"CPU: {cpu_text}", f"GPU: {gpu_text}", f"threads: {threads or 'not recorded'}"]
    parts.append(_commit_text(meta.get("commit") or {}))
    return " | ".join(parts)


def _count(gpus: list[Any], name: str) -> int:
    return sum(1 for g in gpus if isinstance(g, dict) and str(g.get("name", "?")) == name)


def _commit_text(commit: dict[str, Any]) -> str:
    sha = commit.get("short") or (commit.get("id") or "")[:8]
    if not sha:
        return "commit unknown"
    return f"commit {sha}{' (dirty)' if commit.get('dirty') else ''}"


def footer_text(labels: Iterable[str], max_lines: int = 3) -> str:
    """Join distinct machine labels (in first-seen order) into a footer of at most ``max_lines``."""
    unique = list(dict.fromkeys(label for label in labels if label))
    if not unique:
        return "machine unknown (no meta.json)"
    if len(unique) > max_lines:
        extra = len(unique) - (max_lines - 1)
        unique = [*unique[: max_lines - 1], f"... and {extra} more machines/commits"]
    return "\n".join(unique)


def add_footer(fig: Figure, footer: str) -> None:
    """Write ``footer`` under the axes, wrapped to the figure width, and reserve room for it."""
    width_in = fig.get_figwidth()
    wrap = max(40, int(width_in * _FOOTER_WRAP_CHARS_PER_INCH))
    lines: list[str] = []
    for line in footer.splitlines():
        lines.extend(textwrap.wrap(line, wrap, subsequent_indent="  ") or [""])
    height_in = fig.get_figheight()
    frac = min(0.3, (len(lines) * 0.12 + 0.06) / height_in)
    fig.get_layout_engine().set(rect=(0.0, frac, 1.0, 1.0 - frac))
    fig.text(0.01, 0.01, "\n".join(lines), ha="left", va="bottom", fontsize=6.5, color="0.35")


def measured_ticks(ax: Any, values: Any, max_ticks: int = 12) -> None:
    """On a log x axis, put plain-number ticks at the measured x values (when few enough)."""
    ticks = np.unique(np.asarray(values, dtype=float))
    ticks = ticks[np.isfinite(ticks) & (ticks > 0)]
    if 0 < ticks.size <= max_ticks:
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_formatter("")
    else:
        ax.xaxis.set_major_formatter("{x:g}")


def save_figure(fig: Figure, out_dir: Path, stem: str, formats: Iterable[str]) -> list[Path]:
    """Save ``fig`` as ``out_dir/stem.<fmt>`` for each format, without timestamps.

    Args:
        fig: the figure.
        out_dir: target directory (created).
        stem: file name without suffix.
        formats: ``"png"`` and/or ``"svg"``.

    Returns:
        The written paths, in the order of ``formats``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with figure_context():
        for fmt in formats:
            path = out_dir / f"{stem}.{fmt}"
            # No creation date in SVG; PNG carries only the matplotlib version ("Software").
            metadata = {"Date": None} if fmt == "svg" else {}
            fig.savefig(path, format=fmt, metadata=metadata)
            paths.append(path)
    return paths
