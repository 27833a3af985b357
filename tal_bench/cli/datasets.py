"""``talbench datasets synth|info|check``: write a synthetic dataset, describe or validate one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tal_bench.cli.app import app, console, emit_json, print_note, user_errors
from tal_bench.data.synth_params import SynthParams

datasets_app = typer.Typer(
    help="Write a synthetic dataset; describe or validate a dataset.", no_args_is_help=True
)
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
    """Write a synthetic THUMOS-like dataset in ActionFormer's layout.

    The folder holds annotations/thumos14.json, features/<video>.npy and a dataset.toml, so
    --dataset DIR trains on it as it is.

    Example: talbench datasets synth --out data/synth --scale 0.25 --dim 64
    """
    from tal_bench.data.synthetic import generate_dataset, synthesize_features

    knobs = {"noise": noise, "distractor_rate": distractor_rate, "class_sep": class_sep}
    if annotations is not None:
        summary = synthesize_features(annotations, out, dim=dim, seed=seed, **knobs)
    else:
        params = SynthParams(scale=scale, dim=dim, seed=seed, num_classes=num_classes, **knobs)
        summary = generate_dataset(out, params)
    summary["out"] = out
    _print_stats(f"wrote {out} in {summary['generate_s']:.1f} s", summary["stats"]["subsets"])
    console.print(f"train on it: talbench train --model etad --dataset {out}", highlight=False)
    if json_out:
        emit_json(summary)


@datasets_app.command("info")
@user_errors
def info_command(
    name: Annotated[
        str, typer.Argument(help="Registered dataset (talbench ls datasets) or a folder.")
    ],
    root: Annotated[str | None, typer.Option(help="Dataset folder (real datasets).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON.")] = False,
) -> None:
    """Print a dataset's statistics: videos per subset, instances, median action, background.

    Example: talbench datasets info synthetic-thumos14-tiny --json
    """
    from tal_bench.data.datasets import dataset_info

    info = dataset_info(name, root)
    meta = info["feature_meta"]
    _print_dataset(name, info, meta["input_dim"], f"({info['root']})")
    if json_out:
        emit_json(info)


@datasets_app.command("check")
@user_errors
def check_command(
    folder: Annotated[Path, typer.Argument(help="The dataset folder (ActionFormer's layout).")],
    fps: Annotated[
        float | None, typer.Option(help="Frames per second (default: dataset.toml's).")
    ] = None,
    feat_stride: Annotated[
        int | None, typer.Option(help="Frames between features (default: dataset.toml's).")
    ] = None,
    clip_len: Annotated[
        int | None, typer.Option(help="Frames per feature clip (default: dataset.toml's).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Validate a dataset folder for --dataset DIR and print its statistics.

    Checks dataset.toml, the annotation file (segments with end > start; segments outside
    their video are counted), the train/test subsets, and every feature file: present,
    readable, a (T, C) array of one width C, finite values. Each problem is one line; the exit
    code is 2 when there is any.

    Example: talbench datasets check data/synth
    """
    from tal_bench.data.checks import check_folder
    from tal_bench.errors import TalBenchError

    report = check_folder(folder, fps, feat_stride, clip_len)
    if "subsets" in report:
        proto = report["protocol"]
        protocol = (
            f"/ {report['feature_meta']['clip_len']}-frame clips; trains on "
            f"{proto['train_subset']}, tests on {proto['test_subset']} ({proto['items']}, tIoU "
            f"{proto['tiou']})"
        )
        _print_dataset(str(folder), report, report["features"]["input_dim"], protocol)
    else:
        for line in report["notes"]:
            print_note(line)
    if json_out:
        emit_json(report)
    problems = report["problems"]
    for line in problems[:-1]:
        console.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
    if problems:
        raise TalBenchError(problems[-1])
    feats = report["features"]
    console.print(
        f"{folder}: ok: {feats['videos']} feature files of {feats['steps_min']}-"
        f"{feats['steps_max']} steps ({feats['feature_steps']} in all); ready for --dataset "
        f"{folder}",
        highlight=False,
    )


def _print_dataset(name: str, info: dict[str, Any], dim: int | None, extra: str) -> None:
    """Title (classes, width, geometry, ``extra``), the per-subset table, then the notes."""
    meta = info["feature_meta"]
    clip = next(iter(info["subsets"].values()), {}).get("clip_shape")  # frames datasets
    what = f"{'x'.join(map(str, clip))} clips" if clip else f"{dim}-d features"
    title = (
        f"{name}: {len(info['classes'])} classes, {what}, {meta['fps']:g} fps / "
        f"stride {meta['feat_stride']} {extra}"
    )
    _print_stats(title, info["subsets"])
    for line in info["notes"]:
        print_note(line)


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
