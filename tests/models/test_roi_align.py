"""1-D RoI-align against an independent, per-sample port of torchvision's 2-D CPU kernel."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tal_bench.models.ops.roi_align_1d import roi_align_1d


def _bilinear(img: np.ndarray, y: float, x: float) -> np.ndarray:
    """torchvision's bilinear_interpolate on an (C, H, W) image, one sample."""
    _, height, width = img.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return np.zeros(img.shape[0])
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_high = y_low = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_high = x_low = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return (
        hy * hx * img[:, y_low, x_low]
        + hy * lx * img[:, y_low, x_high]
        + ly * hx * img[:, y_high, x_low]
        + ly * lx * img[:, y_high, x_high]
    )


def reference_roi_align(feats, rois, out_w, sampling_ratio=-1, aligned=False):
    """The 2-D kernel on the (B, C, 1, T) pseudo-image with boxes (b, x1, 0, x2, 1), out (P, 1)."""
    feats = np.asarray(feats, dtype=np.float64)[:, :, None, :]  # (B, C, 1, T)
    out = np.zeros((len(rois), feats.shape[1], out_w))
    off = 0.5 if aligned else 0.0
    for k, (b, x1, x2) in enumerate(np.asarray(rois, dtype=np.float64)):
        start_w, end_w, start_h, end_h = x1 - off, x2 - off, 0.0 - off, 1.0 - off
        roi_w, roi_h = end_w - start_w, end_h - start_h
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_w, bin_h = roi_w / out_w, roi_h / 1
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / out_w)
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / 1)
        count = max(grid_h * grid_w, 1)
        for pw in range(out_w):
            acc = np.zeros(feats.shape[1])
            for iy in range(grid_h):
                y = start_h + (iy + 0.5) * bin_h / grid_h
                for ix in range(grid_w):
                    x = start_w + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                    acc += _bilinear(feats[int(b)], y, x)
            out[k, :, pw] = acc / count
    return out


def _rois(length: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    starts = torch.rand(40, generator=gen) * (length + 8) - 6  # some start before -1
    widths = torch.rand(40, generator=gen) * 2 * length
    widths[:8] = torch.rand(8, generator=gen) * 0.9  # width < 1
    batch = torch.randint(0, 3, (40,), generator=gen).float()
    fixed = torch.tensor(
        [[0, -5.0, -2.0], [1, length + 0.5, length + 3.0], [2, -3.0, length + 4.0], [0, 2.0, 2.0]]
    )
    return torch.cat([torch.stack([batch, starts, starts + widths], dim=1), fixed])


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_matches_reference_kernel(aligned: bool, sampling_ratio: int) -> None:
    length, size = 17, 6
    feats = torch.randn(3, 5, length, generator=torch.Generator().manual_seed(1)).double()
    rois = _rois(length).double()
    got = roi_align_1d(feats, rois, size, sampling_ratio=sampling_ratio, aligned=aligned)
    want = reference_roi_align(feats.numpy(), rois.numpy(), size, sampling_ratio, aligned)
    assert np.abs(got.numpy() - want).max() < 1e-6


def test_float32_matches_reference() -> None:
    feats = torch.randn(3, 4, 20, generator=torch.Generator().manual_seed(2))
    rois = torch.tensor([[0, 1.3, 9.7], [2, -0.6, 4.2], [1, 15.1, 22.9]])
    got = roi_align_1d(feats, rois, 24)
    want = reference_roi_align(feats.numpy(), rois.numpy(), 24)
    # float32 sample positions (x ~ 20 has an ulp of 2e-6) vs the float64 reference.
    assert np.abs(got.numpy() - want).max() < 1e-5


def test_hand_worked_case() -> None:
    feats = torch.tensor([[[0.0, 1.0, 2.0, 3.0]]])  # (1, 1, 4): feature j = j
    rois = torch.tensor([[0, 0.0, 3.0]])
    # aligned=False: bins of width 1, one sample at the bin centre 0.5, 1.5, 2.5.
    assert roi_align_1d(feats, rois, 3).flatten().tolist() == [0.5, 1.5, 2.5]
    # aligned=True: shifted by -0.5, samples at 0, 1, 2.
    assert roi_align_1d(feats, rois, 3, aligned=True).flatten().tolist() == [0.0, 1.0, 2.0]
    # width 6 -> 2 samples per bin at 2p + 0.5 and 2p + 1.5: (0.5 + 1.5) / 2 = 1;
    # (2.5 + 3) / 2 = 2.75 (3.5 clamps to the last feature); 4.5 and 5.5 lie beyond T = 4 -> 0.
    wide = roi_align_1d(feats, torch.tensor([[0, 0.0, 6.0]]), 3).flatten().tolist()
    assert wide == pytest.approx([1.0, 2.75, 0.0])


def test_gradient_wrt_features() -> None:
    feats = torch.randn(2, 3, 9, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 0.4, 6.3], [1, -1.5, 3.0], [1, 2.2, 12.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda f: roi_align_1d(f, rois, 4), (feats,))
    unsorted = rois[[1, 0, 2]]  # videos not grouped: the index-tensor path
    assert torch.autograd.gradcheck(lambda f: roi_align_1d(f, unsorted, 4, aligned=True), (feats,))


def test_unsorted_batch_order_is_kept() -> None:
    feats = torch.randn(2, 3, 10, dtype=torch.float64)
    rois = torch.tensor([[1, 0.0, 5.0], [0, 2.0, 8.0], [1, 3.0, 4.0]], dtype=torch.float64)
    got = roi_align_1d(feats, rois, 4)
    for k in range(3):
        assert torch.allclose(got[k], roi_align_1d(feats, rois[k : k + 1], 4)[0])
