"""Shared pieces of the detector tests: one-thread runs and hand-made window items."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Keep timings sane on the shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def window_item(
    length: int,
    segments: list[list[float]],
    labels: list[int],
    valid: int | None = None,
    c_in: int = 8,
    seed: int = 0,
) -> dict:
    """A random-feature item of ``length`` steps (``valid`` real, the rest zero-padded and
    masked) with the given ground truth in grid units."""
    gen = torch.Generator().manual_seed(seed)
    valid = length if valid is None else valid
    mask = torch.arange(length) < valid
    return {
        "video_id": f"v{seed}",
        "feats": torch.randn(c_in, length, generator=gen) * mask,
        "mask": mask,
        "segments": torch.tensor(segments),
        "labels": torch.tensor(labels),
        "duration_s": 10.0,
        "t0_s": 0.0,
        "step_s": 0.25,
        "window_start": 0,
    }


def fit_steps(
    model: torch.nn.Module, items: list[dict], steps: int, opt: torch.optim.Optimizer
) -> list[float]:
    """``steps`` optimizer steps of ``model.training_step`` on one fixed batch; the losses."""
    losses = []
    for _ in range(steps):
        loss = model.training_step(items)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
