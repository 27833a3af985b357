"""A small, failure-tolerant wrapper over NVML (``nvidia-ml-py``, imported as ``pynvml``).

Without the package, the driver or a GPU, :class:`Nvml` is simply unavailable: every query
returns None and :attr:`Nvml.note` says why, once, for the record (``NVMLError_LibraryNotFound``
is what ``nvmlInit`` raises on a machine without the NVIDIA driver).
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

log = logging.getLogger(__name__)
_MIB = 2**20


class Nvml:
    """NVML session for one GPU. Use as a context manager or call :meth:`close`.

    Args:
        cuda_index: torch CUDA device index to watch; it is matched to NVML by UUID so that
            ``CUDA_VISIBLE_DEVICES`` remapping is respected (falls back to the same index).
    """

    def __init__(self, cuda_index: int = 0) -> None:
        self.available = False
        self.note: str | None = None
        self._nvml: Any = None
        self._handle: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - ImportError, NVMLError_* (no driver), OSError
            self.note = f"NVML unavailable ({type(exc).__name__}: {exc}); GPU fields are null"
            log.info(self.note)
            return
        self._nvml = pynvml
        try:
            self._handle = self._find_handle(cuda_index)
        except Exception as exc:  # noqa: BLE001 - no GPU at that index
            self.note = f"NVML has no GPU for cuda:{cuda_index} ({type(exc).__name__}: {exc})"
            log.info(self.note)
            self.close()
            return
        self.available = True

    def _find_handle(self, cuda_index: int) -> Any:
        nv = self._nvml
        try:
            import torch

            if torch.cuda.is_available():
                uuid = str(torch.cuda.get_device_properties(cuda_index).uuid)
                uuid = uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"
                return nv.nvmlDeviceGetHandleByUUID(uuid)
        except Exception:  # noqa: BLE001, S110 - fall back to the plain index below
            pass
        return nv.nvmlDeviceGetHandleByIndex(cuda_index)

    def utilization_pct(self) -> float | None:
        """GPU duty cycle over NVML's last sample period (percent of time a kernel ran)."""
        if not self.available:
            return None
        return float(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)

    def memory_used_mib(self) -> float | None:
        """Device memory in use by all processes (MiB)."""
        if not self.available:
            return None
        return self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used / _MIB

    def process_memory_mib(self, pid: int | None = None) -> float | None:
        """Device memory NVML attributes to ``pid`` (default: this process), in MiB.

        None when NVML cannot tell: the PID is not listed (containers with their own PID
        namespace) or NVML reports the value as not available.
        """
        if not self.available:
            return None
        pid = os.getpid() if pid is None else pid
        try:
            procs = self._nvml.nvmlDeviceGetComputeRunningProcesses(self._handle)
        except Exception:  # noqa: BLE001 - NVMLError_NotSupported on some boards
            return None
        used = [p.usedGpuMemory for p in procs if p.pid == pid and p.usedGpuMemory is not None]
        return sum(used) / _MIB if used else None

    def close(self) -> None:
        """Shut NVML down (safe to call twice)."""
        if self._nvml is not None:
            with contextlib.suppress(Exception):  # already shut down
                self._nvml.nvmlShutdown()
        self._nvml = None
        self.available = False

    def __enter__(self) -> Nvml:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
