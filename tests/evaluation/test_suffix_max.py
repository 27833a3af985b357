"""The precision envelope (running maximum from the right inside each group): the one-pass
bit-key path and the padded / doubling path, each against a plain loop."""

from __future__ import annotations

import numpy as np
import pytest

from tal_bench.evaluation.map import group_suffix_max, segment_suffix_max


def loop_suffix_max(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    out = values.copy()
    for i in range(len(values) - 2, -1, -1):
        if group[i] == group[i + 1]:
            out[i] = max(out[i], out[i + 1])
    return out


def case(seed: int, n_groups: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    group = np.sort(rng.integers(0, n_groups, size))
    rank = rng.integers(1, 50, size)
    values = rank / (rank + rng.integers(0, 40_000, size))  # precisions: in (0, 1]
    values[rng.random(size) < 0.1] = 1.0  # exact ties with the top
    return values, group


@pytest.mark.parametrize("seed", range(30))
def test_bit_key_path_equals_the_loop(seed: int) -> None:
    values, group = case(seed, n_groups=1 + seed * 4, size=50 + 37 * seed)
    out = group_suffix_max(values, group, 1 + seed * 4)
    assert out is not None
    np.testing.assert_array_equal(out, loop_suffix_max(values, group))  # exact, not close


@pytest.mark.parametrize("seed", range(10))
def test_padded_and_doubling_paths_equal_the_loop(seed: int) -> None:
    values, group = case(seed, n_groups=3 if seed % 2 else 300, size=400)
    end = np.r_[np.flatnonzero(group[1:] != group[:-1]) + 1, group.size]
    segment_end = end[np.searchsorted(end, np.arange(group.size), side="right")]
    np.testing.assert_array_equal(
        segment_suffix_max(values, segment_end), loop_suffix_max(values, group)
    )


def test_too_many_groups_for_the_bits_falls_back() -> None:
    # values from 1e-300 to 1 span about 2^62 bit patterns: no room left for 2000 groups
    values = np.array([1e-300, 1.0, 0.5])
    group = np.array([0, 0, 1999])
    assert group_suffix_max(values, group, 2000) is None
    assert group_suffix_max(values[:0], group[:0], 2000).size == 0
