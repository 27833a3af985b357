"""Where and with what a run was made: machine, git commit, library versions.

Everything here is best effort and never raises: a missing ``git``, ``/proc/cpuinfo`` or NVML
becomes an ``error``/``*_error`` entry saying why, so that recording a run never fails because
the environment is unusual (the same policy as pytest-benchmark's ``machine_info``).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

# Distribution names (as pip knows them) -> key in meta.json["versions"].
_DISTRIBUTIONS = {
    "torch": "torch",
    "numpy": "numpy",
    "scipy": "scipy",
    "pandas": "pandas",
    "fvcore": "fvcore",
    "psutil": "psutil",
    "nvidia-ml-py": "nvidia-ml-py",
}

_GIT_TIMEOUT_S = 10.0


def library_versions() -> dict[str, str | None]:
    """Versions of Python, tal_bench and the libraries whose behaviour affects results.

    Versions come from the installed distribution metadata, so nothing heavy (torch) is imported.

    Returns:
        ``{"python": "3.11.9", "tal_bench": "0.1.0", "torch": "2.3.1", ...}``; a library that is
        not installed maps to ``None``.
    """
    from tal_bench import __version__

    versions: dict[str, str | None] = {
        "python": platform.python_version(),
        "tal_bench": __version__,
    }
    for dist, key in _DISTRIBUTIONS.items():
        try:
            versions[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[key] = None
    return versions


def _git(args: list[str], cwd: Path) -> str:
    out = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=_GIT_TIMEOUT_S,
        check=True,
    )
    return out.stdout.strip()


def commit_info(repo_dir: str | Path | None = None) -> dict[str, Any]:
    """Git commit of the tal_bench source tree (or of ``repo_dir``).

    Args:
        repo_dir: a directory inside the repository to describe; default: the directory holding
            the ``tal_bench`` package, so the record names the code that produced it even when the
            command runs elsewhere.

    Returns:
        ``{"id": <40-hex sha>, "short": <8 hex>, "dirty": bool, "branch": str | None}``, or
        ``{"id": None, "dirty": None, "branch": None, "error": <why>}`` outside a git checkout.
    """
    if repo_dir is None:
        repo_dir = Path(__file__).resolve().parents[1]
    repo_dir = Path(repo_dir)
    try:
        sha = _git(["rev-parse", "HEAD"], repo_dir)
        # Untracked files are ignored: they do not change the code that ran.
        dirty = bool(_git(["status", "--porcelain", "--untracked-files=no"], repo_dir))
        branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], repo_dir)
    except FileNotFoundError:
        return _no_commit("git is not installed")
    except subprocess.TimeoutExpired:
        return _no_commit(f"git did not answer within {_GIT_TIMEOUT_S:.0f} s")
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        return _no_commit(f"not a git checkout ({detail.strip().splitlines()[0]})")
    return {
        "id": sha,
        "short": sha[:8],
        "dirty": dirty,
        "branch": None if branch == "HEAD" else branch,
    }


def _no_commit(reason: str) -> dict[str, Any]:
    return {"id": None, "short": None, "dirty": None, "branch": None, "error": reason}


def _cpuinfo() -> str:
    """The text of ``/proc/cpuinfo``, empty where there is none (macOS, Windows)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _cpu_model(cpuinfo: str) -> str | None:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        # x86 says "model name"; some ARM kernels only give "Hardware" or "CPU part".
        if key.strip() in ("model name", "Hardware", "Processor"):
            return value.strip()
    return platform.processor() or None


# Widest first: PyTorch's CPU kernels pick their vector width from these, and different widths
# round float sums differently, so two CPUs with one model name can train to different numbers.
SIMD_LEVELS = ("avx512f", "avx2", "avx", "sse4_2", "sve", "asimd", "neon")


def cpu_simd(cpuinfo: str) -> str | None:
    """The widest SIMD level in the ``flags`` / ``Features`` lines of a ``/proc/cpuinfo`` text."""
    found: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            found.update(value.split())
    return next((level for level in SIMD_LEVELS if level in found), None)


def gpu_info() -> dict[str, Any]:
    """NVIDIA GPUs as NVML reports them.

    Returns:
        ``{"gpus": [{"index", "name", "driver", "memory_mib"}, ...], "gpu_error": None}``, or
        ``{"gpus": None, "gpu_error": <why>}`` when NVML is missing or finds no driver.
    """
    try:
        import pynvml
    except ImportError:
        return {"gpus": None, "gpu_error": "nvidia-ml-py (pynvml) is not installed"}
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return {"gpus": None, "gpu_error": f"NVML unavailable: {exc}"}
    try:
        driver = _as_str(pynvml.nvmlSystemGetDriverVersion())
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                {
                    "index": i,
                    "name": _as_str(pynvml.nvmlDeviceGetName(handle)),
                    "driver": driver,
                    "memory_mib": round(mem.total / 2**20),
                }
            )
    except pynvml.NVMLError as exc:
        return {"gpus": None, "gpu_error": f"NVML query failed: {exc}"}
    finally:
        pynvml.nvmlShutdown()
    if not gpus:
        return {"gpus": None, "gpu_error": "NVML found no GPU"}
    return {"gpus": gpus, "gpu_error": None}


def _as_str(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def machine_info() -> dict[str, Any]:
    """Host, OS, CPU, RAM and GPUs of this machine.

    Returns:
        ``hostname``, ``os`` (platform string), ``machine`` (architecture), ``cpu_model``,
        ``cpu_simd`` (widest SIMD level, see :func:`cpu_simd`), ``cpu_logical``,
        ``cpu_physical``, ``ram_gib`` (total, 2 decimals), ``gpus`` and ``gpu_error`` (see
        :func:`gpu_info`).
    """
    cpuinfo = _cpuinfo()  # read once for the model name and the SIMD level
    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(cpuinfo),
        "cpu_simd": cpu_simd(cpuinfo),
        "cpu_logical": os.cpu_count(),
        "cpu_physical": None,
        "ram_gib": None,
    }
    try:
        import psutil

        info["cpu_physical"] = psutil.cpu_count(logical=False)
        info["ram_gib"] = round(psutil.virtual_memory().total / 2**30, 2)
    except ImportError:
        info["psutil_error"] = "psutil is not installed"
    info.update(gpu_info())
    return info
