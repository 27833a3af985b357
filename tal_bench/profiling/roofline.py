"""Compute roofline: achieved MAC/s against the GEMM peak of the same device, same run.

The peak is measured, not taken from a spec sheet: fp32 square matrix products of growing
size (``n^3`` MACs each) timed with the same thread count as the model, and the best
throughput over the sizes is taken as the attainable peak. On CPU the sizes go up to 2048
(8.6 GMAC per product, enough to saturate a few cores); on CUDA up to 8192. On CUDA the
current ``torch.backends.cuda.matmul.allow_tf32`` setting applies to both the model and the
micro-benchmark and is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from tal_bench.profiling.timers import time_call

CPU_SIZES = (256, 512, 1024, 2048)
CUDA_SIZES = (1024, 2048, 4096, 8192)


@dataclass
class GemmPeak:
    """Best measured fp32 GEMM throughput."""

    gmacs: float  # 1e9 MAC/s at the best size
    best_size: int
    threads: int
    device: str
    by_size: dict[int, float] = field(default_factory=dict)  # n -> GMAC/s
    tf32: bool | None = None  # CUDA only: TF32 allowed for fp32 matmul


def measure_gemm_peak(
    device: str = "cpu",
    threads: int | None = None,
    sizes: tuple[int, ...] | None = None,
    min_run_time_s: float = 0.3,
) -> GemmPeak:
    """Time ``A @ B`` for square fp32 matrices of each size; return the best GMAC/s.

    Args:
        device: "cpu" or a CUDA device.
        threads: torch intra-op threads (use the model's).
        sizes: matrix sizes to try (default by device type).
        min_run_time_s: measuring time per size (``blocked_autorange``).

    Returns:
        A :class:`GemmPeak`.
    """
    dev = torch.device(device)
    sizes = sizes or (CUDA_SIZES if dev.type == "cuda" else CPU_SIZES)
    gen = torch.Generator().manual_seed(0)
    by_size: dict[int, float] = {}
    n_threads = torch.get_num_threads() if threads is None else threads
    for n in sizes:
        by_size[n] = n**3 / (_matmul_ms(dev, n, n_threads, min_run_time_s, gen) / 1e3) / 1e9
    best = max(by_size, key=by_size.__getitem__)
    tf32 = torch.backends.cuda.matmul.allow_tf32 if dev.type == "cuda" else None
    return GemmPeak(by_size[best], best, n_threads, str(dev), by_size, tf32)


def roofline_fraction(macs: int | None, seconds: float | None, peak_gmacs: float) -> float | None:
    """Achieved MAC/s over the GEMM peak: ``macs / seconds / (peak_gmacs * 1e9)``.

    Returns None if any input is missing or non-positive.
    """
    if not macs or not seconds or seconds <= 0 or peak_gmacs <= 0:
        return None
    return macs / seconds / (peak_gmacs * 1e9)


CONTROL_SIZE = {"cpu": 512, "cuda": 4096}  # a fixed matmul: the machine's own speed, not peak
CONTROL_RUN_TIME_S = 0.2


def control_ms(device: str = "cpu", threads: int | None = None) -> float:
    """Median time of one fixed fp32 square matmul (``CONTROL_SIZE``), in milliseconds.

    Timed just before and just after a measurement, it says whether the machine itself changed
    speed meanwhile (a shared or throttled CPU): the model's latency cannot be repeatable to
    better than that change.
    """
    dev = torch.device(device)
    n_threads = torch.get_num_threads() if threads is None else threads
    gen = torch.Generator().manual_seed(1)
    return _matmul_ms(dev, CONTROL_SIZE[dev.type], n_threads, CONTROL_RUN_TIME_S, gen)


def _matmul_ms(
    dev: torch.device, n: int, threads: int, min_run_time_s: float, gen: torch.Generator
) -> float:
    """Median time of ``A @ B`` for random fp32 (n, n) matrices (``blocked_autorange``), ms."""
    a = torch.randn(n, n, generator=gen).to(dev)  # (n, n)
    b = torch.randn(n, n, generator=gen).to(dev)  # (n, n)
    out = torch.empty(n, n, device=dev)
    timing = time_call(
        lambda: torch.mm(a, b, out=out),
        device=str(dev),
        threads=threads,
        warmup=1,
        min_run_time_s=min_run_time_s,
        min_rounds=3,
    )
    return timing.stats.median
