"""``talbench train``: train one detector on one training draw, evaluate, write a run record."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tal_bench.cli.app import app, console, emit_json, print_note, user_errors
from tal_bench.config import merge, overrides_to_dict


def cli_overrides(sets: list[str] | None, named: dict[str, Any]) -> dict[str, Any]:
    """``--set`` items merged with the named options that were given (named options win)."""
    out = overrides_to_dict(list(sets or []))
    for key, value in named.items():
        if value is not None:
            section, _, name = key.partition(".")
            out = merge(out, {section: {name: value}})
    return out


def _print_summary(summary: dict[str, Any]) -> None:
    table = Table(title=f"{summary['model']} on {summary['dataset']}", show_header=False)
    table.add_row("average mAP (points)", f"{summary['average_mAP']:.2f}")
    for tiou, value in summary["mAP"].items():
        table.add_row(f"mAP@{tiou}", f"{value:.2f}")
    table.add_row("train time", f"{summary['train_time_s']:.1f} s")
    table.add_row("eval time", f"{summary['eval_time_s']:.1f} s")
    table.add_row("peak memory", f"{summary['peak_mem_mib']:.0f} MiB ({summary['peak_mem_kind']})")
    if summary.get("step_mem_kind"):  # train.mem_probe
        step = f"{summary['step_mem_mib']:.1f} MiB ({summary['step_mem_kind']})"
        table.add_row("training step peak", step)
    table.add_row("parameters", f"{summary['params']:,}")
    table.add_row(
        "training videos",
        f"{summary['num_train_videos']} of {summary['num_train_videos_total']} "
        f"({summary['fraction_pct']:g}%, slice {summary['slice']}, seed {summary['seed']})",
    )
    table.add_row("classifier", str(summary["classifier"]))
    table.add_row("run record", str(summary["run_dir"]))
    console.print(table)


@app.command("train")
@user_errors
def train(
    model: Annotated[str, typer.Option(help="Registered detector (talbench ls models).")],
    dataset: Annotated[
        str | None,
        typer.Option(
            help="Registered dataset (talbench ls datasets), or a folder in ActionFormer's "
            "layout with a dataset.toml (talbench datasets check DIR)."
        ),
    ] = None,
    preset: Annotated[str, typer.Option(help="Preset table of presets/<model>.toml.")] = "cpu",
    fraction: Annotated[
        float | None, typer.Option(help="Percent of the training videos (1-100).")
    ] = None,
    slice_: Annotated[
        int | None, typer.Option("--slice", help="Which random draw of that fraction.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Training and draw seed.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override KEY=VALUE, e.g. train.epochs=3 (repeatable)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default runs/train/<time>_<commit>).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda.")] = None,
    threads: Annotated[int | None, typer.Option(help="torch intra-op threads.")] = None,
    progress: Annotated[bool, typer.Option(help="Progress bars on stderr.")] = True,
    json_: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Train a detector, evaluate it on the full test subset and write a run record.

    Options, config, dataset and feature files are checked before anything is written; a
    failure during training leaves the record with status failed.

    Example: talbench train --model etad --fraction 50 --dataset data/synth
    """
    from tal_bench.pipelines.resolve import resolve_run_config
    from tal_bench.pipelines.train import run_train

    named = {
        "data.dataset": dataset,
        "data.fraction": fraction,
        "data.slice": slice_,
        "train.seed": seed,
        "train.device": device,
        "train.threads": threads,
    }
    cfg = resolve_run_config(model, preset, cli_overrides(set_, named))
    summary = run_train(cfg, out, progress=progress and not json_, note=print_note)
    if json_:
        emit_json(summary)
    else:
        _print_summary(summary)
