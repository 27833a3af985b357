"""``talbench fit``: learning-curve fits and extrapolation of data-scaling results."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tal_bench.cli.app import app, console, emit_json, user_errors

# Option defaults are written out: importing tal_bench.fits / pipelines.fit pulls in numpy, and
# every --help must start fast. tests/test_cli_help.py checks them against the library's.
ALL_FAMILIES_HELP = "5pl, exp, pow3, pow4, mmf4, wbl4, exp3"
N_BOOT = 100  # tal_bench.pipelines.fit.DEFAULT_N_BOOT


@app.command("fit")
@user_errors
def fit_command(
    results: Annotated[
        str, typer.Argument(help="Data-scaling run directory, or a CSV fraction,mAP[,slice].")
    ],
    families: Annotated[
        str | None,
        typer.Option(help=f"Comma-separated curve families (default: all, {ALL_FAMILIES_HELP})."),
    ] = None,
    upto: Annotated[
        float | None,
        typer.Option(
            help="Extrapolate from fractions <= this percent (default: all below --target)."
        ),
    ] = None,  # fmt: skip
    first_k: Annotated[
        int | None, typer.Option("--first-k", help="Extrapolate from the first K fractions.")
    ] = None,
    target: Annotated[float, typer.Option(help="Fraction to project mAP at, percent.")] = 100.0,
    out: Annotated[
        str | None,
        typer.Option(
            help="Output directory for fits.json and fits.png (default: the run "
            "directory, or next to the CSV)."
        ),
    ] = None,  # fmt: skip
    n_boot: Annotated[
        int, typer.Option("--n-boot", help="Bootstrap resamples for the intervals (0: none).")
    ] = N_BOOT,
    holdout: Annotated[
        int, typer.Option(help="Anchors held out at the end of the fit range to pick a family.")
    ] = 2,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the fits.json summary on stdout.")
    ] = False,
) -> None:
    """Fit mAP-vs-fraction learning curves, pick the family that extrapolates best, project.

    Example: talbench fit runs/main --upto 30 --target 100
    """
    from tal_bench.pipelines.fit import run_fit

    summary = run_fit(
        results, families, out_dir=out, target_pct=target, upto_pct=upto, first_k=first_k,
        n_boot=n_boot, n_holdout=holdout, seed=seed,
    )  # fmt: skip
    _print_summary(summary)
    if json_out:
        emit_json(summary)


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def _print_summary(summary: dict[str, Any]) -> None:
    ext = summary["extrapolation"]
    table = Table(title=f"learning-curve fits ({summary['input']['path']})")
    for col in (
        "family",
        "R²",
        "RMSE",
        "AIC",
        "mean |Δ|",
        "at bound",
        f"@{ext['target']:g}% from ≤{ext['upto']:g}%",
        "interval",
        "held-out |Δ|",
    ):
        table.add_column(col)  # fmt: skip
    for name, fit in summary["families"].items():
        res = ext["per_family"][name]
        interval = res.get("interval")
        table.add_row(
            name,
            _num(fit["r2"], ".4f") if fit["status"] == "ok" else f"failed: {fit['error']}",
            _num(fit["rmse"]),
            _num(fit["aic"]),
            _num(fit["mean_abs_error"]),
            ",".join(fit["at_bound"]) or "-",
            _num(res.get("projected")),
            "-" if interval is None else f"[{interval[0]:.2f}, {interval[1]:.2f}]",
            _num(res.get("holdout_error")),
        )
    console.print(table)
    line = f"selected {ext['selected']} ({ext['selection']['method']})"
    if ext["projected"] is not None:
        line += f": projected {ext['projected']:.2f} mAP at {ext['target']:g} %"
    if ext["actual"] is not None and ext["error"] is not None:
        line += f"; actual {ext['actual']:.2f} (error {ext['error']:+.2f})"
    console.print(line)
    console.print(f"wrote {summary['outputs']['fits_json']} and {summary['outputs']['figure']}")
