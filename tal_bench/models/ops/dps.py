"""Detector Proposal Sampling (DPS): which cells of ETAD's proposal map enter the PEM.

The proposal map of a video with L valid steps and maximum duration D has the cells ``(d, t)``
with ``d < D' = min(D, L)`` and ``t + d < L``; cell ``(d, t)`` is the snippet-edge proposal
``[t, t + d + 1]``. There are ``n_valid = sum_{d < D'} (L - d)`` of them: 8,256 for
L = D = 128, 6,176 for L = 128, D = 64 (sming256/ETAD, lib/dataset/anet_1_3/dataset.py
``_get_mask``).

Count rules (``K = int(n_valid * ratio)``, at least 1), as in sming256/ETAD lib/utils/sampler.py:

* ``random``: K distinct valid cells, uniformly without replacement, in random order
  (495 of 8,256 at 6 %).
* ``grid``: step ``s = sqrt(1 / ratio)``; rows ``d`` in ``unique(round(arange(1, D', s)))``,
  columns ``t`` in ``unique(round(arange(1, L, s)))`` (round half to even), kept where
  ``t + d < L``: exactly that many cells, no randomness (496 on 128×128 at 6 %).
* ``block``: one square of side ``q = int(sqrt(K))`` at a random corner ``d0`` uniform in
  ``[0, max(0, D' - 2q)]``, ``t0`` uniform in ``[0, max(0, L - 2q - d0)]``; only valid cells are
  kept. When ``D' >= 2q`` the whole square is valid and the count is exactly ``q²``
  (484 on 128×128 at 6 %); otherwise it is at most ``q²``.
* ``ratio == 1`` means no sampling: all ``n_valid`` cells, whatever the strategy.

Randomness comes from ``generator`` (or the global torch RNG), so runs repeat under a seed.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tal_bench.config import SAMPLING_STRATEGIES


def num_valid_cells(length: int, max_duration: int) -> int:
    """Number of valid map cells ``(d, t)`` with ``d < min(D, L)`` and ``t + d < L``."""
    d_eff = min(max_duration, length)
    return sum(length - d for d in range(d_eff))


def valid_cells(
    length: int, max_duration: int, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """All valid cells, duration-major.

    Args:
        length: L, valid steps of the video/window.
        max_duration: D, number of map rows (longest proposal = D steps).
        device: where the index tensors live.

    Returns:
        ``(d, t)``: two (n_valid,) int64 tensors.
    """
    d_eff = min(max_duration, length)
    d_grid, t_grid = torch.meshgrid(
        torch.arange(d_eff, device=device), torch.arange(length, device=device), indexing="ij"
    )  # (D', L) each
    keep = (d_grid + t_grid) < length
    return d_grid[keep], t_grid[keep]


def num_samples(length: int, max_duration: int, ratio: float) -> int:
    """K = ``max(1, int(n_valid * ratio))``: the random-strategy count (and the block's budget)."""
    return max(1, int(num_valid_cells(length, max_duration) * ratio))


def check_dps(ratio: float, strategy: str) -> None:
    """Raise ValueError unless ``0 < ratio <= 1`` and ``strategy`` is known."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"DPS ratio must be in (0, 1], got {ratio}")
    if strategy not in SAMPLING_STRATEGIES:
        use = ", ".join(SAMPLING_STRATEGIES)
        raise ValueError(f"unknown DPS strategy {strategy!r}; use one of {use}")


def sample_cells(
    length: int,
    max_duration: int,
    ratio: float,
    strategy: str = "random",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    count: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample proposal-map cells for one video (call once per video per iteration).

    Args:
        length: L, valid steps of the video/window.
        max_duration: D, number of map rows.
        ratio: sampling ratio in (0, 1]; 1 returns every valid cell.
        strategy: ``"random" | "grid" | "block"`` (see the module docstring for counts).
        generator: CPU random generator; None uses the global torch RNG.
        device: where the returned indices live.
        count: ``random`` only: K instead of ``num_samples`` (Encoder Gradient Sampling's
            chunk rounding, ``tal_bench.models.egs``).

    Returns:
        ``(d, t)``: two (K,) int64 tensors of cell indices.
    """
    check_dps(ratio, strategy)
    if ratio >= 1.0:
        return valid_cells(length, max_duration, device)
    if strategy == "random":
        d_all, t_all = valid_cells(length, max_duration)
        k = num_samples(length, max_duration, ratio) if count is None else count
        pick = torch.randperm(d_all.numel(), generator=generator)[:k]  # (K,) shuffled
        d, t = d_all[pick], t_all[pick]
    elif strategy == "grid":
        d, t = _grid_cells(length, max_duration, ratio)
    else:
        d, t = _block_cells(length, max_duration, ratio, generator)
    return d.to(device), t.to(device)


def lattice(n: int, step: float) -> np.ndarray:
    """Grid positions ``unique(round(arange(1, n, step)))`` (round half to even): the rows and
    columns of the ``grid`` strategy, and Encoder Gradient Sampling's grid of snippets."""
    return np.unique(np.round(np.arange(1, n, step)).astype(np.int64))


def _grid_cells(length: int, max_duration: int, ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    step = math.sqrt(1.0 / ratio)
    rows, cols = lattice(min(max_duration, length), step), lattice(length, step)
    d_grid, t_grid = np.meshgrid(rows, cols, indexing="ij")
    keep = (d_grid + t_grid) < length
    return torch.from_numpy(d_grid[keep]), torch.from_numpy(t_grid[keep])


def _block_side(length: int, max_duration: int, ratio: float) -> int:
    return max(1, int(math.sqrt(num_samples(length, max_duration, ratio))))


def _block_cells(
    length: int, max_duration: int, ratio: float, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    side = _block_side(length, max_duration, ratio)
    d_eff = min(max_duration, length)
    d0 = int(torch.randint(0, max(0, d_eff - 2 * side) + 1, (1,), generator=generator))
    t0 = int(torch.randint(0, max(0, length - 2 * side - d0) + 1, (1,), generator=generator))
    d_grid, t_grid = torch.meshgrid(
        torch.arange(d0, min(d0 + side, d_eff)), torch.arange(t0, t0 + side), indexing="ij"
    )
    keep = (d_grid + t_grid) < length
    return d_grid[keep], t_grid[keep]
