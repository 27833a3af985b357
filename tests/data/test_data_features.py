"""Feature files (.npy / .pt / .h5), the feature store, and the seconds <-> grid conversion."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from datahelpers import coded_features

from tal_bench.data.features import FeatureMeta, FeatureStore
from tal_bench.data.items import grid_to_seconds, seconds_to_grid
from tal_bench.errors import TalBenchError


def _write_all_formats(tmp_path: Path, feats: dict[str, np.ndarray]) -> dict[str, Path]:
    (tmp_path / "npy").mkdir()
    (tmp_path / "pt").mkdir()
    with h5py.File(tmp_path / "feats.h5", "w") as fh:
        for vid, arr in feats.items():
            np.save(tmp_path / "npy" / f"{vid}.npy", arr)
            torch.save(torch.from_numpy(arr), tmp_path / "pt" / f"{vid}.pt")
            fh.create_dataset(vid, data=arr)
    return {"npy": tmp_path / "npy", "pt": tmp_path / "pt", "h5": tmp_path / "feats.h5"}


@pytest.mark.parametrize("kind", ["npy", "pt", "h5"])
def test_store_reads_every_format(tmp_path: Path, kind: str) -> None:
    feats = {"v1": coded_features(10), "v2": coded_features(4)}
    store = FeatureStore(_write_all_formats(tmp_path, feats)[kind])
    assert store.kind == kind
    assert store.available() == {"v1", "v2"}
    assert store.shape("v1") == (10, 3)
    np.testing.assert_array_equal(store.load("v2"), feats["v2"])
    # a strided slice: features 2, 5, 8 of v1 -> values 2000+c, 5000+c, 8000+c
    part = store.load("v1", 2, 9, 3)
    np.testing.assert_array_equal(part[:, 0], [2000, 5000, 8000])
    assert part.dtype == np.float32 and part.flags["C_CONTIGUOUS"]


def test_float64_files_load_as_float32(tmp_path: Path) -> None:
    arr = coded_features(5).astype(np.float64)
    for path in _write_all_formats(tmp_path, {"v": arr}).values():
        out = FeatureStore(path).load("v")
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, arr)


def test_prefix_for_anet_style_names(tmp_path: Path) -> None:
    np.save(tmp_path / "v_abc.npy", coded_features(3))
    store = FeatureStore(tmp_path, prefix="v_")
    assert store.available() == {"abc"} and store.has("abc") and store.shape("abc") == (3, 3)


def test_nan_is_reported_on_load(tmp_path: Path) -> None:
    arr = coded_features(6)
    arr[4, 1] = np.nan
    np.save(tmp_path / "bad.npy", arr)
    store = FeatureStore(tmp_path)
    store.load("bad", 0, 3)  # the NaN is outside this range
    with pytest.raises(TalBenchError, match=r"1 NaN/inf") as err:
        store.load("bad")
    assert "\n" not in str(err.value)


def test_pt_file_without_a_tensor(tmp_path: Path) -> None:
    torch.save({"feats": [1, 2]}, tmp_path / "x.pt")
    with pytest.raises(TalBenchError, match="expected one"):
        FeatureStore(tmp_path).load("x")


def test_bad_shapes_and_paths(tmp_path: Path) -> None:
    np.save(tmp_path / "flat.npy", np.zeros(5, dtype=np.float32))
    with pytest.raises(TalBenchError, match=r"expected a 2-D"):
        FeatureStore(tmp_path).load("flat")
    with pytest.raises(TalBenchError, match="does not exist"):
        FeatureStore(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TalBenchError, match="no .npy or .pt"):
        FeatureStore(tmp_path / "empty")
    with pytest.raises(TalBenchError, match="no features for video"):
        FeatureStore(tmp_path).shape("missing")


def test_thumos_geometry() -> None:
    meta = FeatureMeta()  # 30 fps, stride 4, 16-frame clips centred at frame 8
    assert meta.step_s() == pytest.approx(4 / 30)
    assert meta.step_s(downsample=2) == pytest.approx(8 / 30)
    assert meta.step_s(fps=25.0) == pytest.approx(4 / 25)
    # a 10 s clip at 30 fps: 300 frames -> clips start at 0, 4, ..., 284 -> 72 features
    assert meta.num_features(10.0) == 72
    # feature 0 is centred at frame 8 = 0.2667 s, feature 3 at frame 20 = 0.6667 s
    t0_s, step_s = 8 / 30, 4 / 30
    assert grid_to_seconds(3, t0_s, step_s) == pytest.approx(20 / 30)
    assert seconds_to_grid(20 / 30, t0_s, step_s) == pytest.approx(3.0)


def test_grid_conversion_is_an_inverse_for_arrays_and_tensors() -> None:
    x = np.array([-2.0, 0.0, 0.5, 127.0])
    t = grid_to_seconds(x, 1.25, 0.4)
    np.testing.assert_allclose(t, [0.45, 1.25, 1.45, 52.05])
    np.testing.assert_allclose(seconds_to_grid(t, 1.25, 0.4), x)
    xt = torch.tensor([1.0, 2.0])
    assert torch.allclose(seconds_to_grid(grid_to_seconds(xt, 0.5, 0.25), 0.5, 0.25), xt)
