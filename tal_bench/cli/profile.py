"""``talbench profile``: MACs, latency, peak memory, utilisation and roofline vs input length."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tal_bench.cli.app import app, console, emit_json, user_errors
from tal_bench.errors import TalBenchError


class Mode(StrEnum):
    """What to profile."""

    infer = "infer"
    train = "train"


class Breakdown(StrEnum):
    """When to write the per-module / per-op time breakdown."""

    auto = "auto"
    always = "always"
    never = "never"


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def _print_rows(rows: list[dict[str, Any]]) -> None:
    table = Table(title="talbench profile")
    table.add_column("model")
    for col in ("L", "windows", "GMACs", "fvcore", "ms median", "IQR", "dense", "post", "cold"):
        table.add_column(col, justify="right")
    for col in ("RSS MiB", "CPU %", "GPU %", "roofline", "build s"):
        table.add_column(col, justify="right")
    for r in rows:
        if r.get("status") != "ok":
            where = f"{r.get('model')} L={r.get('length')}"
            console.print(f"[red]{where} failed:[/] {r.get('error')}", highlight=False)
            continue
        table.add_row(
            str(r["model"]),
            str(r["length"]),
            str(r["num_windows"]),
            _fmt(r["macs"] and r["macs"] / 1e9, ".2f"),
            _fmt(r["macs_fvcore"] and r["macs_fvcore"] / 1e9, ".2f"),
            _fmt(r["latency_ms_median"]),
            _fmt(r["latency_ms_iqr"]),
            _fmt(r["dense_ms_median"]),
            _fmt(r["post_ms_median"]),
            _fmt(r["latency_ms_cold"]),
            _fmt(r["peak_rss_mib"], ".0f"),
            _fmt(r["cpu_util_mean"], ".0f"),
            _fmt(r["gpu_util_mean"], ".0f"),
            _fmt(r["roofline_fraction"], ".0%"),
            _fmt(r.get("build_s"), ".2f"),
        )
    console.print(table)


def _print_train(rows: list[dict[str, Any]]) -> None:
    table = Table(title="talbench profile --mode train")
    cols = ("epoch", "time s", "step ms", "loss", "RSS MiB", "CPU % mean/max", "GPU %", "eval s")
    for col in (*cols, "mAP"):
        table.add_column(col, justify="right")
    for r in rows:
        if r["kind"] == "train_epoch":
            table.add_row(
                str(r["epoch"]),
                _fmt(r["epoch_time_s"], ".2f"),
                _fmt(r["step_ms_mean"]),
                _fmt(r["loss"], ".4f"),
                _fmt(r["peak_rss_mib"], ".0f"),
                f"{_fmt(r['cpu_util_mean'], '.0f')}/{_fmt(r['cpu_util_max'], '.0f')}",
                _fmt(r["gpu_util_mean"], ".0f"),
                _fmt(r.get("eval_time_s"), ".2f"),
                _fmt(r.get("map_avg_pct"), ".2f"),
            )
    console.print(table)


@app.command("profile")
@user_errors
def profile(
    model: Annotated[
        str,
        typer.Option(help="Detector (talbench ls models), a comma list, or all (but dummy)."),
    ] = "etad",
    preset: Annotated[str, typer.Option(help="Preset of presets/<model>.toml.")] = "cpu",
    length: Annotated[int | None, typer.Option(help="One input length L (feature steps).")] = None,
    lengths: Annotated[
        str | None,
        typer.Option(help="Lengths: 100..30000 (1-3 decade grid), 100..30000:N, or 100,1000."),
    ] = None,
    input_dim: Annotated[
        int, typer.Option(help="Feature channels C of the [B, C, L] input.")
    ] = 2048,
    batch: Annotated[int, typer.Option(help="Videos B per input.")] = 1,
    device: Annotated[str, typer.Option(help="cpu or cuda[:N].")] = "cpu",
    threads: Annotated[int | None, typer.Option(help="torch intra-op threads.")] = None,
    mode: Annotated[
        Mode, typer.Option(help="infer (per length) or train (real run).")
    ] = Mode.infer,
    interval: Annotated[float, typer.Option(help="Utilisation sampling interval (s).")] = 0.5,
    rounds: Annotated[
        int | None, typer.Option(help="Fixed timed rounds (default: >= 5 rounds and >= 1 s).")
    ] = None,
    warmup: Annotated[int, typer.Option(help="Warm-up calls after the cold call.")] = 1,
    window_batch: Annotated[
        int | None, typer.Option(help="Windows per predict call (default train.batch_size).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random inputs and weights.")] = 0,
    fvcore: Annotated[bool, typer.Option(help="Cross-check MACs with fvcore.")] = True,
    breakdown: Annotated[
        Breakdown, typer.Option(help="Per-module/op time file (auto: when roofline < 50%).")
    ] = Breakdown.auto,
    isolate: Annotated[
        bool, typer.Option(help="Profile each length in a fresh process (clean peak RSS).")
    ] = False,
    eval_every_epoch: Annotated[
        bool | None,
        typer.Option(help="--mode train: evaluate after every epoch (default: yes)."),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(help="--mode train only: registered dataset or folder (default: preset's)."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Config override KEY=VALUE, e.g. model.max_duration=64."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default runs/profile/<time>_<commit>).")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object per row.")] = False,
) -> None:
    """Profile a detector's MACs, latency, memory and utilisation against input length.

    Inputs are random [B, C, L] features. MACs come from FlopCounterMode and fvcore (with the
    ops each counts as zero); latency is the median, IQR and cold call, with the dense network
    and the post-processing apart; then peak memory, the CPU/GPU utilisation timeline and the
    fraction of the measured GEMM peak. --mode train profiles a real training run instead.

    Several models (--model etad,tadtr or --model all) are profiled one after the other into
    one run record, every row tagged by model. Each row records build_s, the seconds to build
    the model (constructor, weight init, move to the device). Window-mode detectors run their
    windows; --set data.mode=full runs one pass over the whole input (the study's TadTR:
    --preset paper --set data.mode=full --set data.downsample=1).
    --mode train evaluates after every epoch, as TadTR's official code does, so the timeline
    shades train epoch 1, eval 1, train epoch 2, eval 2, ...

    Example: talbench profile --model all --lengths 100..30000
    """
    from tal_bench.pipelines.profile import ProfileOptions, parse_lengths, run_profile

    if length is not None and lengths is not None:
        raise TalBenchError("give --length or --lengths, not both")
    if dataset is not None and mode is not Mode.train:
        raise TalBenchError("--dataset applies to --mode train; --mode infer uses random inputs")
    if eval_every_epoch is not None and mode is not Mode.train:
        raise TalBenchError("--eval-every-epoch applies to --mode train; drop it or add it there")
    grid = [length] if length is not None else parse_lengths(lengths or "30000")
    overrides = [*(set_ or []), *([f"data.dataset={dataset}"] if dataset else [])]
    opts = ProfileOptions(
        model=model, preset=preset, overrides=overrides, lengths=grid,
        input_dim=input_dim, batch=batch, device=device, threads=threads, mode=mode.value,
        interval_s=interval, rounds=rounds, warmup=warmup, window_batch=window_batch,
        seed=seed, fvcore=fvcore, breakdown=breakdown.value, isolate=isolate,
        eval_every_epoch=eval_every_epoch is not False,
    )  # fmt: skip

    def progress(row: dict[str, Any]) -> None:
        if not json_ and row.get("kind") == "profile":
            console.print(f"{row['model']} L={row['length']}: {row.get('status')}", highlight=False)

    result = run_profile(opts, str(out) if out is not None else None, on_row=progress)
    for note in result["notices"]:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    if json_:
        emit_json([{**row, "run_dir": result["run_dir"]} for row in result["rows"]])
        return
    (_print_train if mode is Mode.train else _print_rows)(result["rows"])
    console.print(f"run record: {result['run_dir']} (timeline: {result['timeline_file']})")
