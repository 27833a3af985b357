"""Process-level settings that every tal-bench process applies before heavy work.

glibc serves allocations above its mmap threshold (128 KiB, growing to at most 32 MiB) with
fresh ``mmap`` pages and hands freed heap tops back to the kernel, so every new multi-MiB
tensor page-faults on first touch. ETAD's inference makes many such tensors (RoI features of
~15 MB per batch and stage), and on 2 CPU cores those faults cost as much as the matmuls:
keeping freed memory in the process made ``Etad.predict`` about 1.3x faster
(``experiments/bench_allocator.py`` measures it side by side). The price is that the process's
RSS does not shrink after a peak, and a later allocation can reuse resident pages without
raising it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import tempfile
from pathlib import Path

from tal_bench.errors import TalBenchError

M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 256 << 20  # requests above this still get their own mapping
TRIM_THRESHOLD_BYTES = 2 << 30  # give freed heap back only above 2 GiB of free top

_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD_BYTES),
    "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD_BYTES),
}


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse, here and in child processes.

    Sets the ``MALLOC_*_`` variables (read by children at start: spawned grid workers) unless
    the user set them, and calls ``mallopt`` for this process. A no-op off glibc.

    Returns:
        True when this process's allocator was tuned.
    """
    for key, value in _ENV.items():
        os.environ.setdefault(key, value)
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc without mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(M_MMAP_THRESHOLD, int(os.environ["MALLOC_MMAP_THRESHOLD_"]))
    ok &= mallopt(M_TRIM_THRESHOLD, int(os.environ["MALLOC_TRIM_THRESHOLD_"]))
    return bool(ok)


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; records and reports are meant to be shared like any file
# written with open(): 0666 minus the umask at import time.
FILE_MODE = 0o666 & ~_umask()


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` so that readers see the old or the new file, never a
    mix: a temp file in the same folder (made if missing), fsync, ``os.replace``.

    Raises:
        TalBenchError: the folder cannot be written.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise unwritable(path.parent, exc) from None
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise unwritable(path.parent, exc) from None
        raise


def unwritable(where: Path, exc: OSError) -> TalBenchError:
    """The one-line error for a folder that cannot be written."""
    return TalBenchError(
        f"cannot write to {where} ({exc.strerror or exc}); choose a writable --out directory"
    )
