"""Window options TadTR needs: a separate evaluation stride and the kept-inside fraction.

Geometry as test_data_items: feature i covers [i - 0.5, i + 0.5] s (datahelpers.UNIT_META).
"""

from __future__ import annotations

import pytest

from tal_bench.config import DataConfig
from tal_bench.data.items import build_items
from tal_bench.errors import TalBenchError

# 8 of 10 s of A lie inside window 0 ([-0.5, 31.5] s): kept at 75 %, dropped at 90 %.
SEGS = [(23.5, 33.5, "A"), (5.0, 9.0, "B")]


def test_min_inside_keeps_an_80_percent_instance_only_at_75(make_ds) -> None:
    ds = make_ds([("v", "val", 100, 100.0, SEGS)])
    strict = build_items(
        ds, DataConfig(mode="window", window=32, window_stride=24), "val", ["v"], train=True
    )
    loose_cfg = DataConfig(mode="window", window=32, window_stride=24, window_min_inside=0.75)
    loose = build_items(ds, loose_cfg, "val", ["v"], train=True)
    w0_strict, w0_loose = strict[0], loose[0]
    assert w0_strict["window_start"] == w0_loose["window_start"] == 0
    assert w0_strict["segments"].tolist() == [[5.0, 9.0]]
    # A truncated to the window's end: [23.5, 31.5]
    assert sorted(w0_loose["segments"].tolist()) == [[5.0, 9.0], [23.5, 31.5]]


def test_evaluation_items_use_the_test_stride(make_ds) -> None:
    ds = make_ds([("v", "val", 100, 100.0, SEGS)])
    cfg = DataConfig(mode="window", window=32, window_stride=8, test_window_stride=24)
    train = build_items(ds, cfg, "val", ["v"], train=False)
    assert cfg.stride(train=True) == 8 and cfg.stride(train=False) == 24
    assert [start for _, start in train.entries] == [0, 24, 48, 68]  # 68 = 100 - 32
    same = DataConfig(mode="window", window=32, window_stride=8)
    assert same.stride(train=False) == 8


def test_min_inside_out_of_range_is_a_user_error(make_ds) -> None:
    ds = make_ds([("v", "val", 100, 100.0, SEGS)])
    with pytest.raises(TalBenchError, match="window_min_inside"):
        build_items(ds, DataConfig(mode="window", window_min_inside=0.0), "val", ["v"], train=False)
