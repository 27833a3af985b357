"""Two array idioms of the evaluator's hot path, without ``np.r_`` (10-30 us of Python per call,
as much as the array work itself at these sizes)."""

from __future__ import annotations

import numpy as np


def offsets_of(counts: np.ndarray) -> np.ndarray:
    """(n + 1,) int64 start of each run, then the total: ``[0, cumsum(counts)...]``."""
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def run_starts(values: np.ndarray) -> np.ndarray:
    """(n,) bool: True where a run of equal neighbours begins (always at 0)."""
    out = np.empty(len(values), dtype=bool)
    if out.size:
        out[0] = True
        np.not_equal(values[1:], values[:-1], out=out[1:])
    return out
