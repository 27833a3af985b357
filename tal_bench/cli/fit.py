"""``talbench fit``: backtested, calibrated projection of a learning curve."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tal_bench.cli.app import app, console, emit_json, user_errors

# Option defaults are written out: importing tal_bench.fits / pipelines.fit pulls in numpy and
# scipy, and every --help must start fast. tests/cli/test_cli_help.py checks them against the
# library's (CURVES, DEFAULT_N_BOOT, DEFAULT_N_BOOT_BACKTEST).
ALL_FAMILIES_HELP = (
    "5pl, exp, pow2, pow3, pow4, exp2, exp3, exp4, expp3, expd3, log2, ilog2, vap3, logpower3, "
    "mmf4, wbl4, janoschek"
)
N_BOOT = 200
N_BOOT_BACKTEST = 100


@app.command("fit")
@user_errors
def fit_command(
    results: Annotated[
        str,
        typer.Argument(
            help="Data-scaling run directory, or a curve CSV: fraction_pct,map_pct"
            "[,slice,seed,model] or fraction_pct,map_mean_pct[,map_std_pct,n_slices]."
        ),
    ],  # fmt: skip
    families: Annotated[
        str | None,
        typer.Option(help=f"Comma-separated curve families (default: all, {ALL_FAMILIES_HELP})."),
    ] = None,
    upto: Annotated[
        float | None,
        typer.Option(help="Fit on the fractions <= this percent (default: all below --target)."),
    ] = None,  # fmt: skip
    first_k: Annotated[
        int | None, typer.Option("--first-k", help="Fit on the first K fractions.")
    ] = None,
    target: Annotated[
        float,
        typer.Option(help="Fraction to project mAP to, percent (300 = three times the data)."),
    ] = 100.0,
    model: Annotated[
        str | None,
        typer.Option(
            help="Model to fit when the run or CSV has several (default for a run of several "
            "models: each, into <out>/fits/<model>/)."
        ),
    ] = None,
    out: Annotated[
        str | None,
        typer.Option(
            help="Output directory for fits.json, fits.png and curve.csv (default: the "
            "run directory, or next to the CSV)."
        ),
    ] = None,  # fmt: skip
    n_boot: Annotated[
        int, typer.Option("--n-boot", help="Bootstrap refits for the projections' intervals.")
    ] = N_BOOT,
    n_boot_backtest: Annotated[
        int, typer.Option("--n-boot-backtest", help="Bootstrap refits per backtest cut.")
    ] = N_BOOT_BACKTEST,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the fits.json summary on stdout.")
    ] = False,
) -> None:
    """Project mAP to a larger training fraction, backtested and with an interval.

    Every family and two naive baselines are backtested on the fit range, the lowest forecast
    error wins, and the projection comes with an interval and a warning when it should not be
    trusted.

    A data-scaling run of several models gets one fit per model, each in <out>/fits/<model>/.

    Example: talbench fit runs/main --upto 30 --target 100
    """
    from tal_bench.pipelines.fit import run_fit

    summary = run_fit(
        results, families, out_dir=out, model=model, target_pct=target, upto_pct=upto,
        first_k=first_k, n_boot=n_boot, n_boot_backtest=n_boot_backtest, seed=seed,
    )  # fmt: skip
    for one in summary["models"].values() if "models" in summary else [summary]:
        _print_summary(one)
    if json_out:
        emit_json(summary)


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _mae_key(entry: dict[str, Any]) -> tuple[bool, float]:
    mae = entry["backtest"]["mae"]
    return (mae is None, mae or 0.0)


def _interval(iv: list[float] | None) -> str:
    return "-" if not iv else f"[{iv[0]:.2f}, {iv[1]:.2f}]"


def _print_summary(summary: dict[str, Any]) -> None:
    proj, info = summary["projection"], summary["input"]
    bt = proj["backtest"]
    n_pairs = len(bt["pairs"])
    title = (f"{info['model']} ({info['path']}): fit on {len(proj['fractions_used'])} fractions "
             f"<= {proj['upto']:g} %, projected to {proj['target']:g} %")  # fmt: skip
    table = Table(title=title, box=None, pad_edge=False, title_justify="left")
    cols = ["method", "kind", "backtest |err|", "coverage", "(slices)",
            f"@{proj['target']:g}%", f"{proj['level']:.0%} interval"]  # fmt: skip
    for col in cols:
        table.add_column(col, no_wrap=True)
    rows = sorted(proj["methods"].items(), key=lambda kv: _mae_key(kv[1]))
    for name, entry in rows:
        score = entry["backtest"]
        backtested = score["n_forecasts"] > 0
        table.add_row(
            name + (" ✓" if name == proj["selected"] else ""),
            entry["kind"],
            _num(score["mae"]) if backtested else "not backtested",
            _pct(score["coverage"]),
            _pct(score["coverage_bootstrap"]),
            _num(entry["projected"]) if entry["status"] == "ok" else "failed",
            _interval(entry["interval"])
            if entry["interval"] or not entry["interval_bootstrap"]
            else _interval(entry["interval_bootstrap"]) + "*",
        )
    console.print(table)
    cuts = ", ".join(f"{c:g}" for c in bt["cuts"])
    console.print(
        "coverage: share of backtest forecasts whose interval held the measured mean; "
        "(slices): the same for the bootstrap interval alone (slice-to-slice spread)"
    )
    console.print(f"backtest: {n_pairs} forecasts, fitted on the fractions <= each of {cuts} % "
                  f"(the first cut has {bt['min_points']} fractions; families with more "
                  "parameters are not backtested)")  # fmt: skip
    line = f"selected {proj['selected']} (lowest backtest error)"
    if proj["projected"] is not None:
        line += (f": {proj['projected']:.2f} mAP at {proj['target']:g} %, "
                 f"{proj['level']:.0%} interval {_interval(proj['interval'])}")  # fmt: skip
    if proj["actual"] is not None and proj["error"] is not None:
        line += f"; measured {proj['actual']:.2f} (error {proj['error']:+.2f})"
    console.print(line, highlight=False)
    if proj["warning"]:
        console.print(f"[bold yellow]warning:[/] {proj['warning']}", highlight=False)
    outs = summary["outputs"]
    console.print(f"wrote {outs['fits_json']}, {outs['figure']} and {outs['curve_csv']}")
