"""``talbench report``: figures, tables and one self-contained HTML page from recorded runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tal_bench.cli.app import app, console, emit_json, user_errors


@app.command("report")
@user_errors
def report(
    results: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Run directories, or folders searched recursively for them (default: ./runs)."
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Report directory (an earlier report there is replaced).")
    ] = Path("report"),
    format_: Annotated[
        str, typer.Option("--format", help="Figure formats: png, svg or png,svg.")
    ] = "png",
    metric: Annotated[
        str, typer.Option(help="mAP column of the learning curves, e.g. map_pct_at_0.50.")
    ] = "map_avg_pct",
    json_: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Draw the figures and tables of recorded runs into one report.

    Reads data-scaling, sampling-ratio, fit, profile and train runs and writes the study's and
    ETAD's figures (PNG/SVG), tables, report.html (self-contained) and report.md.

    Example: talbench report runs/ --out report --format png,svg
    """
    from tal_bench.pipelines.report import build_report, parse_formats

    paths = list(results) if results else [Path("runs")]
    result = build_report(paths, out, parse_formats(format_), metric)
    summary = result.summary
    console.print(
        f"read {summary['runs']} runs: {len(summary['figures'])} figure files, "
        f"{len(summary['tables'])} tables, {summary['failures']} failed cells"
    )
    console.print(f"HTML: {summary['html']}\nMarkdown: {summary['markdown']}")
    if json_:
        emit_json(summary)
