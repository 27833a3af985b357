"""``talbench ls models|datasets``: what is registered, with sizes and descriptions."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer
from rich.table import Table

from tal_bench.cli.app import app, console, emit_json, user_errors

ls_app = typer.Typer(help="List registered models and datasets.", no_args_is_help=True)
app.add_typer(ls_app, name="ls")


def describe_models(
    names: list[str] | None, preset: str, input_dim: int, num_classes: int
) -> list[dict[str, Any]]:
    """One dict per model: name, description, class_agnostic, native_mode, post-processing
    (``post``), presets, params at ``preset``.

    ``params`` is None (with ``note``) for a model that has no such preset.
    """
    from tal_bench.models import create_model, get_spec, list_models
    from tal_bench.pipelines.resolve import available_presets, resolve_run_config

    rows = []
    for name in names or list_models():
        spec = get_spec(name)  # did-you-mean on unknown names
        presets = available_presets(name)
        row: dict[str, Any] = {
            "name": name,
            "description": spec.description,
            "class_agnostic": spec.class_agnostic,
            "native_mode": spec.native_mode,
            "post": dataclasses.asdict(spec.post),
            "presets": presets,
            "preset": preset,
            "input_dim": input_dim,
            "num_classes": num_classes,
            "params": None,
        }
        if preset in presets:
            cfg = resolve_run_config(name, preset)
            model = create_model(name, cfg.model, input_dim, num_classes)
            row["params"] = sum(p.numel() for p in model.parameters())
        else:
            row["note"] = f"no preset {preset!r}"
        rows.append(row)
    return rows


@ls_app.command("models")
@user_errors
def ls_models(
    names: Annotated[list[str] | None, typer.Argument(help="Only these models.")] = None,
    preset: Annotated[str, typer.Option(help="Preset whose model size is counted.")] = "cpu",
    input_dim: Annotated[int, typer.Option(help="Feature width C to size the models for.")] = 2048,
    num_classes: Annotated[int, typer.Option(help="Number of classes K.")] = 20,
    json_: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List the registered detectors with their parameter count at a preset and input width.

    Example: talbench ls models --preset paper --input-dim 2048 --json
    """
    from tal_bench.models import plugin_errors

    rows = describe_models(names, preset, input_dim, num_classes)
    for line in plugin_errors():
        console.print(f"[bold yellow]warning:[/] {line}", highlight=False, soft_wrap=True)
    if json_:
        emit_json(rows)
        return
    table = Table(title=f"models (preset {preset}, C={input_dim}, K={num_classes})")
    for column in ("name", "params", "class-agnostic", "native mode", "presets", "description"):
        table.add_column(column)
    for row in rows:
        params = f"{row['params']:,}" if row["params"] is not None else row.get("note", "")
        table.add_row(
            row["name"],
            params,
            "yes" if row["class_agnostic"] else "no",
            row["native_mode"],
            ", ".join(row["presets"]),
            row["description"],
        )
    console.print(table)


@ls_app.command("datasets")
@user_errors
def ls_datasets(
    names: Annotated[list[str] | None, typer.Argument(help="Only these datasets.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List the registered datasets: name, protocol (items, train/test subsets, tIoU), width.

    Example: talbench ls datasets --json
    """
    from tal_bench.data import describe_datasets
    from tal_bench.registry import DATASETS

    for name in names or []:
        DATASETS.get(name)  # did-you-mean on unknown names
    rows = [r for r in describe_datasets() if not names or r["name"] in names]
    if json_:
        emit_json(rows)
        return
    table = Table(title="datasets")
    for column in (
        "name",
        "items",
        "train / test",
        "tIoU",
        "input dim",
        "needs root",
        "description",
    ):
        table.add_column(column)
    for row in rows:
        proto = row["protocol"]
        table.add_row(
            row["name"],
            proto["items"],
            f"{proto['train_subset']} / {proto['test_subset']}",
            proto["tiou"],
            str(row["input_dim"]),
            "yes" if row["needs_root"] else "no",
            row["description"],
        )
    console.print(table)
