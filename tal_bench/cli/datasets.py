"""``talbench datasets synth|info``: write a synthetic dataset, print a dataset's statistics."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tal_bench.cli.app import app, console, emit_json, user_errors
from tal_bench.data.datasets import dataset_info
from tal_bench.data.synthetic import SynthParams, generate_dataset, synthesize_features

datasets_app = typer.Typer(help="Synthetic data and dataset statistics.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")

_DEFAULT = SynthParams()


@datasets_app.command("synth")
@user_errors
def synth_command(
    out: Annotated[str, typer.Option(help="Folder to create (must not exist or be empty).")],
    scale: Annotated[
        float, typer.Option(help="Fraction of THUMOS's 200/212 videos (also shortens them).")
    ] = _DEFAULT.scale,
    dim: Annotated[int, typer.Option(help="Feature channels.")] = _DEFAULT.dim,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = _DEFAULT.seed,
    num_classes: Annotated[int, typer.Option(help="Classes kept (1-20).")] = _DEFAULT.num_classes,
    noise: Annotated[float, typer.Option(help="Feature noise std.")] = _DEFAULT.noise,
    distractor_rate: Annotated[
        float, typer.Option(help="Unannotated distractor bursts per action instance.")
    ] = _DEFAULT.distractor_rate,
    class_sep: Annotated[
        float, typer.Option(help="0 = classes of a family look alike, 1 = unrelated.")
    ] = _DEFAULT.class_sep,
    annotations: Annotated[
        str | None,
        typer.Option(help="Synthesise features over this annotation file instead (any format)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Write a synthetic THUMOS-like dataset (ActionFormer layout) to a folder.

    Example: talbench datasets synth --out data/synth-small --scale 0.25 --dim 64 --json
    """
    knobs = {"noise": noise, "distractor_rate": distractor_rate, "class_sep": class_sep}
    if annotations is not None:
        summary = synthesize_features(annotations, out, dim=dim, seed=seed, **knobs)
    else:
        params = SynthParams(scale=scale, dim=dim, seed=seed, num_classes=num_classes, **knobs)
        summary = generate_dataset(out, params)
    summary["out"] = out
    _print_stats(f"wrote {out} in {summary['generate_s']:.1f} s", summary["stats"]["subsets"])
    if json_out:
        emit_json(summary)


@datasets_app.command("info")
@user_errors
def info_command(
    name: Annotated[str, typer.Argument(help="Registered dataset name (talbench ls datasets).")],
    root: Annotated[str | None, typer.Option(help="Dataset folder (real datasets).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON.")] = False,
) -> None:
    """Print a dataset's statistics: videos per subset, instances, median action, background.

    Example: talbench datasets info synthetic-thumos14-tiny --json
    """
    info = dataset_info(name, root)
    meta = info["feature_meta"]
    clip = next(iter(info["subsets"].values()), {}).get("clip_shape")
    what = f"{'x'.join(map(str, clip))} clips" if clip else f"{meta['input_dim']}-d features"
    title = (
        f"{name}: {len(info['classes'])} classes, {what}, "
        f"{meta['fps']:g} fps / stride {meta['feat_stride']} ({info['root']})"
    )
    _print_stats(title, info["subsets"])
    if json_out:
        emit_json(info)


def _print_stats(title: str, subsets: dict[str, dict[str, Any]]) -> None:
    table = Table(title=title)
    cols = ["subset", "videos", "instances", "median action s", "median video s", "background"]
    for col in cols:
        table.add_column(col, justify="left" if col == "subset" else "right")
    for sub, row in sorted(subsets.items()):
        table.add_row(
            sub,
            str(row["videos"]),
            str(row["instances"]),
            f"{row['median_action_s']:.2f}",
            f"{row['median_duration_s']:.1f}",
            f"{100 * row['background_fraction']:.1f} %",
        )
    console.print(table)
