"""``talbench data-scaling`` and ``talbench sampling-ratio``: resumable training grids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.table import Table

from tal_bench.cli.app import app, console, emit_json, print_note, user_errors
from tal_bench.config import parse_value
from tal_bench.errors import TalBenchError
from tal_bench.pipelines.checks import check_grid
from tal_bench.pipelines.data_scaling import (
    DEFAULT_FRACTIONS,
    DEFAULT_SLICES,
    Protocol,
    build_data_scaling,
)
from tal_bench.pipelines.executors import check_executor_options
from tal_bench.pipelines.grid import Cell, ExecOptions, execute_grid
from tal_bench.pipelines.sampling_ratio import DEFAULT_STRATEGIES, build_sampling_ratio

# Options shared by both grids.
Dataset = Annotated[
    str | None,
    typer.Option(
        help="Registered dataset or a folder in ActionFormer's layout (talbench datasets check "
        "DIR); default: the preset's (synthetic-thumos14)."
    ),
]
Preset = Annotated[str, typer.Option(help="Preset of the model (cpu, paper...).")]
Sets = Annotated[
    list[str] | None,
    typer.Option("--set", help="Config override KEY=VALUE shared by all cells (repeatable)."),
]
Seed = Annotated[int, typer.Option(help="Base seed.")]
ExecutorOpt = Annotated[
    str,
    typer.Option(
        "--executor",
        help="Where cells run: local (one fresh process per cell), ray, slurm (submitit), "
        "inline (this process, for debugging).",
    ),
]
Jobs = Annotated[int, typer.Option(help="Cells running at the same time.")]
Threads = Annotated[int, typer.Option(help="Torch threads per cell (jobs x threads <= cores).")]
TimeoutS = Annotated[
    float | None,
    typer.Option("--timeout-s", help="Per-cell wall-clock limit in seconds; past it the cell "
                 "is killed and recorded with status timeout."),
]  # fmt: skip
Out = Annotated[
    str | None,
    typer.Option(help="Run directory; re-run with the same --out to resume (finished cells "
                 "are skipped). Default: runs/<command>/<stamp>_<sha>/."),
]  # fmt: skip
RayAddress = Annotated[
    str | None, typer.Option(help="Existing Ray cluster (ray executor); default: a local Ray.")
]
SlurmCluster = Annotated[
    str, typer.Option(help="submitit cluster for --executor slurm: slurm, or local to test.")
]
SlurmPartition = Annotated[str | None, typer.Option(help="Slurm partition (slurm executor).")]
SlurmParams = Annotated[
    list[str] | None,
    typer.Option(
        "--slurm-param",
        help="Extra submitit parameter KEY=VALUE, e.g. slurm_account=abc, mem_gb=16 (repeatable).",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print the machine-readable summary.")]


def _exec_options(
    executor: str,
    jobs: int,
    threads: int,
    timeout_s: float | None,
    ray_address: str | None,
    slurm_cluster: str,
    slurm_partition: str | None,
    slurm_param: Sequence[str],
) -> ExecOptions:
    params: dict[str, Any] = {}
    if slurm_partition:
        params["slurm_partition"] = slurm_partition
    for item in slurm_param:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise TalBenchError(f"bad --slurm-param {item!r}: write KEY=VALUE, e.g. mem_gb=16")
        params[key.strip()] = parse_value(raw)
    if threads < 1:
        raise TalBenchError(f"--threads must be >= 1, got {threads}")
    check_executor_options(executor, jobs, timeout_s, slurm_cluster)  # before the data checks
    return ExecOptions(executor, jobs, threads, timeout_s, ray_address, slurm_cluster, params)


class RichReporter:
    """A bar over the grid plus one row per running cell (elapsed time), on stderr."""

    def __init__(self, title: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.title = title
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.grid_task: Any = None
        self.cell_tasks: dict[str, Any] = {}

    def grid_started(self, cells: Sequence[Cell], todo: Sequence[Cell]) -> None:
        """Print what is skipped and start the grid bar."""
        skipped = len(cells) - len(todo)
        if skipped:
            console.print(f"resuming: {skipped} of {len(cells)} cells already done, skipped")
        self.progress.start()
        self.grid_task = self.progress.add_task(self.title, total=len(todo))

    def cell_started(self, cell: Cell) -> None:
        """Add an open-ended bar for the running cell."""
        self.cell_tasks[cell.key] = self.progress.add_task(f"  {cell.label}", total=None)

    def cell_finished(self, cell: Cell, row: dict[str, Any]) -> None:
        """Drop the cell's bar, advance the grid bar, print one line about the cell."""
        task = self.cell_tasks.pop(cell.key, None)
        if task is not None:
            self.progress.remove_task(task)
        self.progress.advance(self.grid_task)
        if row["status"] == "ok":
            mAP, train_s = row.get("map_avg_pct"), row.get("train_time_s")
            what = f"mAP {mAP:.2f}" if isinstance(mAP, int | float) else "ok"
            what += f", train {train_s:.1f} s" if isinstance(train_s, int | float) else ""
            self.progress.console.print(f"[green]ok[/] {cell.label}: {what}", highlight=False)
        else:
            self.progress.console.print(
                f"[red]{row['status']}[/] {cell.label}: {row.get('error')}", highlight=False
            )

    def grid_finished(self) -> None:
        """Stop the live display."""
        self.progress.stop()


def _mean_std(entry: dict[str, Any], metric: str, digits: int) -> str:
    mean, std = entry.get(f"{metric}_mean"), entry.get(f"{metric}_std")
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def _print_table(
    summary: dict[str, Any], keys: Sequence[tuple[str, str]], metrics: Sequence[tuple]
) -> None:
    table = Table(title=f"{summary['command']}: mean ± std over ok cells", title_justify="left")
    for _, header in keys:
        table.add_column(header, justify="right")
    table.add_column("n", justify="right")
    table.add_column("failed", justify="right")
    for _, header, _ in metrics:
        table.add_column(header, justify="right")
    for g in summary["groups"]:
        cells = [f"{g[k]:g}" if isinstance(g[k], float) else str(g[k]) for k, _ in keys]
        cells += [str(g["n"]), str(g["failed"])]
        cells += [_mean_std(g, m, d) for m, _, d in metrics]
        table.add_row(*cells)
    console.print(table)
    console.print(
        f"cells {summary['cells']}: ok {summary['ok']}, failed {summary['failed']}, "
        f"timeout {summary['timeout']}, skipped {summary['skipped']} "
        f"({summary['wall_time_s']:.1f} s); run dir: {summary['run_dir']}",
        highlight=False,
    )


@app.command("data-scaling")
@user_errors
def data_scaling(
    model: Annotated[
        str,
        typer.Option(
            help="Registered model, or several separated by commas (etad,actionformer,...): "
            "one grid, every model on its own --preset (talbench ls models)."
        ),
    ] = "etad",
    fractions: Annotated[
        str,
        typer.Option(
            help="Percent of the training videos: A..B = the default grid 1,2,3,5,7,"
            "10,15,20,30,50,70,100 within [A, B] plus A and B; A..B:STEP = a range; "
            "a,b,c = these values."
        ),
    ] = DEFAULT_FRACTIONS,  # fmt: skip
    slices: Annotated[int, typer.Option(help="Random draws per fraction.")] = DEFAULT_SLICES,
    budget: Annotated[
        str,
        typer.Option(
            help="epochs: train.epochs passes over the drawn videos (the study's); "
            "steps: as many optimizer steps as train.epochs passes over all videos."
        ),
    ] = "epochs",
    draw: Annotated[
        str,
        typer.Option(
            help="uniform: re-drawn until every class appears (the study's); "
            "stratified: every class keeps its share of the videos."
        ),
    ] = "uniform",
    nested: Annotated[
        bool,
        typer.Option(
            "--nested/--independent",
            help="Nested draws: the p % draw holds every smaller one of its slice.",
        ),
    ] = False,
    classifier_data: Annotated[
        str,
        typer.Option(
            help="Class-agnostic detectors (ETAD): train the video-level classifier "
            "on the drawn fraction (default) or on all training videos (all)."
        ),
    ] = "fraction",
    dataset: Dataset = None,
    preset: Preset = "cpu",
    set_: Sets = None,
    seed: Seed = 0,
    executor: ExecutorOpt = "local",
    jobs: Jobs = 2,
    threads: Threads = 1,
    timeout_s: TimeoutS = None,
    out: Out = None,
    ray_address: RayAddress = None,
    slurm_cluster: SlurmCluster = "slurm",
    slurm_partition: SlurmPartition = None,
    slurm_param: SlurmParams = None,
    json_out: Json = False,
) -> None:
    """Learning curve: mAP against the share of training videos, resumable.

    Trains on p % of the training videos (t random slices per p), evaluates on the full test
    set and reports mAP mean ± std per p. Slice k trains with seed + k. Interrupted grids
    resume with the same command and --out. The defaults (12 fractions x 5 slices as the
    study, 2 jobs x 1 thread) take 23-25 CPU-minutes on the embedded dataset (a 2-vCPU Xeon
    VM): 11.5-12.5 minutes on 2 idle cores. --budget, --draw, --nested and --classifier-data
    change the protocol (defaults: the study's); they are part of each cell's run key.

    Several models (--model etad,actionformer,tridet,temporalmaxer) make one grid of every
    (model, fraction, slice) cell, each model on its own --preset, resumable per cell.

    Example: talbench data-scaling --model etad,tridet --fractions 10,30,100
    """
    opts = _exec_options(
        executor, jobs, threads, timeout_s, ray_address, slurm_cluster, slurm_partition,
        slurm_param or [],
    )  # fmt: skip
    protocol = Protocol(budget, draw, nested, classifier_data)
    spec = build_data_scaling(model, fractions, slices, dataset, preset, set_ or [], seed, threads,
                              protocol)  # fmt: skip
    check_grid(spec.cells, out, print_note)
    reporter = RichReporter(f"data-scaling {model}")
    summary = execute_grid(spec, opts, out, reporter)
    metrics = [
        ("map_avg_pct", "mAP avg %", 2),
        ("train_time_s", "train s", 1),
        ("peak_mem_mib", "peak MiB", 0),
        ("num_train_videos", "videos", 1),
    ]
    _print_table(summary, [("model", "model"), ("fraction_pct", "fraction %")], metrics)
    if json_out:
        emit_json(summary)


@app.command("sampling-ratio")
@user_errors
def sampling_ratio(
    model: Annotated[
        str, typer.Option(help="Registered model with the sampler --kind varies (etad).")
    ] = "etad",
    kind: Annotated[
        str,
        typer.Option(
            help="dps (detector proposal sampling) or egs (encoder gradient sampling: "
            "end-to-end training from frames)."
        ),
    ] = "dps",
    ratios: Annotated[
        str | None,
        typer.Option(
            help="Sampling ratios: dps in (0, 1] (default 0.01,0.02,0.04,0.06,0.1,0.3,1.0); "
            "egs in [0, 1], 0 = frozen encoder (default 0,0.1,0.3,1.0)."
        ),
    ] = None,
    strategies: Annotated[
        str, typer.Option(help="Comma list of random, grid, block.")
    ] = DEFAULT_STRATEGIES,
    seeds: Annotated[
        int | None, typer.Option(help="Training seeds per (ratio, strategy); dps 3, egs 1.")
    ] = None,
    dataset: Dataset = None,
    preset: Annotated[
        str | None, typer.Option(help="Preset of the model; dps: cpu, egs: egs.")
    ] = None,
    set_: Sets = None,
    seed: Seed = 0,
    executor: ExecutorOpt = "local",
    jobs: Jobs = 2,
    threads: Threads = 1,
    timeout_s: TimeoutS = None,
    out: Out = None,
    ray_address: RayAddress = None,
    slurm_cluster: SlurmCluster = "slurm",
    slurm_partition: SlurmPartition = None,
    slurm_param: SlurmParams = None,
    json_out: Json = False,
) -> None:
    """ETAD's sampling studies: mAP, time and memory against the sampling ratio.

    Trains with sampling ratio r and strategy s (seeds seed, seed+1, ...) and reports mAP,
    training time, step time and memory per (s, r). --kind dps samples detector proposals
    (Fig. 4); --kind egs samples the snippets whose gradients reach the video encoder (Fig. 5;
    preset egs, frames dataset), ratio 0 being the frozen encoder (pre-extracted features).
    Ratios where the strategy cannot matter (1.0; egs 0) are trained once per seed and shared
    by the strategies. The egs defaults (1 seed) take ~580 s of CPU: ~6 min on 2 idle cores.

    Example: talbench sampling-ratio --kind egs --ratios 0,0.1,0.3,1.0
    """
    opts = _exec_options(
        executor, jobs, threads, timeout_s, ray_address, slurm_cluster, slurm_partition,
        slurm_param or [],
    )  # fmt: skip
    spec = build_sampling_ratio(
        model, kind, ratios, strategies, seeds, dataset, preset, set_ or [], seed, threads
    )
    check_grid(spec.cells, out, print_note)
    summary = execute_grid(spec, opts, out, RichReporter(f"sampling-ratio {kind} {model}"))
    memory = (
        ("step_mem_mib", "step peak MiB", 1) if kind == "egs" else ("peak_mem_mib", "peak MiB", 0)
    )
    metrics = [
        ("map_avg_pct", "mAP avg %", 2),
        ("train_time_s", "train s", 1),
        ("step_time_ms", "step ms", 1),
        memory,
    ]
    keys = [(f"{kind}_strategy", "strategy"), (f"{kind}_ratio", "ratio")]
    _print_table(summary, keys, metrics)
    if json_out:
        emit_json(summary)
