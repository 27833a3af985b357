"""Temporal deformable attention sampling against a direct per-query loop, its gradients, and its
MAC count by both counters."""

from __future__ import annotations

import math

import pytest
import torch
from modelhelpers import one_thread  # noqa: F401  (fixture)

from tal_bench.models.ops.deform_attn_1d import deform_attn_1d
from tal_bench.profiling.counters import count_macs_flop_counter, count_macs_fvcore

pytestmark = pytest.mark.usefixtures("one_thread")


def _inputs(seed: int, b=2, t=13, h=3, dh=5, q=7, p=4, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    value = torch.randn(b, t, h, dh, generator=gen, dtype=dtype)
    # locations reach past both ends so zero padding is exercised
    loc = torch.rand(b, q, h, p, generator=gen, dtype=dtype) * 1.4 - 0.2
    weights = torch.softmax(torch.randn(b, q, h, p, generator=gen, dtype=dtype), dim=-1)
    return value, loc, weights


def _loop(value: torch.Tensor, loc: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Each (batch, query, head): sum over points of weight x linear interpolation at u*T-0.5,
    steps outside [0, T-1] reading zero."""
    b_n, t_n, h_n, dh = value.shape
    q_n, p_n = loc.shape[1], loc.shape[3]
    out = torch.zeros(b_n, q_n, h_n * dh, dtype=value.dtype)
    for b in range(b_n):
        for q in range(q_n):
            for h in range(h_n):
                acc = torch.zeros(dh, dtype=value.dtype)
                for p in range(p_n):
                    x = float(loc[b, q, h, p]) * t_n - 0.5
                    lo = math.floor(x)
                    frac = x - lo
                    for idx, w in ((lo, 1.0 - frac), (lo + 1, frac)):
                        if 0 <= idx < t_n:
                            acc += weights[b, q, h, p] * w * value[b, idx, h]
                out[b, q, h * dh : (h + 1) * dh] = acc
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_a_direct_per_query_loop(seed: int) -> None:
    value, loc, weights = _inputs(seed)
    got = deform_attn_1d(value, loc, weights)
    assert got.shape == (2, 7, 15)
    assert torch.allclose(got, _loop(value, loc, weights), atol=1e-5)


def test_step_centres_read_the_step_exactly() -> None:
    value, _, _ = _inputs(3, b=1, t=6, h=2, dh=3, q=6, p=1)
    loc = ((torch.arange(6.0) + 0.5) / 6)[None, :, None, None].expand(1, 6, 2, 1)
    out = deform_attn_1d(value, loc, torch.ones(1, 6, 2, 1))
    assert torch.allclose(out, value.reshape(1, 6, 6), atol=1e-6)


def test_gradients_match_finite_differences() -> None:
    value, loc, weights = _inputs(4, b=1, t=5, h=2, dh=2, q=3, p=2, dtype=torch.float64)
    args = tuple(x.requires_grad_() for x in (value, loc, weights))
    assert torch.autograd.gradcheck(deform_attn_1d, args, eps=1e-6, atol=1e-5)


def test_macs_count_the_sampler_and_the_weighted_sum() -> None:
    b, t, h, dh, q, p = 2, 13, 3, 5, 7, 4
    value, loc, weights = _inputs(5, b, t, h, dh, q, p)
    # per sampled value: 4 bilinear taps (grid_sample) + 1 attention-weighted accumulation
    expected = b * q * h * p * dh * (4 + 1)
    primary = count_macs_flop_counter(lambda: deform_attn_1d(value, loc, weights))
    assert primary.macs == expected
    assert "aten::grid_sampler_2d" in primary.formula_ops

    class _Call(torch.nn.Module):
        def forward(self, v, lo, w):
            return deform_attn_1d(v, lo, w)

    fv = count_macs_fvcore(_Call(), (value, loc, weights))
    assert fv.macs == expected and "aten::grid_sampler" in fv.formula_ops
