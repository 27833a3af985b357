"""Learning curves as CSV, in and out, so that a curve from any source can be fitted.

Two formats, one row per line, mAP in points 0-100 and fractions in percent of the training set:

* **long** (what ``talbench fit`` exports from a run, close to LCDB's database layout of one
  row per anchor, seed and learner): ``model,fraction_pct,slice,seed,map_pct``; ``slice``,
  ``seed`` and ``model`` are optional (rows without ``slice`` are taken as separate slices).
  ``fraction`` and ``mAP``/``map_avg_pct`` are accepted for ``fraction_pct`` and ``map_pct``.
* **summary** (how published curves come): ``model,fraction_pct,map_mean_pct,map_std_pct,
  n_slices``; ``model``, ``map_std_pct`` and ``n_slices`` are optional (without them the spread
  over slices is unknown).

Bad input raises :class:`~tal_bench.errors.TalBenchError` naming the file, line and fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tal_bench.errors import TalBenchError
from tal_bench.fits.anchors import Anchors

LONG_COLUMNS = ["model", "fraction_pct", "slice", "seed", "map_pct"]
SUMMARY_COLUMNS = ["model", "fraction_pct", "map_mean_pct", "map_std_pct", "n_slices"]
_ALIASES = {  # accepted header (lower case) -> canonical column
    "fraction": "fraction_pct", "fraction_pct": "fraction_pct", "map": "map_pct",
    "map_pct": "map_pct", "map_avg_pct": "map_pct", "map_mean_pct": "map_mean_pct",
    "map_std_pct": "map_std_pct", "n_slices": "n_slices", "slice": "slice", "seed": "seed",
    "model": "model",
}  # fmt: skip
_OPTIONAL = ("slice", "seed", "map_std_pct")  # may be empty (unknown)
_HELP = (
    "columns fraction_pct,map_pct[,slice,seed,model] (one row per run) or "
    "fraction_pct,map_mean_pct[,map_std_pct,n_slices,model] (one row per fraction)"
)


def read_curve_csv(path: Path, model: str | None = None) -> tuple[pd.DataFrame, str]:
    """Read a curve CSV in either format.

    Args:
        path: the CSV file.
        model: which model's rows to keep when the file has a ``model`` column with several.

    Returns:
        (table with canonical column names, ``"long"`` or ``"summary"``); numbers are checked.
    """
    try:
        raw = pd.read_csv(path, comment="#", dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise TalBenchError(f"cannot read {path} as CSV ({exc}); it needs {_HELP}") from None
    cols = {c.strip().lower(): c for c in raw.columns}
    df = raw.rename(columns={orig: _ALIASES[k] for k, orig in cols.items() if k in _ALIASES})
    kind = "summary" if "map_mean_pct" in df.columns else "long"
    needed = ["fraction_pct", "map_mean_pct" if kind == "summary" else "map_pct"]
    if any(c not in df.columns for c in needed):
        raise TalBenchError(
            f"{path} needs {_HELP}; found {', '.join(map(str, raw.columns)) or 'no columns'}"
        )
    df = _pick_model(df, path, model)
    numeric = [c for c in ("fraction_pct", "map_pct", "map_mean_pct", "map_std_pct", "n_slices",
                           "slice", "seed") if c in df.columns]  # fmt: skip
    for col in numeric:
        df[col] = _numbers(df[col], path, col, optional=col in _OPTIONAL)
    _check_ranges(df, path, kind)
    return df.reset_index(drop=True), kind


def _pick_model(df: pd.DataFrame, path: Path, model: str | None) -> pd.DataFrame:
    models = list(dict.fromkeys(df["model"])) if "model" in df.columns else []
    if model is not None:
        if model not in models:
            raise TalBenchError(
                f"{path} has no rows of model {model!r}; models: {', '.join(models) or 'none'}"
            )
        return df[df["model"] == model]
    if len(models) > 1:
        raise TalBenchError(f"{path} holds {len(models)} models ({', '.join(models)}); "
                            "pick one with --model")  # fmt: skip
    return df


def _numbers(col: pd.Series, path: Path, name: str, optional: bool) -> pd.Series:
    text = col.str.strip()
    values = pd.to_numeric(text, errors="coerce")
    bad = ~np.isfinite(values.to_numpy(dtype=float))
    if optional:
        bad &= text.to_numpy() != ""
    if bad.any():
        i = int(np.argmax(bad))
        line = int(col.index[i]) + 2  # 1-based, after the header
        raise TalBenchError(
            f"{path}:{line}: {name} is {col.iloc[i]!r}, not a number; every row needs numbers "
            "(drop the rows of failed runs)"
        )
    return values


def _check_ranges(df: pd.DataFrame, path: Path, kind: str) -> None:
    x = df["fraction_pct"].to_numpy(dtype=float)
    y = df["map_mean_pct" if kind == "summary" else "map_pct"].to_numpy(dtype=float)
    if x.size == 0:
        raise TalBenchError(f"{path} has no rows; it needs {_HELP}")
    if np.any(x <= 0) or np.any(x > 100):
        raise TalBenchError(f"{path}: fractions must be percent in (0, 100]")
    if np.all(x <= 1):
        raise TalBenchError(f"{path}: every fraction is <= 1; they look like fractions of 1, give "
                            "percent (multiply by 100)")  # fmt: skip
    if np.any(y < 0) or np.any(y > 100):
        raise TalBenchError(f"{path}: mAP must be points in [0, 100]")
    if np.all(y <= 1) and np.any(y > 0):
        raise TalBenchError(f"{path}: every mAP is <= 1; give mAP in points 0-100, not as a "
                            "fraction (multiply by 100)")  # fmt: skip
    if kind == "summary":
        if "map_std_pct" in df.columns and np.any(df["map_std_pct"] < 0):
            raise TalBenchError(f"{path}: map_std_pct must be >= 0")
        if "n_slices" in df.columns and np.any(df["n_slices"] < 1):
            raise TalBenchError(f"{path}: n_slices must be >= 1")
        if x.size != np.unique(x).size:
            raise TalBenchError(f"{path}: a summary CSV has one row per fraction; a fraction "
                                "repeats")  # fmt: skip


def anchors_from_table(df: pd.DataFrame, kind: str) -> Anchors:
    """Anchors of a table from :func:`read_curve_csv` (or :func:`long_table`)."""
    if kind == "summary":
        n = len(df)
        std = df["map_std_pct"] if "map_std_pct" in df.columns else np.full(n, np.nan)
        count = df["n_slices"] if "n_slices" in df.columns else np.ones(n, dtype=int)
        if "map_std_pct" not in df.columns:
            count = np.ones(n, dtype=int)  # no spread known: treat each mean as one slice
        return Anchors.from_summary(df["fraction_pct"], df["map_mean_pct"], std, count)
    return Anchors.from_pairs(df["fraction_pct"], df["map_pct"])


def long_table(
    model: str, fraction_pct: Any, map_pct: Any, slices: Any = None, seeds: Any = None
) -> pd.DataFrame:
    """A curve in the long format (one row per run), sorted by fraction and slice."""
    n = len(fraction_pct)
    df = pd.DataFrame({
        "model": [model] * n,
        "fraction_pct": np.asarray(fraction_pct, dtype=float),
        "slice": pd.array(slices if slices is not None else [pd.NA] * n, dtype="Int64"),
        "seed": pd.array(seeds if seeds is not None else [pd.NA] * n, dtype="Int64"),
        "map_pct": np.asarray(map_pct, dtype=float),
    })  # fmt: skip
    return df.sort_values(["fraction_pct", "slice"], kind="stable").reset_index(drop=True)


def summary_table(model: str, anchors: Anchors) -> pd.DataFrame:
    """A curve in the summary format (one row per fraction)."""
    return pd.DataFrame({
        "model": [model] * anchors.fractions.size,
        "fraction_pct": anchors.fractions,
        "map_mean_pct": anchors.means,
        "map_std_pct": anchors.stds,
        "n_slices": anchors.counts,
    })  # fmt: skip


def curve_csv_text(table: pd.DataFrame) -> str:
    """CSV text of a :func:`long_table` or :func:`summary_table` (empty cells for unknowns;
    floats written in their shortest exact form, so a curve reads back bit for bit)."""
    return table.to_csv(index=False, na_rep="")
