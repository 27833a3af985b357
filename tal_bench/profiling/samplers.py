"""Background utilisation sampler: CPU (system, per core, this process), RSS, GPU (NVML).

A daemon thread takes one sample every ``interval_s`` seconds (the study sampled "the
averaged use over the past 0.5 s"). Each sample describes the interval since the previous
sample: ``psutil.cpu_percent`` compares CPU times with its previous call, and NVML's
utilisation is a duty cycle over its own last period. Samples carry the *phase* label that
was active (``"L=30000"``, ``"train epoch 3"``, ...); :meth:`UtilizationSampler.begin` and
:meth:`UtilizationSampler.end` take an extra sample at the phase boundaries so that even a
block shorter than one interval gets one sample, and summaries are weighted by ``dt_s``.

Columns of a sample: ``t_s`` (since start), ``dt_s``, ``phase``, ``cpu_pct`` (all logical
CPUs, 0-100), ``cpu_pct_per_core`` (list, 0-100 each), ``proc_cpu_pct`` (this process, percent
of one logical CPU, may exceed 100), ``rss_mib``, ``gpu_util_pct``, ``gpu_mem_used_mib``,
``gpu_proc_mem_mib`` (None without NVML).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from tal_bench.profiling.nvml import Nvml

_MIB = 2**20


class UtilizationSampler:
    """Samples utilisation in a background thread until :meth:`stop`.

    Args:
        interval_s: seconds between samples (> 0).
        nvml: an open :class:`Nvml` for GPU fields, or None for CPU-only sampling.
        stream_to: JSONL file that gets every sample as soon as it is taken (truncated at
            :meth:`start`), so a long or crashed run keeps its timeline.
    """

    def __init__(
        self,
        interval_s: float = 0.5,
        nvml: Nvml | None = None,
        stream_to: str | Path | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.interval_s = interval_s
        self.nvml = nvml
        self.samples: list[dict[str, Any]] = []
        self._phase = "idle"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc = psutil.Process()
        self._t0 = 0.0
        self._last = 0.0
        self._stream_path = Path(stream_to) if stream_to is not None else None
        self._stream: Any = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> UtilizationSampler:
        """Prime the psutil counters and start the sampling thread."""
        if self._thread is not None:
            raise RuntimeError("sampler already started")
        psutil.cpu_percent(percpu=True)  # first call only sets the baseline
        self._proc.cpu_percent()
        if self._stream_path is not None:
            self._stream = self._stream_path.open("w", encoding="utf-8")
        self._t0 = self._last = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="tal-bench-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop and join the thread (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self._stream is not None:
                self._stream.close()
                self._stream = None

    @property
    def running(self) -> bool:
        """True while the sampling thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> UtilizationSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        k = 1
        while True:
            # Sample k is due at t0 + k * interval: no drift from the sampling work itself.
            delay = self._t0 + k * self.interval_s - time.perf_counter()
            if self._stop.wait(max(delay, 0.0)):
                return
            self.sample_now()
            k = max(k + 1, int((time.perf_counter() - self._t0) / self.interval_s) + 1)

    # -- sampling --------------------------------------------------------------------------
    def sample_now(self) -> dict[str, Any]:
        """Take one sample of the interval since the previous one (thread-safe)."""
        with self._lock:
            now = time.perf_counter()
            per_core = [float(x) for x in psutil.cpu_percent(percpu=True)]
            sample = {
                "t_s": now - self._t0,
                "dt_s": now - self._last,
                "phase": self._phase,
                "cpu_pct": sum(per_core) / len(per_core) if per_core else None,
                "cpu_pct_per_core": per_core,
                "proc_cpu_pct": float(self._proc.cpu_percent()),
                "rss_mib": self._proc.memory_info().rss / _MIB,
                **self._gpu_fields(),
            }
            self._last = now
            self.samples.append(sample)
            if self._stream is not None:
                self._stream.write(json.dumps(sample) + "\n")
                self._stream.flush()
            return sample

    def _gpu_fields(self) -> dict[str, float | None]:
        nv = self.nvml
        if nv is None or not nv.available:
            return {"gpu_util_pct": None, "gpu_mem_used_mib": None, "gpu_proc_mem_mib": None}
        return {
            "gpu_util_pct": nv.utilization_pct(),
            "gpu_mem_used_mib": nv.memory_used_mib(),
            "gpu_proc_mem_mib": nv.process_memory_mib(),
        }

    # -- phases ----------------------------------------------------------------------------
    def begin(self, phase: str) -> None:
        """Close the current interval and label the following samples ``phase``."""
        if self.running:
            self.sample_now()
        with self._lock:
            self._phase = phase

    def end(self) -> None:
        """Close the current phase with a sample; later samples are labelled ``idle``."""
        self.begin("idle")

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """``with sampler.phase("L=1000"): ...`` = :meth:`begin` + :meth:`end`."""
        self.begin(name)
        try:
            yield
        finally:
            self.end()

    # -- results ---------------------------------------------------------------------------
    def phase_samples(self, phase: str) -> list[dict[str, Any]]:
        """Samples labelled ``phase``."""
        with self._lock:
            return [s for s in self.samples if s["phase"] == phase]

    def summary(self, phase: str) -> dict[str, float | int | None]:
        """Time-weighted means and maxima over the samples of ``phase``.

        Returns:
            ``cpu_util_mean``/``_max`` (system CPU %), ``proc_cpu_mean`` (% of one CPU),
            ``rss_max_mib``, ``gpu_util_mean``/``_max``, ``gpu_mem_max_mib``,
            ``gpu_proc_mem_max_mib`` and ``util_samples``; None where nothing was measured.
        """
        samples = self.phase_samples(phase)
        # Utilisation maxima skip the short boundary intervals (a few ms of CPU time read as
        # 0 or 100 %) unless there is nothing else.
        full = [s for s in samples if s["dt_s"] >= self.interval_s / 2] or samples
        return {
            "cpu_util_mean": _weighted_mean(samples, "cpu_pct"),
            "cpu_util_max": _max(full, "cpu_pct"),
            "proc_cpu_mean": _weighted_mean(samples, "proc_cpu_pct"),
            "rss_max_mib": _max(samples, "rss_mib"),
            "gpu_util_mean": _weighted_mean(samples, "gpu_util_pct"),
            "gpu_util_max": _max(full, "gpu_util_pct"),
            "gpu_mem_max_mib": _max(samples, "gpu_mem_used_mib"),
            "gpu_proc_mem_max_mib": _max(samples, "gpu_proc_mem_mib"),
            "util_samples": len(samples),
        }


def _weighted_mean(samples: list[dict[str, Any]], key: str) -> float | None:
    pairs = [(s[key], s["dt_s"]) for s in samples if s.get(key) is not None and s["dt_s"] > 0]
    total = sum(dt for _, dt in pairs)
    return sum(v * dt for v, dt in pairs) / total if total > 0 else None


def _max(samples: list[dict[str, Any]], key: str) -> float | None:
    values = [s[key] for s in samples if s.get(key) is not None]
    return max(values) if values else None
