"""1-D RoI-align in pure PyTorch with torchvision's ``roi_align`` semantics.

ETAD's official code calls ``torchvision.ops.roi_align`` on a ``(B, C, T, 1)`` pseudo-image with
boxes ``(b, x1, 0, x2, 1)``, ``output_size=(P, 1)``, ``spatial_scale=1`` and
``sampling_ratio=-1`` (etad.md §2.4 item 3). On that degenerate height axis the kernel reduces to
this 1-D rule, reproduced here for one RoI ``[x1, x2]``:

* ``offset = 0.5 if aligned else 0``; ``start = x1 - offset``; ``width = x2 - x1``;
  without ``aligned`` the width is forced to at least 1.
* ``bin = width / P``; each bin averages ``g = ceil(width / P)`` samples (``sampling_ratio`` when
  positive) at ``x = start + p * bin + (i + 0.5) * bin / g``, ``i = 0..g-1``; the sum is divided
  by ``max(g, 1)`` (so a RoI with ``g <= 0`` gives zeros).
* A sample with ``x < -1`` or ``x > T`` contributes 0. Otherwise ``x`` is clamped at 0, and
  linear interpolation runs between ``floor(x)`` and ``floor(x) + 1``; at ``floor(x) >= T - 1``
  both ends are the last feature.

Because interpolation is linear in the features, the op is built as one weight matrix per RoI,
``W (K, P, T)``, and applied with a matrix product: vectorised over RoIs, bins and samples (the
only Python loop runs over the batch index), exact in the forward pass and differentiable with
respect to the features (backward rebuilds the weights instead of saving them). The RoIs get no
gradient (ETAD detaches its anchors).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

WEIGHT_BLOCK = 1 << 21  # weights per block (8 MiB in float32)


def roi_align_1d_weights(
    rois: torch.Tensor,
    length: int,
    output_size: int,
    sampling_ratio: int = -1,
    aligned: bool = False,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Interpolation weights of 1-D RoI-align.

    Args:
        rois: (K, 2) ``[x1, x2]`` in feature-index coordinates (scale already applied).
        length: T, the number of feature steps.
        output_size: P, the number of output bins per RoI.
        sampling_ratio: samples per bin; <= 0 means adaptive ``ceil(width / P)``.
        aligned: torchvision's ``aligned`` flag (half-pixel shift, no minimum width).
        dtype: arithmetic precision of the sample positions (that of the features, as
            torchvision computes them in the input dtype).

    Returns:
        (K, P, T) weights; ``out[k, :, p] = feats[:, :] @ W[k, p]``.
    """
    rois = rois.detach().to(dtype)
    k_rois = rois.shape[0]
    offset = 0.5 if aligned else 0.0
    start = rois[:, 0] - offset  # (K,)
    width = (rois[:, 1] - offset) - start  # (K,)
    if not aligned:
        width = width.clamp(min=1.0)
    bin_size = width / output_size  # (K,)
    if sampling_ratio > 0:
        grid = torch.full_like(width, float(sampling_ratio))
    else:
        grid = torch.ceil(width / output_size)  # (K,) may be <= 0 when aligned
    g_max = max(int(grid.max().item()), 1) if k_rois > 0 else 1
    p_idx = torch.arange(output_size, dtype=dtype, device=rois.device)  # (P,)
    i_idx = torch.arange(g_max, dtype=dtype, device=rois.device) + 0.5  # (G,)
    # x = start + p * bin + (i + 0.5) * bin / g, in torchvision's operation order.
    x = (
        start[:, None, None]
        + p_idx[None, :, None] * bin_size[:, None, None]
        + i_idx[None, None, :] * bin_size[:, None, None] / grid.clamp(min=1.0)[:, None, None]
    )  # (K, P, G)
    used = i_idx[None, None, :] < grid[:, None, None]  # (K, P, G) samples that exist
    inside = (x >= -1.0) & (x <= float(length)) & used
    x = x.clamp(min=0.0)
    x_low = torch.floor(x).long()
    at_end = x_low >= length - 1
    x_low = torch.where(at_end, torch.full_like(x_low, length - 1), x_low)
    x_high = torch.where(at_end, x_low, x_low + 1)
    x = torch.where(at_end, x_low.to(dtype), x)
    lx = x - x_low.to(dtype)
    count = grid.clamp(min=1.0)[:, None, None]  # (K, 1, 1)
    w_low = torch.where(inside, (1.0 - lx) / count, torch.zeros_like(lx))  # (K, P, G)
    w_high = torch.where(inside, lx / count, torch.zeros_like(lx))
    weights = torch.zeros(k_rois, output_size, length, dtype=dtype, device=rois.device)
    weights.scatter_add_(2, x_low, w_low)
    weights.scatter_add_(2, x_high, w_high)
    return weights  # (K, P, T)


def roi_align_1d(
    feats: torch.Tensor,
    rois: torch.Tensor,
    output_size: int,
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> torch.Tensor:
    """RoI-align over the time axis, equal to torchvision's ``roi_align`` on ``(B, C, T, 1)``.

    Like torchvision, backward keeps only the RoIs and rebuilds the weights, so the op saves no
    (K, P, T) tensor for the backward pass.

    Args:
        feats: (B, C, T) features.
        rois: (K, 3) rows ``(batch_index, x1, x2)`` in input coordinates.
        output_size: P bins per RoI.
        spatial_scale: multiplies ``x1, x2`` before pooling.
        sampling_ratio: samples per bin; <= 0 means adaptive ``ceil(width / P)``.
        aligned: torchvision's ``aligned`` flag (ETAD official: False; OpenTAD: True).

    Returns:
        (K, C, P) pooled features.
    """
    rois = rois.detach()
    return _RoiAlign1d.apply(feats, rois, output_size, spatial_scale, sampling_ratio, aligned)


class _RoiAlign1d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, feats, rois, output_size, spatial_scale, sampling_ratio, aligned):
        ctx.save_for_backward(rois)
        ctx.args = (feats.shape, feats.dtype, output_size, spatial_scale, sampling_ratio, aligned)
        out = feats.new_zeros(rois.shape[0], feats.shape[1], output_size)  # (K, C, P)
        for b, sel in _groups(rois, feats.shape[0], output_size * feats.shape[-1]):
            w_b = _weights(rois[sel], feats.shape[-1], *ctx.args[1:])  # (K_b, P, T)
            # (K_b, P, T) @ (T, C) -> (K_b, P, C) -> (K_b, C, P)
            out[sel] = torch.matmul(w_b, feats[b].transpose(0, 1)).transpose(1, 2)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (rois,) = ctx.saved_tensors
        shape = ctx.args[0]
        grad_feats = grad_out.new_zeros(shape)  # (B, C, T)
        for b, sel in _groups(rois, shape[0], ctx.args[2] * shape[-1]):
            g_b = grad_out[sel].transpose(1, 2).reshape(-1, shape[1])  # (K_b * P, C)
            w_b = _weights(rois[sel], shape[-1], *ctx.args[1:]).reshape(-1, shape[-1])  # (K_b*P, T)
            grad_feats[b] += torch.matmul(g_b.transpose(0, 1), w_b.to(grad_out.dtype))  # (C, T)
        return grad_feats, None, None, None, None, None


def _weights(rois, length, dtype, output_size, spatial_scale, sampling_ratio, aligned):
    coords = rois[:, 1:3] * spatial_scale  # (K, 2)
    return roi_align_1d_weights(coords, length, output_size, sampling_ratio, aligned, dtype)


def _groups(
    rois: torch.Tensor, n_batch: int, weights_per_roi: int
) -> Iterator[tuple[int, slice | torch.Tensor]]:
    """(video index, a block of its RoIs) pairs: slices when RoIs are grouped by video, else index
    tensors; blocks hold at most ``WEIGHT_BLOCK`` weights so the (K_b, P, T) buffers stay small
    (and reusable by the allocator)."""
    batch_idx = rois[:, 0].long()  # (K,)
    if batch_idx.numel() == 0:
        return
    if batch_idx.min() < 0 or batch_idx.max() >= n_batch:
        raise ValueError(f"RoI batch indices must lie in [0, {n_batch - 1}]")
    block = max(1, WEIGHT_BLOCK // weights_per_roi)
    if bool((batch_idx[1:] >= batch_idx[:-1]).all()):
        ends = torch.bincount(batch_idx, minlength=n_batch).cumsum(0).tolist()
        for b in range(n_batch):
            for lo in range(ends[b - 1] if b else 0, ends[b], block):
                yield b, slice(lo, min(lo + block, ends[b]))
        return
    for b in torch.unique(batch_idx).tolist():
        idx = (batch_idx == b).nonzero(as_tuple=True)[0]
        for lo in range(0, idx.numel(), block):
            yield b, idx[lo : lo + block]
