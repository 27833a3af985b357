"""The shared training loop: any registered detector, one plain loop.

``fit`` builds the DataLoader (seeded generator, seeded workers), the optimizer and the
per-iteration schedule from ``TrainConfig``, then runs ``train_one_epoch`` ``epochs`` times
(or, with a fixed step budget, until ``epochs`` full-data epochs' worth of steps are done):
``model.training_step(items)["loss"]`` -> backward -> optional gradient clipping -> step ->
schedule step -> optional EMA update. It measures wall time and peak memory and returns one
dict per epoch (mean of every logged loss, LR, time). Models with ``optimizer_groups()`` get one
optimizer group each (end-to-end models name their video encoder's ``encoder``: it starts from
``train.encoder_lr`` and its gradient norm is clipped apart). ``train.mem_probe`` adds the
tensor peak of one training step on the CPU (``probe_step_memory``), the counterpart of CUDA's
max allocated.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn
from torch.utils.data import DataLoader

from tal_bench.config import TrainConfig
from tal_bench.errors import TalBenchError
from tal_bench.profiling.memory import TensorPeak, peak_mem_mib, reset_peak_mem
from tal_bench.train.ema import ModelEma
from tal_bench.train.optim import make_optimizer, make_scheduler
from tal_bench.train.seeding import seed_worker

log = logging.getLogger(__name__)


class TrainingDiverged(TalBenchError):
    """The loss became NaN/inf: a user-fixable setting (lower ``train.lr``, clip gradients)."""


@dataclass
class FitResult:
    """What ``fit`` returns: the model to evaluate and the measurements of the run."""

    model: nn.Module  # the EMA copy when cfg.ema, else the trained model
    epochs: list[dict[str, float]] = field(default_factory=list)  # one dict per epoch
    train_time_s: float = 0.0
    train_cpu_s: float = 0.0  # CPU time of this process over the same span (all its threads)
    peak_mem_mib: float = 0.0  # CUDA: max allocated; CPU: peak RSS (VmHWM) of the process
    peak_mem_kind: str = ""  # "cuda_max_allocated" | "cpu_vmhwm" | "cpu_ru_maxrss"
    iters_per_epoch: int = 0
    # cfg.mem_probe: CUDA max allocated over the training, or on CPU the tensor peak of one
    # training step (probe_step_memory); None without the probe
    step_mem_mib: float | None = None
    step_mem_kind: str | None = None  # "cuda_max_allocated" | "cpu_tensor_peak"


# ---------------------------------------------------------------------- the loop


def probe_step_memory(
    model: nn.Module,
    train_set: torch.utils.data.Dataset,
    cfg: TrainConfig,
    collate_fn: Callable[[list], Any],
) -> float:
    """Tensor peak (MiB) of one training step, measured on a copy before training starts.

    The step (forward, loss, backward, clipping, optimizer step, with the optimizer's state
    created) runs on a deep copy of ``model`` with a fresh optimizer over the first
    ``batch_size`` items in index order, under ``profiling.memory.TensorPeak``, with torch's
    global RNG forked: the real training is left exactly as it would be without the probe, and
    its time is not in ``train_time_s``. What existed before (weights, data) is not counted.
    """
    items = collate_fn([train_set[i] for i in range(min(cfg.batch_size, len(train_set)))])
    clone = copy.deepcopy(model).train()
    optimizer = make_optimizer(_params(clone), cfg)
    with torch.random.fork_rng(devices=[]), TensorPeak() as peak:
        loss = clone.training_step(items)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(optimizer, cfg.clip_grad_norm)
        optimizer.step()
        del loss
    return peak.peak_mib


def clip_gradients(optimizer: torch.optim.Optimizer, max_norm: float | None) -> None:
    """Clip the gradient norm to ``max_norm`` (None: no clipping): of all parameters together,
    except an ``encoder`` group (``optim.param_groups``), which is clipped on its own.

    An end-to-end model's encoder gradient (summed over every sampled snippet) would otherwise
    dominate the joint norm and shrink the detector's steps, which the released ETAD code,
    training without clipping, never does.
    """
    if max_norm is None:
        return
    encoder = [g for g in optimizer.param_groups if g.get("name") == "encoder"]
    rest = [p for g in optimizer.param_groups if g.get("name") != "encoder" for p in g["params"]]
    for params in ([p for g in encoder for p in g["params"]], rest):
        if params:
            nn.utils.clip_grad_norm_(params, max_norm)


def _params(model: nn.Module) -> Any:
    """The model's ``optimizer_groups()`` when it has them (LR multipliers, an encoder group),
    else all its parameters."""
    groups = getattr(model, "optimizer_groups", None)
    return groups() if callable(groups) else model.parameters()


def make_loader(
    train_set: torch.utils.data.Dataset,
    cfg: TrainConfig,
    collate_fn: Callable[[list], Any],
    generator: torch.Generator,
    num_workers: int = 0,
) -> DataLoader:
    """Shuffled training DataLoader whose order depends only on ``generator``'s seed."""
    return DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        shuffle=True,
        drop_last=False,
        collate_fn=collate_fn,
        num_workers=num_workers,
        generator=generator,
        worker_init_fn=seed_worker if num_workers > 0 else None,
        persistent_workers=False,
    )


def _progress(enabled: bool) -> Progress:
    console = Console(stderr=True)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not (enabled and console.is_terminal),
    )


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    cfg: TrainConfig,
    ema: ModelEma | None = None,
    on_step: Callable[[float], None] | None = None,
    max_iters: int | None = None,
) -> dict[str, float]:
    """One pass over ``loader`` (at most ``max_iters`` steps); returns the mean of every logged
    loss plus ``iters``."""
    model.train()
    sums: dict[str, float] = defaultdict(float)
    iters = 0
    for items in loader:
        if max_iters is not None and iters >= max_iters:
            break
        losses = model.training_step(items)
        loss = losses["loss"]
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"loss is {loss.item()} at iteration {iters}; lower train.lr or set "
                "train.clip_grad_norm"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(optimizer, cfg.clip_grad_norm)
        optimizer.step()
        scheduler.step()
        if ema is not None:
            ema.update(model)
        for name, value in losses.items():
            sums[name] += float(value.detach())
        iters += 1
        if on_step is not None:
            on_step(float(loss.detach()))
    return {name: total / max(iters, 1) for name, total in sums.items()} | {"iters": iters}


def fit(
    model: nn.Module,
    train_set: torch.utils.data.Dataset,
    cfg: TrainConfig,
    collate_fn: Callable[[list], Any],
    generator: torch.Generator,
    num_workers: int = 0,
    progress: bool = True,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    budget_iters_per_epoch: int | None = None,
) -> FitResult:
    """Train ``model`` on ``train_set`` for ``cfg.epochs`` epochs, or for a fixed step budget.

    Args:
        model: a detector (``training_step``), already on ``cfg.device``.
        train_set: the training items (any map-style dataset).
        cfg: optimizer, schedule, clipping, EMA, epochs, batch size, device.
        collate_fn: batch builder (``tal_bench.data.collate_items``: a list of items).
        generator: seeded generator that fixes the shuffling (``seed_everything``).
        num_workers: DataLoader workers (each seeded by ``seed_worker``).
        progress: show a rich progress bar on stderr (only when stderr is a terminal).
        on_epoch: called with each epoch's log dict as soon as the epoch ends.
        budget_iters_per_epoch: a fixed iteration budget (``train.budget = "steps"``): the
            iterations of one epoch over the *full* training set. Training then runs
            ``cfg.epochs`` times that many optimizer steps, passing over ``train_set`` as often
            as needed (the last pass cut short), and the schedule (milestones, warm-up, cosine)
            counts its epochs in those full-data epochs. None: ``cfg.epochs`` passes.

    Returns:
        A :class:`FitResult`; ``epochs[i]`` has ``epoch`` (1-based), ``loss`` and the other
        logged losses (epoch means), ``lr`` (at the epoch's end), ``epoch_time_s``, ``iters``.
    """
    if len(train_set) == 0:
        raise TalBenchError("the training set has no items; raise data.fraction or check data")
    loader = make_loader(train_set, cfg, collate_fn, generator, num_workers)
    iters_per_epoch = len(loader)
    schedule_epoch = budget_iters_per_epoch or iters_per_epoch
    total_iters = cfg.epochs * schedule_epoch
    passes = math.ceil(total_iters / iters_per_epoch)
    optimizer = make_optimizer(_params(model), cfg)
    scheduler = make_scheduler(optimizer, cfg, schedule_epoch)
    ema = ModelEma(model, cfg.ema_decay) if cfg.ema else None
    result = FitResult(model=model, iters_per_epoch=iters_per_epoch)
    if cfg.mem_probe and not cfg.device.startswith("cuda"):
        result.step_mem_mib = probe_step_memory(model, train_set, cfg, collate_fn)
        result.step_mem_kind = "cpu_tensor_peak"
    result.peak_mem_kind = reset_peak_mem(cfg.device)
    start, start_cpu = time.perf_counter(), time.process_time()
    with _progress(progress) as bar:
        task = bar.add_task("train", total=total_iters, loss=math.nan)

        def step_done(loss: float) -> None:
            bar.update(task, advance=1, loss=loss)

        done = 0
        for epoch in range(1, passes + 1):
            bar.update(task, description=f"epoch {epoch}/{passes}")
            t0 = time.perf_counter()
            logs = train_one_epoch(model, loader, optimizer, scheduler, cfg, ema, step_done,
                                   max_iters=total_iters - done)  # fmt: skip
            done += int(logs["iters"])
            _sync(cfg.device)
            row = {"epoch": epoch, **logs, "lr": optimizer.param_groups[0]["lr"]}
            row["epoch_time_s"] = time.perf_counter() - t0
            result.epochs.append(row)
            log.info("epoch %d/%d loss %.5f", epoch, passes, logs["loss"])
            if on_epoch is not None:
                on_epoch(row)
    _sync(cfg.device)
    result.train_time_s = time.perf_counter() - start
    result.train_cpu_s = time.process_time() - start_cpu
    result.peak_mem_mib = peak_mem_mib(result.peak_mem_kind)
    if cfg.mem_probe and cfg.device.startswith("cuda"):
        result.step_mem_mib, result.step_mem_kind = result.peak_mem_mib, result.peak_mem_kind
    if ema is not None:
        result.model = ema.module
    return result


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
