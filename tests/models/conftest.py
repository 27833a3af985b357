"""Fixtures shared by the model tests; the closed-form MAC counts are shared with the profiling
tests (``tests/profiling/analytic_macs.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "profiling"))


@pytest.fixture
def one_thread():
    """One intra-op thread: small convs on a busy 2-core machine spin-wait on a second one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
