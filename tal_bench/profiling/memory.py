"""Peak memory of a measured block: CPU resident set, CUDA allocator and NVML per process.

CPU: the kernel's high-water mark ``VmHWM`` in ``/proc/self/status``, reset before the block by
writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0, proc_pid_clear_refs(5)). Where the
reset is not permitted (or there is no /proc), the peak is ``getrusage(RUSAGE_SELF).ru_maxrss``
over the process lifetime, which equals the block's peak only in a fresh process: the method is
recorded so callers can isolate runs in a subprocess (see ``pipelines/profile.py``).
``tracemalloc`` does not see tensor storage, so it is not used.

CUDA: ``torch.cuda.reset_peak_memory_stats`` before, ``max_memory_allocated`` (live tensors) and
``max_memory_reserved`` (caching allocator) after; NVML's per-process figure additionally holds
the CUDA context and is reported separately.

Tensor peak (``TensorPeak``, any device): the CPU has no allocator statistics like CUDA's, and
the RSS also moves with glibc's caching (``runtime.keep_freed_memory``) and with whatever the
process allocated before. ``TensorPeak`` counts the bytes of the tensor storages created inside
the block (every op's new outputs, seen by a ``TorchDispatchMode``: activations, autograd's
saved tensors, gradients, optimizer state), each until the storage is freed, and keeps the
maximum: the CPU counterpart of ``max_memory_allocated`` minus what was allocated before the
block. It sees torch's tensors only and slows every op by a Python call (about 5x on ETAD's
small ops), so it measures a few steps, not a whole training.
"""

from __future__ import annotations

import resource
import sys
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from tal_bench.profiling.nvml import Nvml

_MIB = 2**20
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(key: str) -> int | None:
    """A ``kB`` field of /proc/self/status (``VmRSS``, ``VmHWM``), or None without /proc."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def current_rss_mib() -> float:
    """Resident set size of this process now (MiB)."""
    kib = _status_kib("VmRSS")
    if kib is not None:
        return kib / 1024
    import psutil

    return psutil.Process().memory_info().rss / _MIB


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process; False if not permitted/possible."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def reset_peak_mem(device: str = "cpu") -> str:
    """Reset the peak-memory counter of ``device`` and name it: ``cuda_max_allocated``,
    ``cpu_vmhwm`` (``VmHWM``, reset) or ``cpu_ru_maxrss`` (no reset possible: the lifetime peak)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()  # the current device, which peak_mem_mib reads
        torch.cuda.reset_peak_memory_stats()
        return "cuda_max_allocated"
    reset = reset_peak_rss() and _status_kib("VmHWM") is not None
    return "cpu_vmhwm" if reset else "cpu_ru_maxrss"


def peak_mem_mib(kind: str) -> float:
    """The peak (MiB) of the counter :func:`reset_peak_mem` named ``kind``."""
    if kind == "cuda_max_allocated":
        return torch.cuda.max_memory_allocated() / _MIB
    if kind == "cpu_vmhwm":
        return (_status_kib("VmHWM") or 0) / 1024
    return lifetime_peak_rss_mib()


def lifetime_peak_rss_mib() -> float:
    """``ru_maxrss`` of this process: KiB on Linux, bytes on macOS (getrusage(2))."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / _MIB if sys.platform == "darwin" else peak / 1024


@dataclass
class MemoryPeaks:
    """Peaks over one block (MiB); GPU fields are None on CPU or without NVML."""

    peak_rss_mib: float
    rss_before_mib: float
    rss_method: str  # "vmhwm_clear_refs" | "ru_maxrss_lifetime"
    gpu_peak_allocated_mib: float | None = None
    gpu_peak_reserved_mib: float | None = None
    gpu_nvml_process_mib: float | None = None

    def as_row(self) -> dict[str, Any]:
        """Row columns."""
        return dict(self.__dict__)


class PeakMemory:
    """Context manager measuring peak memory of the block it wraps.

    Args:
        device: "cpu" or a CUDA device; CUDA adds allocator and NVML peaks.
        nvml: an open :class:`Nvml` session to read the per-process figure from (optional).

    Example:
        >>> with PeakMemory("cpu") as pm:
        ...     _ = torch.ones(1024, 1024)
        >>> pm.result.peak_rss_mib >= pm.result.rss_before_mib
        True
    """

    def __init__(self, device: str = "cpu", nvml: Nvml | None = None) -> None:
        self.device = torch.device(device)
        self.nvml = nvml
        self.result: MemoryPeaks | None = None
        self._kind = ""
        self._before = 0.0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        self._before = current_rss_mib()
        self._kind = reset_peak_mem("cpu")
        return self

    def __exit__(self, *exc: object) -> None:
        method = "vmhwm_clear_refs" if self._kind == "cpu_vmhwm" else "ru_maxrss_lifetime"
        result = MemoryPeaks(peak_mem_mib(self._kind), self._before, method)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            result.gpu_peak_allocated_mib = torch.cuda.max_memory_allocated(self.device) / _MIB
            result.gpu_peak_reserved_mib = torch.cuda.max_memory_reserved(self.device) / _MIB
            if self.nvml is not None:
                result.gpu_nvml_process_mib = self.nvml.process_memory_mib()
        self.result = result


class TensorPeak(TorchDispatchMode):
    """Peak bytes of the tensor storages created inside the block (module docstring).

    A storage is new when an op returns it and none of the op's inputs holds it (views and
    in-place results are not new); it counts until it is freed (a weakref finaliser).

    Example:
        >>> with TensorPeak() as tp:
        ...     x = torch.ones(256, 1024)  # 1 MiB
        ...     y = x * 2  # 2 MiB live
        ...     del x, y
        >>> tp.peak_mib, tp.live_mib
        (2.0, 0.0)
    """

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[int, int] = {}  # storage id -> bytes
        self.live_bytes = 0
        self.peak_bytes = 0

    @property
    def peak_mib(self) -> float:
        """Highest total of live new storages, MiB."""
        return self.peak_bytes / _MIB

    @property
    def live_mib(self) -> float:
        """New storages still alive now, MiB."""
        return self.live_bytes / _MIB

    def _free(self, key: int) -> None:
        self.live_bytes -= self._live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        inputs = None
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = storage._cdata
            if key in self._live:
                continue
            if inputs is None:
                inputs = {
                    a.untyped_storage()._cdata
                    for a in tree_flatten((args, kwargs))[0]
                    if isinstance(a, torch.Tensor)
                }
            if key in inputs:
                continue
            self._live[key] = storage.nbytes()
            self.live_bytes += self._live[key]
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
            weakref.finalize(storage, self._free, key)
        return out
