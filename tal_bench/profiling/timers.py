"""Wall-clock timing with warm-up, an explicit thread count and device synchronisation.

Recipe (docs.pytorch.org ``torch.utils.benchmark``; nanoGPT ``bench.py``): time the first call
separately (``cold``: lazy init, allocator growth, oneDNN/cuDNN kernel selection), run a few
warm-up calls, then measure rounds and summarise them with the median and IQR. Every clock
read on CUDA is preceded by ``torch.cuda.synchronize()`` so asynchronous kernels are inside
the measured interval.

Two modes:
* ``rounds=None``: ``torch.utils.benchmark.Timer.blocked_autorange`` with the thread count set
  explicitly (its default of 1 thread differs from torch's) and a run time long enough for
  at least ``min_rounds`` rounds of a slow call; a round may then hold a block of calls.
* ``rounds=N``: exactly N single-call rounds, each one timed (for slow calls where the number
  of rounds must be fixed, e.g. L = 30000 on a CPU).

:func:`time_laps` times a round made of named parts (e.g. stack -> dense network ->
post-processing, once per window batch) in one pass: every round yields the total and the
per-part sums, so the parts add up to the total of the same rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.benchmark import Timer

from tal_bench.profiling.stats import Stats, summarize


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Set torch's intra-op thread count for a block, restoring the old value after.

    Args:
        threads: thread count, or None to keep the current one.

    Yields:
        The thread count in effect inside the block.
    """
    old = torch.get_num_threads()
    if threads is not None and threads != old:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


def synchronize(device: str | torch.device) -> None:
    """Wait for all queued kernels on ``device`` (no-op on CPU)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def synced_clock(device: str | torch.device) -> Callable[[], float]:
    """A ``perf_counter`` that first synchronises ``device`` (seconds)."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return time.perf_counter

    def clock() -> float:
        torch.cuda.synchronize(dev)
        return time.perf_counter()

    return clock


@dataclass
class Timing:
    """Per-call times of one timed callable, in milliseconds."""

    stats: Stats  # over ``times_ms``
    times_ms: list[float]  # one entry per round (per call, averaged over a block)
    cold_ms: float | None  # the very first call
    warmup: int  # warm-up calls after the cold call
    method: str  # "blocked_autorange" | "fixed_rounds"
    calls_per_round: int
    threads: int
    extra: dict[str, Any] = field(default_factory=dict)


def _timed_call(fn: Callable[[], Any], clock: Callable[[], float]) -> float:
    t0 = clock()
    fn()
    return (clock() - t0) * 1e3


def time_call(
    fn: Callable[[], Any],
    device: str = "cpu",
    threads: int | None = None,
    rounds: int | None = None,
    warmup: int = 2,
    min_run_time_s: float = 1.0,
    min_rounds: int = 5,
    cold: bool = True,
) -> Timing:
    """Time ``fn()``: cold first call, ``warmup`` calls, then measured rounds.

    Args:
        fn: zero-argument callable (its result is discarded).
        device: device the work runs on ("cpu", "cuda", "cuda:1"); CUDA is synchronised.
        threads: torch intra-op threads for the whole measurement (None = current).
        rounds: fixed number of single-call rounds; None = ``blocked_autorange``.
        warmup: warm-up calls after the cold call (not measured).
        min_run_time_s: lower bound on the measuring time of ``blocked_autorange``.
        min_rounds: with ``rounds=None``, measure at least about this many calls.
        cold: time the first call separately (False: the first call is a warm-up).

    Returns:
        A :class:`Timing` in milliseconds.
    """
    if rounds is not None and rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    clock = synced_clock(device)
    with torch_threads(threads) as n_threads:
        cold_ms = _timed_call(fn, clock) if cold else None
        warm_ms = [_timed_call(fn, clock) for _ in range(warmup)]
        if rounds is not None:
            times = [_timed_call(fn, clock) for _ in range(rounds)]
            return Timing(summarize(times), times, cold_ms, warmup, "fixed_rounds", 1, n_threads)
        estimate_s = min(warm_ms or [cold_ms or 0.0]) / 1e3
        timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=n_threads, timer=clock)
        run_time_s = max(min_run_time_s, min_rounds * estimate_s)
        measurement = timer.blocked_autorange(min_run_time=run_time_s)
    times = [t * 1e3 for t in measurement.times]
    per_round = int(measurement.number_per_run)
    return Timing(
        summarize(times), times, cold_ms, warmup, "blocked_autorange", per_round, n_threads
    )


def _lap_round(
    round_fn: Callable[[Callable[[str], None]], Any], clock: Callable[[], float]
) -> dict[str, float]:
    """One round of ``round_fn``; returns ms per lap name plus ``"total"``."""
    laps: dict[str, float] = {}
    start = last = clock()

    def lap(name: str) -> None:
        nonlocal last
        now = clock()
        laps[name] = laps.get(name, 0.0) + (now - last) * 1e3
        last = now

    round_fn(lap)
    laps["total"] = (clock() - start) * 1e3
    return laps


def time_laps(
    round_fn: Callable[[Callable[[str], None]], Any],
    device: str = "cpu",
    threads: int | None = None,
    rounds: int | None = None,
    warmup: int = 1,
    min_run_time_s: float = 1.0,
    min_rounds: int = 5,
) -> dict[str, Timing]:
    """Time a round made of named parts: ``round_fn(lap)`` calls ``lap("dense")`` after the
    dense part, ``lap("post")`` after post-processing, ...; a name may recur (its times add).

    The first round is the cold one; then ``warmup`` rounds; then ``rounds`` rounds, or with
    ``rounds=None`` as many as it takes to reach both ``min_rounds`` and ``min_run_time_s``.

    Returns:
        ``{"total": Timing, "<lap name>": Timing, ...}`` in ms (``method="lap_rounds"``).
    """
    if rounds is not None and rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    clock = synced_clock(device)
    with torch_threads(threads) as n_threads:
        cold = _lap_round(round_fn, clock)
        for _ in range(warmup):
            _lap_round(round_fn, clock)
        measured: list[dict[str, float]] = []
        while True:
            measured.append(_lap_round(round_fn, clock))
            spent_s = sum(m["total"] for m in measured) / 1e3
            if rounds is not None and len(measured) >= rounds:
                break
            if rounds is None and len(measured) >= min_rounds and spent_s >= min_run_time_s:
                break
    out = {}
    for name in measured[0]:
        times = [m.get(name, 0.0) for m in measured]
        out[name] = Timing(
            summarize(times), times, cold.get(name), warmup, "lap_rounds", 1, n_threads
        )
    return out
