"""1-D RoI-align against an independent, per-sample port of torchvision's 2-D CPU kernel."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch

from tal_bench.models.ops.roi_align_1d import roi_align_1d

# the module itself (the package re-exports its function under the module's name)
op = importlib.import_module("tal_bench.models.ops.roi_align_1d")


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


def _samples_as_before(rois, length, output_size, sampling_ratio=-1, aligned=False):
    """The sample table as the op built it before it was streamlined (kept as the reference):
    keep mask, 1/g scale and the clamp of lx at 1, each its own pass; ends concatenated."""
    offset = 0.5 if aligned else 0.0
    start = rois[:, 0] - offset
    width = (rois[:, 1] - offset) - start
    if not aligned:
        width = width.clamp(min=1.0)
    bin_size = width / output_size
    if sampling_ratio > 0:
        grid = torch.full_like(width, float(sampling_ratio))
    else:
        grid = torch.ceil(width / output_size)
    g_max = max(int(grid.max().item()), 1) if rois.shape[0] > 0 else 1
    p_idx = torch.arange(output_size, dtype=rois.dtype)
    i_idx = torch.arange(g_max, dtype=rois.dtype) + 0.5
    x = (
        start[:, None, None]
        + p_idx[None, :, None] * bin_size[:, None, None]
        + i_idx[None, None, :] * bin_size[:, None, None] / grid.clamp(min=1.0)[:, None, None]
    )
    keep = (i_idx[None, None, :] < grid[:, None, None]) & (x >= -1.0) & (x <= float(length))
    x = x.clamp_(min=0.0)
    x_low = x.floor().clamp_(max=length - 1)
    lx = (x - x_low).clamp_(max=1.0).masked_fill_(x_low >= length - 1, 0.0)
    scale = keep.to(rois.dtype).mul_((1.0 / grid.clamp(min=1.0))[:, None, None])
    w_high = lx.mul_(scale)
    w_low = scale.sub_(w_high)
    index = torch.cat([x_low, (x_low + 1.0).clamp_(max=length - 1)], dim=2).long()
    return index, torch.cat([w_low, w_high], dim=2)


def _etad_like_rois(n: int, length: int, n_batch: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    start = torch.rand(n, generator=gen) * (length + 20) - 10
    width = torch.rand(n, generator=gen) * length
    width[: n // 8] *= 0.02  # narrower than a step
    batch = torch.randint(0, n_batch, (n,), generator=gen).float()
    return torch.stack([batch, start, start + width], dim=1)  # float32, as ETAD's


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 3])
def test_sample_tables_are_bit_identical_to_the_previous_construction(aligned, sampling_ratio):
    length, n_batch = 23, 3
    rois = _etad_like_rois(500, length, n_batch, seed=4)
    want_index, want_weights = _samples_as_before(rois[:, 1:], length, 6, sampling_ratio, aligned)
    index, weights = op.roi_align_1d_samples(rois[:, 1:], length, 6, sampling_ratio, aligned)
    assert torch.equal(index, want_index) and torch.equal(weights, want_weights)
    # the forward's table: rows of the flattened (B*T, C) features, int32, same weights
    rows, row_weights = op._table(rois, torch.float32, length, 6, 1.0, sampling_ratio, aligned)
    offset = (rois[:, 0].long() * length)[:, None, None]
    assert rows.dtype == torch.int32
    assert torch.equal(rows.long(), (want_index + offset).reshape(rows.shape))
    assert torch.equal(row_weights, want_weights.reshape(row_weights.shape))


def test_backward_equals_the_per_video_weight_products() -> None:
    length, n_batch, size = 19, 4, 5
    rois = _etad_like_rois(300, length, n_batch, seed=5)
    feats = torch.randn(n_batch, 6, length, requires_grad=True)
    grad_out = torch.randn(len(rois), 6, size, generator=torch.Generator().manual_seed(6))
    roi_align_1d(feats, rois, size).backward(grad_out)
    want = torch.zeros(n_batch, 6, length)
    for b in range(n_batch):  # the dense weights of each video's RoIs alone, as before
        sel = (rois[:, 0] == b).nonzero(as_tuple=True)[0]
        index, samples = _samples_as_before(rois[sel, 1:], length, size)
        w_b = torch.zeros(len(sel), size, length).scatter_add_(2, index, samples)
        g_b = grad_out[sel].transpose(1, 2).reshape(-1, 6)
        want[b] += torch.matmul(g_b.transpose(0, 1), w_b.reshape(-1, length))
    assert torch.equal(feats.grad, want)


def test_reuse_tables_reuses_only_equal_rois(monkeypatch) -> None:
    built = []
    table = op._table
    monkeypatch.setattr(op, "_table", lambda *a: built.append(1) or table(*a))
    feats = torch.randn(3, 4, 30)
    first, other = _etad_like_rois(200, 30, 3, seed=7), _etad_like_rois(200, 30, 3, seed=8)
    plain = [roi_align_1d(feats, r, 8) for r in (first, other, first)]
    assert len(built) == 3  # outside the block nothing is kept
    with op.reuse_tables():
        reused = [roi_align_1d(2 * feats, r, 8) for r in (first, other, first, first)]
        assert len(built) == 5  # first and other built once each
        roi_align_1d(feats, first, 8, aligned=True)  # other options: a new table
        assert len(built) == 6
    for got, want in zip(reused, [*plain, plain[0]], strict=True):
        assert torch.equal(got, 2 * want)  # the same sums over features twice as large
