"""Both MAC counters against hand-computed counts, and their zero-op lists.

Hand counts (one MAC per multiply-accumulate of a matrix product):
* Conv1d(C_in -> C_out, k, groups g) over T outputs: T * C_out * (C_in / g) * k.
* Linear(I -> O) on N rows: N * I * O.
* LSTM layer, one direction: T * B * 4H * (I + H).
"""

from __future__ import annotations

import pytest
import torch
from analytic_macs import conv1d_macs, linear_macs, lstm_macs
from torch import nn

from tal_bench.profiling.counters import (
    count_macs_flop_counter,
    count_macs_fvcore,
    count_macs_primary,
    count_params,
)

torch.set_num_threads(1)


def _primary(model: nn.Module, x: torch.Tensor):
    return count_macs_primary(lambda m, inp: m(*inp), model, (x,))


def _cpu(model: nn.Module, x: torch.Tensor):
    return count_macs_flop_counter(lambda: model(x), "cpu")


class _LstmOut(nn.Module):
    """LSTM returning only its output sequence (fvcore traces tensors only)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()
        self.lstm = nn.LSTM(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm(x)[0]


class _PemLike(nn.Module):
    """A small PEM-like block: grouped conv, RoI pooling by gather+mean, FC heads."""

    def __init__(self, c: int = 8, bins: int = 4, ext: int = 16, fc: int = 6) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c, c, 3, padding=1, groups=2)
        self.reduce = nn.Conv1d(c, c // 2, 3, padding=1)
        self.ext = nn.Linear(c // 2 * bins, ext)
        self.head = nn.Sequential(nn.Linear(ext, fc), nn.ReLU(), nn.Linear(fc, 2))
        self.bins = bins

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (1, C, T)
        y = torch.relu(self.reduce(x + torch.relu(self.conv(x))))  # (1, C/2, T)
        idx = torch.arange(0, x.shape[-1] - 1, 2)  # proposal starts
        pos = idx[:, None] + torch.arange(self.bins)[None, :]  # (K, bins)
        roi = y[0][:, pos.clamp(max=x.shape[-1] - 1)]  # (C/2, K, bins)
        roi = roi.permute(1, 0, 2).flatten(1)  # (K, C/2 * bins)
        return torch.sigmoid(self.head(torch.relu(self.ext(roi))))  # (K, 2)


def test_conv1d_grouped_both_counters() -> None:
    model = nn.Conv1d(16, 8, kernel_size=3, padding=1, groups=4)
    x = torch.randn(2, 16, 50)
    expected = 2 * conv1d_macs(16, 8, 3, 50, groups=4)  # batch 2
    assert expected == 2 * 50 * 8 * 4 * 3
    assert _primary(model, x).macs == expected
    assert _primary(model, x).device == "meta"
    assert count_macs_fvcore(model, (x,)).macs == expected


def test_linear_both_counters() -> None:
    model = nn.Linear(24, 10)
    x = torch.randn(7, 24)
    assert _primary(model, x).macs == 7 * 24 * 10 == linear_macs(24, 10, rows=7)
    assert count_macs_fvcore(model, (x,)).macs == 7 * 24 * 10


@pytest.mark.parametrize(
    ("layers", "bidirectional"), [(1, False), (1, True), (2, True)], ids=["uni", "bi", "2-layer-bi"]
)
def test_lstm_both_counters_and_devices(layers: int, bidirectional: bool) -> None:
    t, b, i, h = 9, 3, 12, 5
    model = _LstmOut(i, h, num_layers=layers, bidirectional=bidirectional)
    x = torch.randn(t, b, i)
    dirs = 2 if bidirectional else 1
    expected = lstm_macs(i, h, t, b, dirs)
    if layers == 2:
        expected += lstm_macs(dirs * h, h, t, b, dirs)  # layer 2 reads both directions
    meta = _primary(model, x)
    assert meta.device == "meta" and meta.macs == expected and meta.formula_ops == []
    # On CPU the LSTM is one mkldnn op that FlopCounterMode has no formula for: ours counts it.
    cpu = _cpu(model, x)
    assert cpu.macs == expected
    assert cpu.formula_ops == ["aten::mkldnn_rnn_layer"]
    fv = count_macs_fvcore(model, (x,))
    assert fv.macs == expected and "aten::lstm" in fv.formula_ops


def test_lstm_with_projection_fvcore() -> None:
    t, b, i, h, p = 4, 2, 6, 5, 3
    model = _LstmOut(i, h, proj_size=p)
    # per step: W_ih (4H x I) + W_hh (4H x P) + W_hr (P x H)
    expected = t * b * (4 * h * i + 4 * h * p + p * h)
    assert count_macs_fvcore(model, (torch.randn(t, b, i),)).macs == expected


def test_pem_like_block_by_hand() -> None:
    model = _PemLike()
    t = 20
    x = torch.randn(1, 8, t)
    k = len(range(0, t - 1, 2))  # 10 proposals
    expected = (
        conv1d_macs(8, 8, 3, t, groups=2)
        + conv1d_macs(8, 4, 3, t)
        + linear_macs(4 * 4, 16, rows=k)
        + linear_macs(16, 6, rows=k)
        + linear_macs(6, 2, rows=k)
    )
    assert _primary(model, x).macs == expected
    fv = count_macs_fvcore(model, (x,))
    assert fv.macs == expected
    # gather/indexing is movement; the elementwise ops are listed, never dropped silently
    assert {"aten::relu", "aten::sigmoid", "aten::add"} <= set(fv.zero_ops)
    assert {"aten::relu", "aten::sigmoid", "aten::add"} <= set(_primary(model, x).zero_ops)


class _Cumsum(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(self.fc(x), dim=0)


class _Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.mm(x, x.t())

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


class _CustomFn(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Square.apply(x)


def test_unknown_op_is_listed_by_both_counters() -> None:
    x = torch.randn(5, 4)
    primary = _primary(_Cumsum(), x)
    fv = count_macs_fvcore(_Cumsum(), (x,))
    assert primary.macs == fv.macs == 5 * 4 * 4
    assert "aten::cumsum" in primary.zero_ops
    assert "aten::cumsum" in fv.zero_ops


def test_custom_autograd_function() -> None:
    x = torch.randn(6, 3)
    # FlopCounterMode sees the aten ops inside the Function: mm of (6x3)(3x6) = 108 MACs.
    assert _primary(_CustomFn(), x).macs == 6 * 3 * 6
    # fvcore sees one opaque PythonOp: counted 0 and listed by name.
    fv = count_macs_fvcore(_CustomFn(), (x,))
    assert fv.macs == 0 and fv.zero_ops == ["prim::PythonOp._Square"]
    handle = {"prim::PythonOp._Square": lambda inputs, outputs: 108}
    assert count_macs_fvcore(_CustomFn(), (x,), handle).macs == 108


def test_norms_and_movement_follow_the_same_rule() -> None:
    model = nn.Sequential(nn.Conv1d(4, 8, 1), nn.GroupNorm(2, 8), nn.Flatten())
    x = torch.randn(2, 4, 5)
    primary, fv = _primary(model, x), count_macs_fvcore(model, (x,))
    assert primary.macs == fv.macs == 2 * 5 * 8 * 4  # the norm counts zero in both
    assert "aten::native_group_norm" in primary.zero_ops
    assert "aten::group_norm" in fv.zero_ops
    assert not any("view" in op or "flatten" in op for op in primary.zero_ops + fv.zero_ops)


def test_meta_failure_falls_back_to_real_device() -> None:
    class DataDependent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n = int((x > 0).sum().item()) + 1  # needs real values
            return self.fc(x[:n])

    x = torch.ones(4, 3)
    result = _primary(DataDependent(), x)
    assert result.device == "cpu" and "meta device failed" in result.error
    assert result.macs == 4 * 3 * 2


def test_scaled_and_params() -> None:
    model = nn.Linear(3, 2)
    assert count_params(model) == 3 * 2 + 2
    count = _primary(model, torch.randn(1, 3)).scaled(5)
    assert count.macs == 30 and sum(count.by_op.values()) == 30


def test_cudnn_rnn_formula_on_shapes() -> None:
    """The CUDA path (aten._cudnn_rnn) cannot run here: check its formula on the shapes
    FlopCounterMode passes (a list of weight shapes for all layers)."""
    from tal_bench.profiling.counters import _cudnn_rnn_flops

    t, b, i, h = 7, 2, 6, 5
    weights = [torch.Size([4 * h, i]), torch.Size([4 * h, h]), torch.Size([4 * h])] * 1
    flops = _cudnn_rnn_flops(torch.Size([t, b, i]), weights, 4, None)
    assert flops == 2 * lstm_macs(i, h, t, b)


def test_attention_counted_by_both() -> None:
    q, k, v = torch.randn(1, 2, 5, 4), torch.randn(1, 2, 6, 4), torch.randn(1, 2, 6, 3)

    class Attn(nn.Module):
        def forward(self, q, k, v):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v)

    expected = 1 * 2 * 5 * 6 * (4 + 3)  # Q K^T and P V
    assert count_macs_primary(lambda m, x: m(*x), Attn(), (q, k, v)).macs == expected
    assert count_macs_fvcore(Attn(), (q, k, v)).macs == expected


class _GridSample(nn.Module):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, image: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        return nn.functional.grid_sample(image, grid, mode=self.mode, align_corners=False)


@pytest.mark.parametrize(("mode", "taps"), [("bilinear", 4), ("nearest", 0), ("bicubic", 16)])
def test_grid_sample_counts_its_weighted_taps(mode: str, taps: int) -> None:
    image = torch.randn(2, 3, 5, 7)  # (N, C, H, W)
    grid = torch.rand(2, 4, 6, 2) * 2 - 1  # (N, H_out, W_out, 2)
    expected = 2 * 3 * 4 * 6 * taps  # every output value sums its taps
    model = _GridSample(mode)
    primary = count_macs_primary(lambda m, inp: m(*inp), model, (image, grid))
    assert primary.macs == expected and primary.formula_ops == ["aten::grid_sampler_2d"]
    fv = count_macs_fvcore(model, (image, grid))
    assert fv.macs == expected
    assert fv.formula_ops == (["aten::grid_sampler"] if taps else [])  # fvcore lists nonzero ops
