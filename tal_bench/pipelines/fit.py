"""``talbench fit``: project a learning curve to a larger fraction, backtested and calibrated.

Reads a curve (a data-scaling run directory, or a CSV in the long or summary format of
:mod:`tal_bench.fits.io`), fits every family and the naive baselines on the fit range, backtests
them there (:mod:`tal_bench.fits.backtest`), selects the method with the lowest forecast error,
projects it to the target with its intervals, checks whether the projection can be trusted
(:mod:`tal_bench.fits.diagnose`), and writes ``fits.json``, ``fits.png`` and ``curve.csv`` (the
curve in the long format, or the summary format when slices are unknown). The output shape is
documented in ``results/README.md`` ("fits.json").
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tal_bench.errors import TalBenchError
from tal_bench.fits import (
    CURVES,
    Anchors,
    fit_curve,
    fit_range,
    project,
    trust_issues,
    trust_warning,
)
from tal_bench.fits.anchors import MIN_FIT_FRACTIONS
from tal_bench.fits.io import (
    anchors_from_table,
    curve_csv_text,
    long_table,
    read_curve_csv,
    summary_table,
)
from tal_bench.records import atomic_write_text, load_meta, load_rows

FITS_SCHEMA = "talbench-fits/2"
DEFAULT_FAMILIES = tuple(CURVES)
DEFAULT_N_BOOT = 200
DEFAULT_N_BOOT_BACKTEST = 100


def parse_families(text: str | Sequence[str] | None) -> list[str]:
    """``"5pl,exp"`` (or a list) -> validated family names; None -> all families."""
    if text is None:
        return list(DEFAULT_FAMILIES)
    names = text.split(",") if isinstance(text, str) else list(text)
    names = [n.strip().lower() for n in names if n.strip()]
    unknown = [n for n in names if n not in CURVES]
    if unknown or not names:
        raise TalBenchError(
            f"unknown curve families {', '.join(unknown) or '(none given)'}; "
            f"choose from {','.join(CURVES)}"
        )
    return list(dict.fromkeys(names))


# --------------------------------------------------------------------------- inputs


def load_curve(
    path: str | Path, model: str | None = None
) -> tuple[Anchors, dict[str, Any], pd.DataFrame]:
    """Read a data-scaling run directory or a curve CSV.

    Returns:
        (anchors, ``input`` block of ``fits.json``, the curve as a table to export).

    Raises:
        TalBenchError: missing file, wrong columns, NaN or out-of-range values, too few fractions.
    """
    path = Path(path)
    if path.is_dir() or path.name in ("meta.json", "rows.jsonl"):
        table, info = _from_run(path, model)
        kind = "long"
    elif path.is_file():
        table, kind = read_curve_csv(path, model)
        model_name = str(table["model"].iloc[0]) if "model" in table.columns else path.stem
        table = table.assign(model=model_name)
        info = {"kind": "csv", "model": model_name, "n_rows": int(len(table)), "n_failed": 0}
    else:
        raise TalBenchError(f"{path} does not exist; pass a data-scaling run directory or a CSV")
    anchors = anchors_from_table(table, kind)
    if anchors.fractions.size < MIN_FIT_FRACTIONS:
        raise TalBenchError(
            f"{path} has {anchors.fractions.size} fraction(s); a learning curve needs at least "
            f"{MIN_FIT_FRACTIONS} to fit and check a projection"
        )
    if kind == "long":
        export = long_table(info["model"], table["fraction_pct"], table["map_pct"],
                            _column(table, "slice"), _column(table, "seed"))  # fmt: skip
    else:
        export = summary_table(info["model"], anchors)
    info.update(path=str(path), format=kind, n_used=int(len(table)),
                n_fractions=int(anchors.fractions.size))  # fmt: skip
    return anchors, info, export


def _from_run(path: Path, model: str | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    meta = load_meta(path)
    df = load_rows(path)
    if "kind" in df.columns and (df["kind"] == "cell").any():
        df = df[df["kind"] == "cell"]
    if model is not None and "model" in df.columns:
        if model not in set(df["model"]):
            raise TalBenchError(
                f"{path} has no rows of model {model!r}; its models: {', '.join(run_models(path))}"
            )
        df = df[df["model"] == model]
    elif "model" in df.columns and df["model"].nunique() > 1:
        shown = ", ".join(run_models(path))
        raise TalBenchError(f"{path} holds several models ({shown}); pass --model to fit one")
    missing = [c for c in ("fraction_pct", "map_avg_pct") if c not in df.columns]
    if missing:
        raise TalBenchError(
            f"{path} ({meta.get('command')!r} run) has no {' / '.join(missing)} rows; "
            "pass a data-scaling run directory"
        )
    df = df[df["fraction_pct"].notna()]
    status = df["status"] if "status" in df.columns else pd.Series("ok", index=df.index)
    key = _cell_key(df)
    ok = df[status == "ok"]
    ok = ok.loc[~key[status == "ok"].duplicated(keep="first")]  # first ok row per cell
    n_failed = len(set(key[status != "ok"]) - set(key[status == "ok"]))
    y = pd.to_numeric(ok["map_avg_pct"], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(y)):
        bad = ok.iloc[int(np.argmax(~np.isfinite(y)))]
        raise TalBenchError(
            f"{path}: the ok cell at {bad['fraction_pct']:g} % (slice {bad.get('slice')}) has no "
            "mAP (NaN); rerun the grid to redo it"
        )
    name = model or str((meta.get("config") or {}).get("model") or path.name)
    table = pd.DataFrame({"fraction_pct": ok["fraction_pct"].to_numpy(dtype=float), "map_pct": y,
                          "slice": _column(ok, "slice"), "seed": _column(ok, "seed")})  # fmt: skip
    info = {"kind": "run", "model": name, "command": meta.get("command"),
            "n_rows": int(len(df)), "n_failed": n_failed}  # fmt: skip
    return table, info


def run_models(path: str | Path) -> list[str]:
    """The models of a run directory's grid cells, in grid order (one for a one-model grid)."""
    path = Path(path)
    if not (path.is_dir() or path.name in ("meta.json", "rows.jsonl")):
        return []
    config = load_meta(path).get("config") or {}
    if isinstance(config.get("models"), list):
        return [str(m) for m in config["models"]]
    df = load_rows(path)
    if "model" in df.columns:
        return [str(m) for m in dict.fromkeys(df["model"].dropna())]
    return [str(config["model"])] if isinstance(config.get("model"), str) else []


def _column(df: pd.DataFrame, name: str) -> np.ndarray | None:
    return df[name].to_numpy() if name in df.columns else None


def _cell_key(df: pd.DataFrame) -> pd.Series:
    if "run_key" in df.columns:
        return df["run_key"].astype(str)
    if "slice" in df.columns:
        return df["fraction_pct"].astype(str) + "/" + df["slice"].astype(str)
    return pd.Series(np.arange(len(df)).astype(str), index=df.index)


# --------------------------------------------------------------------------- fitting


def fit_anchors(
    anchors: Anchors,
    families: Sequence[str] = DEFAULT_FAMILIES,
    *,
    target_pct: float = 100.0,
    upto_pct: float | None = None,
    first_k: int | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    n_boot_backtest: int = DEFAULT_N_BOOT_BACKTEST,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Fits on all anchors plus the backtested projection (the body of ``fits.json``).

    Args:
        anchors: the whole curve.
        families: families to fit (the baselines and the ensemble are always added).
        target_pct: fraction to project to (percent; may exceed 100).
        upto_pct: fit range ``p <= upto_pct`` (default: all fractions below the target).
        first_k: fit range = first ``k`` fractions.
        n_boot: bootstrap refits for the projections' intervals.
        n_boot_backtest: bootstrap refits per backtest cut (for the coverages).
        level: interval coverage.
        seed: bootstrap seed.
    """
    if not (target_pct > 0 and math.isfinite(target_pct)):
        raise TalBenchError(f"--target must be a positive percent, got {target_pct}")
    if n_boot < 0 or n_boot_backtest < 0:
        raise TalBenchError(f"--n-boot must be >= 0, got {n_boot} / {n_boot_backtest}")
    if not 0 < level < 1:
        raise TalBenchError(f"the interval level must be in (0, 1), got {level}")
    part = fit_range(anchors, target_pct, upto_pct, first_k)
    sigma = anchors.sigma()
    fits = {f: fit_curve(anchors.fractions, anchors.means, f, sigma=sigma) for f in families}
    body = project(part, families, target_pct, n_boot=n_boot, n_boot_backtest=n_boot_backtest,
                   level=level, seed=seed)  # fmt: skip
    actual, actual_std = anchors.value_at(target_pct)
    chosen = body["methods"].get(body["selected"] or "", {})
    issues = trust_issues(part)
    return {
        "schema": FITS_SCHEMA,
        "anchors": anchors.to_table(),
        "families": {f: {**fits[f].to_dict(), "formula": CURVES[f].formula} for f in families},
        "projection": {
            "upto": float(part.fractions.max()),
            "first_k": first_k,
            "fractions_used": [float(v) for v in part.fractions],
            "target": float(target_pct),
            "level": level,
            "selected": body["selected"],
            "projected": chosen.get("projected"),
            "interval": chosen.get("interval"),
            "interval_bootstrap": chosen.get("interval_bootstrap"),
            "actual": actual,
            "actual_std": actual_std,
            "error": None
            if actual is None or chosen.get("projected") is None
            else chosen["projected"] - actual,
            "warning": trust_warning(part),
            "issues": issues,
            "methods": body["methods"],
            "backtest": body["backtest"],
        },
    }


def run_fit(
    results: str | Path,
    families: Sequence[str] | str | None = None,
    *,
    out_dir: str | Path | None = None,
    model: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Load a curve, fit, and write ``fits.json``, ``fits.png`` and ``curve.csv``.

    A run of several models (``talbench data-scaling --model a,b``) gets one fit per model,
    each in its own directory ``<out>/fits/<model>/`` (the same three files, the same schema);
    ``model`` picks one of them. Every check (of every model) runs before anything is written:
    bad input writes nothing.

    Args:
        results: data-scaling run directory or curve CSV.
        families: families (``"5pl,exp"`` or a list); default all of ``CURVES``.
        out_dir: where to write; default the run directory, or the CSV's directory.
        model: the model to fit when the run or the CSV holds several (its ``model`` column).
        **options: passed to :func:`fit_anchors` (``target_pct``, ``upto_pct``, ``first_k``,
            ``n_boot``, ``n_boot_backtest``, ``level``, ``seed``).

    Returns:
        The summary written to ``fits.json`` (with ``input`` and ``outputs`` blocks); for several
        models ``{"models": {model: summary}}``.
    """
    fams = parse_families(families)
    path = Path(results)
    out = Path(out_dir) if out_dir is not None else path if path.is_dir() else path.parent
    models = run_models(path) if model is None else [model]
    if len(models) <= 1:
        summary = _fit_one(path, model, fams, options)
        _write_fit(summary, path, out, summary.pop("_curve"))
        return summary
    summaries = {m: _fit_one(path, m, fams, options) for m in models}  # all checks first
    for name, summary in summaries.items():
        _write_fit(summary, path, out / FITS_DIR / name, summary.pop("_curve"))
    return {"schema": FITS_SCHEMA, "models": summaries}


FITS_DIR = "fits"  # per-model fits of a multi-model run: <run>/fits/<model>/fits.json


def _fit_one(path: Path, model: str | None, fams: list[str], options: dict[str, Any]) -> dict:
    anchors, info, curve = load_curve(path, model)
    return {"schema": FITS_SCHEMA, "input": info, **fit_anchors(anchors, fams, **options),
            "_curve": curve}  # fmt: skip


def _write_fit(summary: dict[str, Any], path: Path, out: Path, curve: pd.DataFrame) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TalBenchError(f"cannot create {out} ({exc.strerror}); pass another --out") from None
    csv_path = out / "curve.csv"
    summary["outputs"] = {"fits_json": str(out / "fits.json"), "figure": str(out / "fits.png"),
                          "curve_csv": str(csv_path)}  # fmt: skip
    atomic_write_text(out / "fits.json", json.dumps(summary, indent=2, default=_jsonable) + "\n")
    if not (path.is_file() and csv_path.resolve() == path.resolve()):  # never overwrite the input
        atomic_write_text(csv_path, curve_csv_text(curve))
    _write_figure(summary, out)


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _write_figure(summary: dict[str, Any], out: Path) -> None:
    # Pipelines wire stages together: the figure is the report's (one implementation).
    from tal_bench.plots import figures
    from tal_bench.plots.style import save_figure

    anchors = figures.fits_anchor_table(summary)
    table = figures.fit_plot_table(summary, anchors)
    model = str(summary["input"].get("model") or "")
    plot = figures.plot_fit("fits", model, summary, table, str(summary["input"]["path"]))
    save_figure(plot.figure, out, "fits", ["png"])
