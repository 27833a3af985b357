"""The evaluator's array idioms against the NumPy expressions they replace."""

from __future__ import annotations

import numpy as np
import pytest

from tal_bench.evaluation.arrays import argsort_stable, offsets_of, run_starts


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("high", [1, 7, 2**16, 2**40])
def test_argsort_stable_equals_numpy_stable_argsort(seed, high):
    rng = np.random.default_rng(seed)
    key = rng.integers(0, high, 5000, dtype=np.int64)  # many ties when ``high`` is small
    np.testing.assert_array_equal(argsort_stable(key), np.argsort(key, kind="stable"))


def test_argsort_stable_full_width_keys_fall_back():
    """uint64 keys leave no bits for the index: NumPy's own stable sort answers."""
    key = np.array([2**63 + 5, 3, 2**63 + 5, 0, 3], dtype=np.uint64)
    np.testing.assert_array_equal(argsort_stable(key, key_bits=64), [3, 1, 4, 0, 2])


def test_argsort_stable_small_cases():
    assert argsort_stable(np.zeros(0, dtype=np.int64)).size == 0
    np.testing.assert_array_equal(argsort_stable(np.array([4])), [0])
    np.testing.assert_array_equal(argsort_stable(np.array([1, 0, 1, 0])), [1, 3, 0, 2])


def test_offsets_and_run_starts_by_hand():
    np.testing.assert_array_equal(offsets_of(np.array([2, 0, 3])), [0, 2, 2, 5])
    np.testing.assert_array_equal(run_starts(np.array([5, 5, 1, 1, 1, 5])), [1, 0, 1, 0, 0, 1])
    assert run_starts(np.zeros(0)).size == 0
