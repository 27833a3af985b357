"""``talbench fit``: learning-curve fits and extrapolation from a data-scaling run or a CSV.

Reads (fraction %, slice, mAP points) results, fits every requested family on all anchors,
picks the family that extrapolates best by held-out error, projects mAP at the target fraction
from the first anchors with a bootstrap interval, and writes ``fits.json`` + ``fits.png``.
The output shape is documented in ``results/README.md`` ("fits.json").
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tal_bench.errors import TalBenchError
from tal_bench.fits import CURVES, Anchors, extrapolate, fit_curve, fit_range, select_family
from tal_bench.records import atomic_write_text, load_meta, load_rows

if TYPE_CHECKING:  # pandas is imported by the readers: `talbench --help` starts fast
    import pandas as pd

log = logging.getLogger(__name__)

FITS_SCHEMA = "talbench-fits/1"
DEFAULT_FAMILIES = tuple(CURVES)
DEFAULT_N_BOOT = 100


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


def load_anchors(path: str | Path) -> tuple[Anchors, dict[str, Any]]:
    """Read a data-scaling run directory or a ``fraction,mAP[,slice]`` CSV.

    Returns:
        (anchors, ``input`` block of the summary: path, kind, counts of used/ignored rows).

    Raises:
        TalBenchError: missing file, wrong columns, values out of range, no usable rows.
    """
    path = Path(path)
    if path.is_dir() or path.name in ("meta.json", "rows.jsonl"):
        x, y, info = _from_run(path)
    elif path.is_file():
        x, y, info = _from_csv(path)
    else:
        raise TalBenchError(f"{path} does not exist; pass a data-scaling run directory or a CSV")
    _check_values(x, y, path)
    anchors = Anchors.from_pairs(x, y)
    info.update(path=str(path), n_used=int(x.size), n_fractions=int(anchors.fractions.size))
    return anchors, info


def _from_run(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    import pandas as pd

    meta = load_meta(path)
    df = load_rows(path)
    if "kind" in df.columns and (df["kind"] == "cell").any():
        df = df[df["kind"] == "cell"]
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
    if key is not None:
        ok = ok.loc[~key[status == "ok"].duplicated(keep="first")]  # first ok row per cell
        bad_keys = set(key[status != "ok"]) - set(key[status == "ok"])
        n_failed = len(bad_keys)
    else:
        n_failed = int((status != "ok").sum())
    y = pd.to_numeric(ok["map_avg_pct"], errors="coerce").to_numpy(dtype=float)
    x = pd.to_numeric(ok["fraction_pct"], errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    info = {"kind": "run", "command": meta.get("command"), "n_rows": int(len(df)),
            "n_failed": n_failed, "n_nan": int((~keep).sum())}  # fmt: skip
    return x[keep], y[keep], info


def _cell_key(df: pd.DataFrame) -> pd.Series | None:
    if "run_key" in df.columns:
        return df["run_key"].astype(str)
    if "slice" in df.columns:
        return df["fraction_pct"].astype(str) + "/" + df["slice"].astype(str)
    return None


def _from_csv(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    import pandas as pd

    try:
        df = pd.read_csv(path, comment="#")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise TalBenchError(f"cannot read {path} as CSV ({exc})") from None
    cols = {c.strip().lower(): c for c in df.columns}
    if "fraction" not in cols or "map" not in cols:
        raise TalBenchError(
            f"{path} needs columns fraction,mAP[,slice] (fraction in percent 1-100, mAP in "
            f"points 0-100); found {', '.join(map(str, df.columns)) or 'none'}"
        )
    x = pd.to_numeric(df[cols["fraction"]], errors="coerce").to_numpy(dtype=float)
    raw_y = df[cols["map"]]
    y = pd.to_numeric(raw_y, errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(x) | (np.isnan(y) & raw_y.notna().to_numpy())
    if bad.any():
        line = int(np.argmax(bad)) + 2  # 1-based, after the header
        raise TalBenchError(f"{path}:{line}: fraction and mAP must be numbers")
    keep = ~np.isnan(y)  # empty mAP cells = failed runs
    info = {"kind": "csv", "n_rows": int(len(df)), "n_failed": int((~keep).sum()), "n_nan": 0}
    return x[keep], y[keep], info


def _check_values(x: np.ndarray, y: np.ndarray, path: Path) -> None:
    if x.size == 0:
        raise TalBenchError(f"{path} has no usable (ok, numeric) results to fit")
    if np.any(x <= 0) or np.any(x > 100):
        raise TalBenchError(f"{path}: fractions must be percent in (0, 100]")
    if np.all(x <= 1):
        raise TalBenchError(
            f"{path}: every fraction is <= 1; they look like fractions of 1, give percent "
            "(multiply by 100)"
        )
    if np.any(y < 0) or np.any(y > 100):
        raise TalBenchError(f"{path}: mAP must be points in [0, 100]")
    if np.all(y <= 1) and np.any(y > 0):
        log.warning("%s: every mAP is <= 1; mAP must be in points 0-100, not a fraction", path)


# --------------------------------------------------------------------------- fitting


def _anchor_table(anchors: Anchors) -> list[dict[str, Any]]:
    return [
        {
            "fraction_pct": float(f),
            "n_slices": int(n),
            "map_mean_pct": float(m),
            "map_std_pct": float(s),
        }  # fmt: skip
        for f, n, m, s in zip(
            anchors.fractions, anchors.counts, anchors.means, anchors.stds, strict=True
        )
    ]


def fit_anchors(
    anchors: Anchors,
    families: Sequence[str] = DEFAULT_FAMILIES,
    *,
    target_pct: float = 100.0,
    upto_pct: float | None = None,
    first_k: int | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    n_holdout: int = 2,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Fits on all anchors plus the extrapolation block (the body of ``fits.json``).

    Args:
        anchors: all results.
        families: families to fit.
        target_pct: fraction to project to (percent; may exceed 100).
        upto_pct: fit range ``p <= upto_pct`` (default: all fractions below the target).
        first_k: fit range = first ``k`` fractions.
        n_boot: bootstrap resamples for the intervals.
        n_holdout: anchors held out at the end of the fit range to select the family.
        level: interval coverage.
        seed: bootstrap seed.
    """
    if not (target_pct > 0 and math.isfinite(target_pct)):
        raise TalBenchError(f"--target must be a positive percent, got {target_pct}")
    if n_boot < 0 or n_holdout < 0:
        raise TalBenchError(f"--n-boot and --holdout must be >= 0, got {n_boot} and {n_holdout}")
    if not 0 < level < 1:
        raise TalBenchError(f"the interval level must be in (0, 1), got {level}")
    fits = {f: fit_curve(anchors.fractions, anchors.means, f) for f in families}
    ok = [f for f in families if fits[f].ok and fits[f].aic is not None]
    part = fit_range(anchors, target_pct, upto_pct, first_k)
    part_fits = {f: fit_curve(part.fractions, part.means, f) for f in families}
    selection = select_family(part, families, n_holdout, fits=part_fits)
    actual, actual_std = anchors.value_at(target_pct)
    per_family = {}
    for fam in families:
        res = extrapolate(part, fam, target_pct, actual=actual, n_boot=n_boot, level=level,
                          seed=seed, fit=part_fits[fam])  # fmt: skip
        per_family[fam] = {**res, "holdout_error": selection["scores"][fam]}
    chosen = per_family.get(selection["selected"] or "", {})
    return {
        "schema": FITS_SCHEMA,
        "anchors": _anchor_table(anchors),
        "families": {f: {**fits[f].to_dict(), "formula": CURVES[f].formula} for f in families},
        "best_fit_aic": min(ok, key=lambda f: fits[f].aic) if ok else None,
        "extrapolation": {
            "upto": float(part.fractions.max()),
            "first_k": first_k,
            "fractions_used": [float(v) for v in part.fractions],
            "target": float(target_pct),
            "selected": selection["selected"],
            "selection": {k: selection[k] for k in ("method", "holdout_fractions", "scores")},
            "projected": chosen.get("projected"),
            "interval": chosen.get("interval"),
            "interval_level": level,
            "interval_method": chosen.get("interval_method"),
            "actual": actual,
            "actual_std": actual_std,
            "error": chosen.get("error"),
            "per_family": per_family,
        },
    }


def run_fit(
    results: str | Path,
    families: Sequence[str] | str | None = None,
    *,
    out_dir: str | Path | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Load results, fit, and write ``fits.json`` and ``fits.png``.

    Args:
        results: data-scaling run directory or CSV ``fraction,mAP[,slice]``.
        families: families (``"5pl,exp"`` or a list); default all of ``CURVES``.
        out_dir: where to write; default the run directory, or the CSV's directory.
        **options: passed to :func:`fit_anchors` (``target_pct``, ``upto_pct``, ``first_k``,
            ``n_boot``, ``n_holdout``, ``level``, ``seed``).

    Returns:
        The summary written to ``fits.json`` (with ``input`` and ``outputs`` blocks).
    """
    fams = parse_families(families)
    anchors, info = load_anchors(results)
    summary = {"schema": FITS_SCHEMA, "input": info, **fit_anchors(anchors, fams, **options)}
    path = Path(results)
    if out_dir is None:
        out_dir = path if path.is_dir() else path.parent
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TalBenchError(
            f"cannot create {out_dir} ({exc.strerror}); pass another --out"
        ) from None
    summary["outputs"] = {"fits_json": str(out_dir / "fits.json"),
                          "figure": str(out_dir / "fits.png")}  # fmt: skip
    atomic_write_text(
        out_dir / "fits.json", json.dumps(summary, indent=2, default=_jsonable) + "\n"
    )
    plot_fits(summary, out_dir / "fits.png")
    return summary


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# --------------------------------------------------------------------------- figure


def plot_fits(summary: dict[str, Any], path: str | Path) -> Path:
    """Two panels: fits on all anchors; extrapolation from the fit range with intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    anchors = summary["anchors"]
    x = np.array([a["fraction_pct"] for a in anchors])
    y = np.array([a["map_mean_pct"] for a in anchors])
    sd = np.array([a["map_std_pct"] for a in anchors])
    ext = summary["extrapolation"]
    x_max = max(float(x.max()), ext["target"])
    grid = np.geomspace(min(float(x.min()), 1.0), x_max, 200)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax in axes:
        ax.fill_between(x, y - sd, y + sd, color="0.85", label="±1 std over slices")
        ax.errorbar(x, y, yerr=sd, fmt="o", color="k", ms=4, capsize=2, label="mean mAP")
        ax.set_xscale("log")
        ax.set_xlabel("training fraction p (%)")
        ax.grid(True, which="both", alpha=0.3)
    for name, fit in summary["families"].items():
        if fit["status"] == "ok":
            label = f"{name} (R²={fit['r2']:.4f})" if fit["r2"] is not None else name
            axes[0].plot(grid, CURVES[name].predict(grid, fit["params"]), lw=1.2, label=label)
    _plot_extrapolation(axes[1], ext, grid)
    axes[0].set_ylabel("average mAP (points)")
    axes[0].set_title("fits on all anchors")
    axes[1].set_title(f"extrapolation from p ≤ {ext['upto']:g} % to {ext['target']:g} %")
    for ax in axes:
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def _plot_extrapolation(ax: Any, ext: dict[str, Any], grid: np.ndarray) -> None:
    ax.axvspan(grid[0], ext["upto"], color="tab:blue", alpha=0.06, label="fit range")
    for i, (name, res) in enumerate(ext["per_family"].items()):
        if res["status"] != "ok":
            continue
        chosen = name == ext["selected"]
        line = ax.plot(
            grid,
            CURVES[name].predict(grid, res["params"]),
            lw=2.2 if chosen else 1.0,
            ls="-" if chosen else "--",
            label=name + (" (selected)" if chosen else ""),
        )
        if res["interval"] is not None:
            lo, hi = res["interval"]
            # Offset the markers slightly so overlapping intervals stay readable.
            xt = ext["target"] * (1 + 0.012 * (i - 3))
            proj = res["projected"]
            ax.errorbar([xt], [proj], yerr=[[proj - lo], [hi - proj]], fmt="s",
                        color=line[0].get_color(), ms=4, capsize=3)  # fmt: skip
    if ext["actual"] is not None:
        ax.plot([ext["target"]], [ext["actual"]], "k*", ms=12, label="actual at target")
