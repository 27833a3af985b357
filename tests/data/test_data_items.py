"""Items: sliding windows (90 % rule, right-aligned last window, padding), resize, truncation.

Geometry of the hand-made datasets (datahelpers.UNIT_META): feature i is centred at i s and covers
[i - 0.5, i + 0.5] s, so a window starting at feature w has t0_s = w and step_s = 1.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from datahelpers import coded_features

from tal_bench.config import DataConfig
from tal_bench.data.features import FeatureMeta
from tal_bench.data.items import (
    FullVideoItems,
    ResizeItems,
    WindowItems,
    build_items,
    grid_to_seconds,
    resize_features,
    stack_items,
    window_starts,
)
from tal_bench.errors import TalBenchError


@pytest.mark.parametrize(
    ("num", "expected"),
    [
        (300, [0, 64, 128, 172]),  # 172 = 300 - 128: right-aligned last window
        (256, [0, 64, 128]),  # 128 + 128 = 256 already reaches the end
        (192, [0, 64]),
        (128, [0]),
        (50, [0]),  # shorter than a window: one padded window
    ],
)
def test_window_starts(num: int, expected: list[int]) -> None:
    assert window_starts(num, 128, 64) == expected


LONG = [
    # in window 0 only 7.5 of 10 s lie inside [-0.5, 127.5] -> dropped there, whole in window 64
    (120.0, 130.0, "A"),
    # 27.5 of 28.5 s (96.5 %) inside window 0 -> kept, truncated to 127.5
    (100.0, 128.5, "B"),
    (290.0, 299.0, "C"),  # only the right-aligned last window (172) holds it
]


def test_window_gt_90_percent_rule(make_ds) -> None:
    ds = make_ds([("v", "val", 300, 300.0, LONG)])
    items = WindowItems(ds, ["v"], window=128, stride=64, train=False)
    assert [start for _, start in items.entries] == [0, 64, 128, 172]
    by_start = {items[i]["window_start"]: items[i] for i in range(len(items))}

    w0 = by_start[0]
    assert w0["labels"].tolist() == [1]
    np.testing.assert_allclose(w0["segments"].numpy(), [[100.0, 127.5]])
    w64 = by_start[64]  # t0_s = 64: A -> [56, 66]; B -> [36, 64.5]
    assert w64["labels"].tolist() == [0, 1]
    np.testing.assert_allclose(w64["segments"].numpy(), [[56.0, 66.0], [36.0, 64.5]])
    w172 = by_start[172]  # last window: A at [-52, -42] is outside, C -> [118, 127]
    assert w172["labels"].tolist() == [2]
    np.testing.assert_allclose(w172["segments"].numpy(), [[118.0, 127.0]])
    assert w172["t0_s"] == 172.0 and w172["step_s"] == 1.0
    # the window's features are the video's features 172 .. 299
    np.testing.assert_array_equal(w172["feats"][0].numpy(), np.arange(172, 300) * 1000.0)
    assert bool(w172["mask"].all())


def test_training_drops_windows_without_gt(make_ds) -> None:
    ds = make_ds([("v", "val", 300, 300.0, LONG)])
    items = WindowItems(ds, ["v"], window=128, stride=64, train=True)
    assert [start for _, start in items.entries] == [0, 64, 172]  # window 128 holds no GT
    # (131, 140) s lies wholly inside windows 64 and 128 and outside 0 and 172
    ds2 = make_ds([("w", "val", 300, 300.0, [(131.0, 140.0, "A")])])
    assert [s for _, s in WindowItems(ds2, ["w"], 128, 64, train=True).entries] == [64, 128]


def test_short_video_is_padded_with_mask(make_ds) -> None:
    ds = make_ds([("s", "val", 50, 50.0, [(10.0, 20.0, "C")])])
    (item,) = [WindowItems(ds, ["s"], window=128, stride=64)[0]]
    assert item["feats"].shape == (3, 128)
    assert item["mask"][:50].all() and not item["mask"][50:].any()
    np.testing.assert_array_equal(item["feats"][:, :50].numpy(), coded_features(50).T)
    assert float(item["feats"][:, 50:].abs().sum()) == 0.0
    np.testing.assert_allclose(item["segments"].numpy(), [[10.0, 20.0]])


def test_first_and_last_windows_reach_the_video_edges(make_ds) -> None:
    # THUMOS geometry: feature 0 is centred at 8/30 s, so t = 0 s is x = -2 in window 0;
    # a GT starting at 0 s is kept whole there instead of losing 1.5 of its grid steps.
    meta = FeatureMeta(fps=30.0, feat_stride=4, clip_len=16, offset_frames=8.0, input_dim=3)
    ds = make_ds([("t", "val", 200, 27.0, [(0.0, 1.0, "A"), (26.0, 27.0, "B")])], meta)
    items = WindowItems(ds, ["t"], window=128, stride=64, train=False)
    first, last = items[0], items[len(items) - 1]
    np.testing.assert_allclose(first["segments"][0].numpy(), [-2.0, 5.5], rtol=1e-6)
    assert last["window_start"] == 72
    seg_s = grid_to_seconds(last["segments"][-1].numpy(), last["t0_s"], last["step_s"])
    np.testing.assert_allclose(seg_s, [26.0, 27.0], rtol=1e-6)


def test_downsample_doubles_the_step(make_ds) -> None:
    ds = make_ds([("v", "val", 300, 300.0, [(150.0, 160.0, "A")])])
    items = WindowItems(ds, ["v"], window=64, stride=32, downsample=2, train=True)
    item = items[0]
    assert item["step_s"] == 2.0 and item["window_start"] == 32
    assert item["t0_s"] == 64.0  # kept feature 32 = original feature 64
    np.testing.assert_array_equal(item["feats"][0, :3].numpy(), [64000.0, 66000.0, 68000.0])
    np.testing.assert_allclose(item["segments"].numpy(), [[43.0, 48.0]])  # (150 - 64) / 2


def _brute_roi_align(feats: np.ndarray, length: int) -> np.ndarray:
    """torchvision roi_align(aligned=True), box [0, T], height 1, written out per sample."""
    dim, num = feats.shape
    out = np.zeros((dim, length))
    x1, x2 = 0.0 - 0.5, num - 0.5  # aligned=True shifts the box by half a pixel
    bin_w = (x2 - x1) / length
    grid = math.ceil((x2 - x1) / length)  # adaptive sampling ratio
    for b in range(length):
        acc = np.zeros(dim)
        for k in range(grid):
            y = x1 + b * bin_w + (k + 0.5) * bin_w / grid
            if y < -1.0 or y > num:
                continue
            y = max(y, 0.0)
            lo = int(math.floor(y))
            if lo >= num - 1:
                hi = lo = num - 1
                y = float(lo)
            else:
                hi = lo + 1
            frac = y - lo
            acc += (1 - frac) * feats[:, lo] + frac * feats[:, hi]
        out[:, b] = acc / grid
    return out


@pytest.mark.parametrize(("num", "length"), [(7, 3), (128, 128), (300, 128), (1000, 16), (50, 128)])
def test_resize_matches_brute_force(num: int, length: int) -> None:
    rng = np.random.default_rng(num)
    feats = rng.normal(size=(4, num))
    fast = resize_features(torch.from_numpy(feats), length).numpy()
    np.testing.assert_allclose(fast, _brute_roi_align(feats, length), rtol=1e-5, atol=1e-5)


def test_resize_hand_examples() -> None:
    f = torch.tensor([[1.0, 3.0, 5.0, 9.0]])  # (C=1, T=4)
    # down by 2: each bin averages its two features
    np.testing.assert_allclose(resize_features(f, 2).numpy(), [[2.0, 7.0]])
    # up: T=2 -> 4 bins sample at -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1)
    g = torch.tensor([[0.0, 4.0]])
    np.testing.assert_allclose(resize_features(g, 4).numpy(), [[0.0, 1.0, 3.0, 4.0]])


def test_resize_items_use_duration_bins(make_ds) -> None:
    ds = make_ds([("r", "train", 256, 256.0, [(64.0, 128.0, "B")]), ("e", "train", 9, 9.0, [])])
    items = ResizeItems(ds, ["r", "e"], length=128, train=True)
    assert len(items) == 1  # training drops the video without GT
    item = items[0]
    assert item["feats"].shape == (3, 128) and bool(item["mask"].all())
    assert item["step_s"] == 2.0 and item["t0_s"] == 1.0  # bin b covers [2b, 2b + 2] s
    np.testing.assert_allclose(item["segments"].numpy(), [[31.5, 63.5]])
    # bin 0 averages features 0 and 1: (0 + 1000) / 2 on channel 0
    assert float(item["feats"][0, 0]) == pytest.approx(500.0)


def test_truncation_keeps_half_of_a_gt(make_ds) -> None:
    ds = make_ds([("long", "val", 1000, 1000.0, [(500.0, 520.0, "A"), (900.0, 905.0, "C")])])
    gen = torch.Generator().manual_seed(3)
    items = FullVideoItems(ds, ["long"], max_len=100, train=True, generator=gen)
    starts = []
    for _ in range(40):
        item = items[0]
        start = item["window_start"]
        starts.append(start)
        assert item["feats"].shape == (3, 100) and item["t0_s"] == float(start)
        segs = item["segments"].numpy()
        assert len(segs) >= 1
        kept_len = segs[:, 1] - segs[:, 0]
        full_len = np.where(item["labels"].numpy() == 0, 20.0, 5.0)  # A is 20 s, C is 5 s
        assert (kept_len >= 0.5 * full_len).any()
        assert segs.min() >= -0.5 and segs.max() <= 99.5  # clipped to the crop
    assert len(set(starts)) > 5  # the crops really move
    again = FullVideoItems(
        ds, ["long"], 100, train=True, generator=torch.Generator().manual_seed(3)
    )
    assert [again[0]["window_start"] for _ in range(40)] == starts


def test_truncation_short_video_crop_ratio_and_eval(make_ds) -> None:
    ds = make_ds([("s", "val", 60, 60.0, [(1.0, 59.0, "B")])])
    items = FullVideoItems(ds, ["s"], max_len=2304, train=True, generator=torch.Generator())
    lengths = {items[0]["feats"].shape[1] for _ in range(30)}
    assert lengths <= set(range(54, 61)) and len(lengths) > 1  # 90-100 % of 60 features
    whole = FullVideoItems(ds, ["s"], max_len=10, train=False)[0]
    assert whole["feats"].shape == (3, 60) and whole["window_start"] == 0
    np.testing.assert_allclose(whole["segments"].numpy(), [[1.0, 59.0]])


def test_stack_items_pads_to_longest(make_ds) -> None:
    ds = make_ds([("a", "val", 5, 5.0, [(0.0, 1.0, "A")]), ("b", "val", 8, 8.0, [])])
    items = FullVideoItems(ds, ["a", "b"], max_len=100)
    feats, mask = stack_items([items[0], items[1]])
    assert feats.shape == (2, 3, 8) and mask.shape == (2, 8)
    assert mask.sum(dim=1).tolist() == [5, 8]
    assert float(feats[0, :, 5:].abs().sum()) == 0.0
    np.testing.assert_array_equal(feats[1].numpy(), coded_features(8).T)


def test_build_items_dispatch_and_errors(make_ds) -> None:
    ds = make_ds([("a", "val", 300, 300.0, LONG), ("b", "test", 50, 50.0, [])])
    cfg = DataConfig(mode="window", window=128, window_stride=64)
    assert isinstance(build_items(ds, cfg, "val", ["a"], train=False), WindowItems)
    assert isinstance(
        build_items(ds, DataConfig(mode="resize"), "val", ["a"], train=False), ResizeItems
    )
    assert isinstance(build_items(ds, DataConfig(mode="full"), "val", ["a"], False), FullVideoItems)
    with pytest.raises(TalBenchError, match="unknown data.mode 'slide'"):
        build_items(ds, DataConfig(mode="slide"), "val", ["a"], train=False)
    with pytest.raises(TalBenchError, match="not in subset 'val'"):
        build_items(ds, cfg, "val", ["b"], train=False)
    with pytest.raises(TalBenchError, match="no videos"):
        build_items(ds, cfg, "val", [], train=False)
