"""Profiling: MAC counters, timers, peak memory, utilisation sampler, GEMM roofline.

Stage contract: imports only torch, psutil, fvcore, nvidia-ml-py and the shared core; the
``pipelines/profile.py`` module wires these to detectors.
"""

from __future__ import annotations

from tal_bench.profiling.counters import (
    MOVEMENT_OPS,
    MacCount,
    MethodAsModule,
    count_macs_flop_counter,
    count_macs_fvcore,
    count_macs_primary,
    count_params,
)
from tal_bench.profiling.memory import (
    MemoryPeaks,
    PeakMemory,
    TensorPeak,
    current_rss_mib,
    reset_peak_rss,
)
from tal_bench.profiling.nvml import Nvml
from tal_bench.profiling.roofline import GemmPeak, measure_gemm_peak, roofline_fraction
from tal_bench.profiling.samplers import UtilizationSampler
from tal_bench.profiling.stats import Stats, quantile, relative_spread, summarize
from tal_bench.profiling.timers import Timing, synchronize, time_call, torch_threads

__all__ = [
    "MOVEMENT_OPS",
    "GemmPeak",
    "MacCount",
    "MemoryPeaks",
    "TensorPeak",
    "MethodAsModule",
    "Nvml",
    "PeakMemory",
    "Stats",
    "Timing",
    "UtilizationSampler",
    "count_macs_flop_counter",
    "count_macs_fvcore",
    "count_macs_primary",
    "count_params",
    "current_rss_mib",
    "measure_gemm_peak",
    "quantile",
    "relative_spread",
    "reset_peak_rss",
    "roofline_fraction",
    "summarize",
    "synchronize",
    "time_call",
    "torch_threads",
]
