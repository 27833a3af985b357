"""Detector Proposal Sampling: exact counts of each strategy, validity, repeatability."""

from __future__ import annotations

import pytest
import torch

from tal_bench.models.ops.dps import (
    num_samples,
    num_valid_cells,
    sample_cells,
    valid_cells,
)


def _brute_valid(length: int, max_duration: int) -> set[tuple[int, int]]:
    return {(d, t) for d in range(max_duration) for t in range(length) if t + d < length}


@pytest.mark.parametrize(("length", "max_duration"), [(128, 128), (128, 64), (50, 64), (7, 3)])
def test_valid_cells_match_brute_force(length: int, max_duration: int) -> None:
    d, t = valid_cells(length, max_duration)
    cells = set(zip(d.tolist(), t.tolist(), strict=True))
    assert cells == _brute_valid(length, max_duration)
    assert len(cells) == d.numel() == num_valid_cells(length, max_duration)


def test_documented_map_sizes() -> None:
    assert num_valid_cells(128, 128) == 8256  # 128 * 129 / 2
    assert num_valid_cells(128, 64) == 6176  # 64 * 128 - 63 * 64 / 2


@pytest.mark.parametrize(
    ("strategy", "length", "max_duration", "count"),
    [
        ("random", 128, 128, 495),  # int(0.06 * 8256) = int(495.36)
        ("grid", 128, 128, 496),  # 32 rows x 32 columns, t + d < 128
        ("block", 128, 128, 484),  # side int(sqrt(495)) = 22, 22^2
        ("random", 128, 64, 370),  # int(0.06 * 6176) = int(370.56)
        ("grid", 128, 64, 376),  # 16 rows x 32 columns, t + d < 128
        ("block", 128, 64, 361),  # side int(sqrt(370)) = 19
    ],
)
def test_counts_at_six_percent(strategy: str, length: int, max_duration: int, count: int) -> None:
    valid = _brute_valid(length, max_duration)
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        d, t = sample_cells(length, max_duration, 0.06, strategy, generator=gen)
        cells = list(zip(d.tolist(), t.tolist(), strict=True))
        assert len(cells) == len(set(cells)) == count
        assert set(cells) <= valid


def test_grid_hand_worked() -> None:
    # ratio 1/4 -> step 2: rows and columns {1, 3, 5, 7} on an 8 x 8 map; t + d < 8 leaves
    # d=1: t in {1,3,5}; d=3: t in {1,3}; d=5: t=1 -> 6 cells.
    d, t = sample_cells(8, 8, 0.25, "grid")
    assert sorted(zip(d.tolist(), t.tolist(), strict=True)) == [
        (1, 1), (1, 3), (1, 5), (3, 1), (3, 3), (5, 1)
    ]  # fmt: skip


def test_block_is_a_contiguous_square() -> None:
    d, t = sample_cells(128, 128, 0.06, "block", generator=torch.Generator().manual_seed(5))
    assert d.max() - d.min() == 21 and t.max() - t.min() == 21
    assert d.min() <= 128 - 44 and t.min() <= 128 - 44 - d.min()


@pytest.mark.parametrize("strategy", ["random", "grid", "block"])
def test_ratio_one_is_every_cell(strategy: str) -> None:
    d, t = sample_cells(40, 16, 1.0, strategy)
    assert set(zip(d.tolist(), t.tolist(), strict=True)) == _brute_valid(40, 16)


def test_random_is_seeded_and_fresh() -> None:
    first = sample_cells(128, 64, 0.06, generator=torch.Generator().manual_seed(0))
    again = sample_cells(128, 64, 0.06, generator=torch.Generator().manual_seed(0))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    gen = torch.Generator().manual_seed(0)
    one, two = (
        sample_cells(128, 64, 0.06, generator=gen),
        sample_cells(128, 64, 0.06, generator=gen),
    )
    assert not torch.equal(one[1], two[1])


def test_tiny_maps_and_bad_arguments() -> None:
    assert num_samples(3, 3, 0.01) == 1  # at least one proposal
    assert sample_cells(3, 3, 0.01)[0].numel() == 1
    with pytest.raises(ValueError, match="ratio"):
        sample_cells(10, 10, 0.0)
    with pytest.raises(ValueError, match="strategy"):
        sample_cells(10, 10, 0.5, "fps")
