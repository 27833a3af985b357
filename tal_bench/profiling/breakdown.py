"""Where the time goes: per-module wall time (forward hooks) and per-op self time (profiler).

Used when a model reaches a low fraction of the GEMM roofline, to say which modules and
which kernels take the time. Module times are inclusive (a parent holds its children) and
only cover ``forward`` calls; work done in plain functions or non-forward methods shows up
in ``unattributed_ms``. Op times are ``torch.profiler`` self CPU (and CUDA) times.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from tal_bench.profiling.timers import synchronize


def module_times(
    model: nn.Module, fn: Callable[[], Any], device: str = "cpu", max_depth: int = 3
) -> dict[str, Any]:
    """Run ``fn()`` once with timing hooks on ``model``'s submodules down to ``max_depth``.

    Args:
        model: the module whose submodules are timed (names relative to it).
        fn: zero-argument callable that runs the model.
        device: synchronised around every hook on CUDA (adds overhead; relative times only).
        max_depth: deepest module path to time (``features`` = 1, ``features.layer1`` = 2).

    Returns:
        ``{"total_ms", "modules": {name: {"ms", "calls", "share"}}, "unattributed_ms"}`` where
        ``unattributed_ms`` is the total minus the outermost timed modules (those whose
        parents were not called, e.g. children of a ModuleList or of a non-forward method).
    """
    totals: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    starts: dict[str, list[float]] = defaultdict(list)
    handles = []

    def pre(name: str) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            synchronize(device)
            starts[name].append(time.perf_counter())

        return hook

    def post(name: str) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            synchronize(device)
            totals[name] += (time.perf_counter() - starts[name].pop()) * 1e3
            calls[name] += 1

        return hook

    for name, module in model.named_modules():
        if name and name.count(".") < max_depth:
            handles.append(module.register_forward_pre_hook(pre(name)))
            handles.append(module.register_forward_hook(post(name)))
    try:
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        total_ms = (time.perf_counter() - t0) * 1e3
    finally:
        for h in handles:
            h.remove()
    top = sum(ms for name, ms in totals.items() if _outermost(name, totals))
    modules = {
        name: {"ms": ms, "calls": calls[name], "share": ms / total_ms if total_ms else None}
        for name, ms in sorted(totals.items(), key=lambda kv: -kv[1])
    }
    return {"total_ms": total_ms, "modules": modules, "unattributed_ms": total_ms - top}


def _outermost(name: str, timed: dict[str, float]) -> bool:
    parts = name.split(".")
    return not any(".".join(parts[:i]) in timed for i in range(1, len(parts)))


# Self time of these ops is matrix-product work (what the GEMM roofline measures).
GEMM_OPS = frozenset(
    [
        "mm",
        "addmm",
        "bmm",
        "baddbmm",
        "matmul",
        "linear",
        "convolution",
        "_convolution",
        "mkldnn_convolution",
        "conv1d",
        "conv2d",
        "mkldnn_rnn_layer",
        "_cudnn_rnn",
        "lstm",
        "gru",
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention",
    ]
)


def op_category(op: str) -> str:
    """``gemm`` (matrix products), ``movement`` (copies, views, cat, gather, ...), ``other``
    (elementwise, reductions, sorting, indexing arithmetic, Python-level functions)."""
    from tal_bench.profiling.counters import MOVEMENT_OPS

    base = op.split("::", 1)[-1]
    if base in GEMM_OPS:
        return "gemm"
    if base in MOVEMENT_OPS:
        return "movement"
    return "other"


def op_times(fn: Callable[[], Any], device: str = "cpu", top: int = 15) -> dict[str, Any]:
    """Self time per op of one ``fn()`` call under ``torch.profiler``.

    Returns:
        ``{"top": [...], "by_category": {...}}``: up to ``top`` entries ``{"op", "calls",
        "self_cpu_ms", "self_device_ms", "share"}`` (largest self CPU time first; ``share`` of
        the summed self time) and the shares of :func:`op_category` over all ops.
    """
    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.device(device).type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        fn()
        synchronize(device)
    events = prof.key_averages()
    total_us = sum(e.self_cpu_time_total for e in events) or 1.0
    by_category: dict[str, float] = defaultdict(float)
    for e in events:
        by_category[op_category(e.key)] += e.self_cpu_time_total / total_us
    rows = []
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]:
        device_us = getattr(e, "self_device_time_total", 0.0)
        rows.append(
            {
                "op": e.key,
                "calls": e.count,
                "self_cpu_ms": e.self_cpu_time_total / 1e3,
                "self_device_ms": device_us / 1e3,
                "share": e.self_cpu_time_total / total_us,
            }
        )
    return {"top": rows, "by_category": dict(by_category)}


def summary_line(breakdown: dict[str, Any], n: int = 3) -> str:
    """``"gemm 21%, movement 40%, other 39%; modules: ...; ops: aten::copy_ 28%, ..."``."""
    timed = breakdown["modules"]["modules"]
    mods = [
        f"{name} {info['share']:.0%}"
        for name, info in timed.items()
        if _outermost(name, timed) and info["share"] is not None
    ][:n]
    cats = breakdown["ops"]["by_category"]
    kinds = ", ".join(f"{k} {cats.get(k, 0.0):.0%}" for k in ("gemm", "movement", "other"))
    ops = [f"{o['op']} {o['share']:.0%}" for o in breakdown["ops"]["top"][:n]]
    return f"{kinds}; modules: {', '.join(mods) or '-'}; ops: {', '.join(ops) or '-'}"
