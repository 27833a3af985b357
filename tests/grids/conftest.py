"""Fixtures of the grid tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """The inline executor sets torch threads in this process; put them back afterwards."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
