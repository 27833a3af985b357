"""``talbench evaluate``: official ActivityNet detection mAP of a prediction file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tal_bench.cli.app import app, console, emit_json, user_errors

if TYPE_CHECKING:  # the command imports them: every --help starts without numpy
    import numpy as np

    from tal_bench.evaluation import EvalResult


@app.command("evaluate")
@user_errors
def evaluate_command(
    gt: Annotated[Path, typer.Option("--gt", help="Ground-truth annotation JSON (any variant).")],
    pred: Annotated[
        Path,
        typer.Option(
            "--pred",
            help="Predictions: official results JSON, or CSV with the header "
            "video-id,t-start,t-end,label,score.",
        ),
    ],  # fmt: skip
    subset: Annotated[
        str, typer.Option(help="Subset as in the file ('Test', 'validation') or normalised.")
    ] = "test",
    tiou: Annotated[
        str, typer.Option(help="'thumos' (0.3:0.1:0.7), 'anet' (0.5:0.05:0.95) or e.g. 0.3,0.5.")
    ] = "thumos",
    dedup: Annotated[
        bool,
        typer.Option("--dedup", help="ActionFormer's GT de-duplication (1e-3 s) before scoring."),
    ] = False,
    keep_zero_length: Annotated[
        bool,
        typer.Option(
            "--keep-zero-length",
            help="Accept predictions with end == start (they match zero-length GT via NaN tIoU).",
        ),
    ] = False,
    per_class: Annotated[
        bool, typer.Option("--per-class", help="Also print the AP of every class.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Score predictions with the official ActivityNet detection mAP (fractions 0-1).

    Predictions on videos outside the subset are false positives, as in the official code.
    Predicted labels without GT in the subset are dropped and counted.

    Example: talbench evaluate --gt thumos14.json --pred preds.json --json
    """
    from tal_bench.data.annotations import load_annotations
    from tal_bench.evaluation import evaluate_detections, load_predictions, tiou_preset

    thresholds = tiou_preset(tiou)
    ann = load_annotations(gt)
    dets = load_predictions(pred, classes=ann.classes, keep_zero_length=keep_zero_length)
    result = evaluate_detections(ann, subset, dets, thresholds, dedup=dedup)
    _print_result(result, per_class)
    if json_out:
        emit_json(summary(result))


def threshold_keys(thresholds: np.ndarray) -> list[str]:
    """Short unique labels for thresholds: 0.39999999999999997 -> "0.4"."""
    keys = [f"{float(t):.10g}" for t in thresholds]
    return keys if len(set(keys)) == len(keys) else [repr(float(t)) for t in thresholds]


def summary(result: EvalResult) -> dict[str, Any]:
    """JSON-able summary; mAP keys are the thresholds written shortly ("0.3", "0.4")."""
    keys = threshold_keys(result.tiou_thresholds)
    out: dict[str, Any] = {"mAP": dict(zip(keys, result.ap.mean(axis=1).tolist(), strict=True))}
    out |= {k: v for k, v in vars(result).items() if k not in ("tiou_thresholds", "mAP", "ap")}
    return out | {
        "tiou_thresholds": result.tiou_thresholds.tolist(),
        "num_classes": len(result.classes),
        "ap_per_class": {c: result.ap[:, i].tolist() for i, c in enumerate(result.classes)},
    }


def _print_result(result: EvalResult, per_class: bool) -> None:
    keys = threshold_keys(result.tiou_thresholds)
    console.print(_title(result), highlight=False, soft_wrap=True)
    table = Table()
    table.add_column("tIoU", justify="right")
    table.add_column("mAP %", justify="right")
    for key, value in zip(keys, result.ap.mean(axis=1), strict=True):
        table.add_row(key, f"{100 * value:.2f}")
    table.add_row("average", f"{100 * result.average_mAP:.2f}", style="bold")
    console.print(table)
    if per_class:
        classes = Table(title="AP % per class")
        classes.add_column("class")
        classes.add_column("avg", justify="right")
        classes.add_column(f"at tIoU {', '.join(keys)}")
        for i, name in enumerate(result.classes):
            aps = result.ap[:, i]
            classes.add_row(
                name, f"{100 * aps.mean():.2f}", " ".join(f"{100 * a:.1f}" for a in aps)
            )
        console.print(classes)


def _title(result: EvalResult) -> str:
    dedup = ", dedup" if result.dedup else ""
    dropped = (
        f", {result.num_dropped_pred} dropped ({', '.join(result.dropped_labels[:3])}"
        f"{', ...' if len(result.dropped_labels) > 3 else ''})"
        if result.num_dropped_pred
        else ""
    )
    return (
        f"subset {result.subset!r} ({result.num_videos} videos, {len(result.classes)} classes, "
        f"{result.num_gt} GT{dedup}): {result.num_pred} predictions{dropped}, "
        f"{result.num_pred_outside_subset} outside the subset"
    )
