"""Array idioms of the evaluator's hot path: run offsets and starts without ``np.r_`` (10-30 us
of Python per call, as much as the array work itself at these sizes), and a fast stable argsort
of small non-negative integers."""

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


def argsort_stable(key: np.ndarray, key_bits: int | None = None) -> np.ndarray:
    """(n,) int64 stable argsort of non-negative integer keys.

    NumPy's argsort of tens of thousands of integers is a comparison sort (or, for 16-bit keys,
    a radix sort) that runs several times slower here than its plain sort of 64-bit values,
    which is vectorised. So each key is packed above its index: sorting the packed values
    sorts by key, then by index, which is the stable order, and the low bits are the index.

    Args:
        key: (n,) non-negative integers.
        key_bits: bits the keys need (their dtype's width, say), if known; else from the max.
    """
    n = key.size
    index_bits = max(1, int(n - 1).bit_length())
    if key_bits is None:
        key_bits = int(key.max(initial=0)).bit_length()
    if key_bits + index_bits > 64:  # no room for the index: NumPy's own stable sort
        return np.argsort(key, kind="stable")
    packed = key.astype(np.uint64)
    packed <<= np.uint64(index_bits)
    packed |= np.arange(n, dtype=np.uint64)
    packed.sort()
    packed &= np.uint64((1 << index_bits) - 1)
    return packed.view(np.int64)
