"""Fixtures for the data-layer tests (helpers live in datahelpers.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from datahelpers import UNIT_META, VideoSpec, write_dataset

from tal_bench.data.datasets import TalDataset
from tal_bench.data.features import FeatureMeta


@pytest.fixture
def make_ds(tmp_path: Path) -> Callable[..., TalDataset]:
    """Factory: ``make_ds(specs, meta=UNIT_META)`` -> TalDataset over coded .npy features."""

    def build(specs: list[VideoSpec], meta: FeatureMeta = UNIT_META) -> TalDataset:
        return write_dataset(tmp_path, specs, meta)

    return build
