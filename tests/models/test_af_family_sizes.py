"""Sizes of ActionFormer, TriDet and TemporalMaxer at the official THUMOS-14 I3D config.

Three independent references: the parameter and MAC counts measured by running each official
repository's model with fvcore (2048-d input, batch 1, backbone + neck + heads; ActionFormer
29.25 M / 45.25 G, TriDet 15.99 M / 43.70 G, TemporalMaxer 7.12 M / 23.49 G at T = 2304 and the
longer lengths below), per-module parameter counts written out by hand from the layer shapes,
and MAC formulas written out by hand from the same shapes (the official padding rule included).
"""

from __future__ import annotations

import pytest
import torch

from tal_bench.models import create_model
from tal_bench.pipelines.resolve import resolve_run_config
from tal_bench.profiling.counters import (
    MethodAsModule,
    count_macs_fvcore,
    count_macs_primary,
    count_params,
)

C_IN, D, K = 2048, 512, 20  # I3D features, pyramid width, THUMOS classes
MODELS = ("actionformer", "tridet", "temporalmaxer")
OFFICIAL_PARAMS_M = {"actionformer": 29.25, "tridet": 15.99, "temporalmaxer": 7.12}
OFFICIAL_GMACS = {  # T -> GMACs of the official models (fvcore)
    "actionformer": {2304: 45.25, 5000: 101.8, 10000: 203.6, 30000: 599.6},
    "tridet": {2304: 43.70, 5000: 95.3, 10000: 190.0, 30000: 569.3},
    "temporalmaxer": {2304: 23.49, 5000: 51.2, 10000: 102.1, 30000: 306.0},
}
PADDED = {  # official padding: 2304 up to 2304, then multiples of 576 (AF) or 32 (TD / TM)
    "actionformer": {2304: 2304, 5000: 5184, 10000: 10368, 30000: 30528},
    "tridet": {2304: 2304, 5000: 5024, 10000: 10016, 30000: 30016},
    "temporalmaxer": {2304: 2304, 5000: 5024, 10000: 10016, 30000: 30016},
}


def conv(i: int, o: int, k: int, bias: bool = True) -> int:
    return i * o * k + (o if bias else 0)


LN = 2 * D  # channel LayerNorm: weight + bias
EMBED = conv(C_IN, D, 3, False) + LN + conv(D, D, 3, False) + LN


def head(out: int) -> int:
    return 2 * (conv(D, D, 3, False) + LN) + conv(D, out, 3)


def af_block() -> int:
    qkv = 3 * (D * 3 + LN)  # depthwise 3-tap convs without bias, each + LN
    proj = 4 * conv(D, D, 1)  # query, key, value, output
    mlp = conv(D, 4 * D, 1) + conv(4 * D, D, 1)
    return 2 * LN + qkv + proj + mlp + 2 * D  # + two affine drop-path scales


def sgp_block(droppath: bool) -> int:
    depthwise = 4 * (D + D) + (11 * D + D)  # psi, fc, conv_w, global_fc (k 1); conv_kw (k 11)
    mlp = conv(D, 768, 1) + conv(768, D, 1)
    return LN + 2 * D + depthwise + mlp + (2 * D if droppath else 0)  # LN, GroupNorm, ...


HAND_PARAMS = {
    "actionformer": {
        "embed": EMBED,
        "stem": 2 * af_block(),
        "branch": 5 * af_block(),
        "neck": 6 * LN,
        "cls_head": head(K),
        "reg_head": head(2) + 6,  # + one Scale per level
    },
    "tridet": {
        "embed": EMBED,
        "stem": 2 * sgp_block(False),
        "branch": 5 * sgp_block(True),
        "neck": 6 * LN,
        "cls_head": head(K),
        "start_head": head(K),
        "end_head": head(K),
        "reg_head": head(2 * 17) + 6,
    },
    "temporalmaxer": {
        "embed": EMBED,
        "pools": 0,
        "neck": 0,
        "cls_head": head(K),
        "reg_head": head(2) + 6,
    },
}


def hand_macs(name: str, length: int) -> int:
    """MACs of the dense network at input ``length``, from the layer shapes."""
    t = PADDED[name][length]
    levels = [t >> i for i in range(6)]
    total = t * (C_IN * D * 3 + D * D * 3)  # embedding
    heads = 3 if name == "tridet" else 1  # classification-like heads (TriDet: + start, end)
    total += sum(levels) * heads * (2 * D * D * 3 + D * K * 3)
    total += sum(levels) * (2 * D * D * 3 + D * (2 if name != "tridet" else 34) * 3)
    if name == "tridet":
        blocks = [t, t, *levels[1:]]  # 2 stem blocks, 5 branch blocks
        total += sum(n * D * (1 + 1 + 1 + 11) + D + n * 2 * D * 768 for n in blocks)
    if name == "actionformer":
        blocks = [t, t, *levels[1:]]  # output length of each block
        per_step = 3 * D * 3 + 4 * D * D + 2 * 4 * D * D + 2 * 27 * D  # dw, proj, MLP, attn
        total += sum(n * per_step for n in blocks)
    return total


def _paper_models() -> dict[str, torch.nn.Module]:
    return {
        name: create_model(name, resolve_run_config(name, "paper").model, C_IN, K).eval()
        for name in MODELS
    }


@pytest.fixture(scope="module")
def paper_models() -> dict[str, torch.nn.Module]:
    return _paper_models()


@pytest.fixture(scope="module")
def meta_models() -> dict[str, torch.nn.Module]:
    """The same models with shapes only (no weights to allocate or copy)."""
    with torch.device("meta"):
        return _paper_models()


@pytest.mark.parametrize("name", MODELS)
def test_parameters_match_hand_counts_and_official(paper_models, name):
    model = paper_models[name]
    per_module = {n: count_params(m) for n, m in model.named_children()}
    assert per_module == HAND_PARAMS[name]
    total = count_params(model)
    assert total == sum(HAND_PARAMS[name].values())
    assert total / 1e6 == pytest.approx(OFFICIAL_PARAMS_M[name], rel=0.01)


def _dense_input(length: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(1, C_IN, length), torch.ones(1, length, dtype=torch.bool)


@pytest.mark.parametrize("length", [2304, 5000, 10000, 30000])
@pytest.mark.parametrize("name", MODELS)
def test_macs_match_hand_formula_and_official(meta_models, name, length):
    # counted on the meta device (shapes only), so even 30000 steps cost about a second
    count = count_macs_primary(
        lambda m, x: m.forward_dense(*x), meta_models[name], _dense_input(length)
    )
    assert count.device == "meta", count.error
    assert count.macs == hand_macs(name, length)
    tolerance = 0.01 if length == 2304 else 0.02
    assert count.macs / 1e9 == pytest.approx(OFFICIAL_GMACS[name][length], rel=tolerance)


@pytest.mark.parametrize("name", MODELS)
def test_fvcore_agrees_with_the_primary_counter(name):
    # the two counters trace different things (dispatched aten ops vs a TorchScript graph);
    # at the cpu preset's width they run in a second, with the official padding rule
    cfg = resolve_run_config(name, "cpu")
    model = create_model(name, cfg.model, 64, K).eval()
    x = (torch.randn(1, 64, 1000), torch.ones(1, 1000, dtype=torch.bool))
    primary = count_macs_primary(lambda m, inp: m.forward_dense(*inp), model, x)
    fv = count_macs_fvcore(MethodAsModule(model, "forward_dense"), x)
    assert fv.macs == primary.macs, fv.error
    assert primary.by_module  # counted something in every module tree


@pytest.mark.slow
@pytest.mark.parametrize("length", [2304, 30000])
@pytest.mark.parametrize("name", MODELS)
def test_fvcore_on_the_paper_models(paper_models, name, length):
    fv = count_macs_fvcore(
        MethodAsModule(paper_models[name], "forward_dense"), _dense_input(length)
    )
    assert fv.macs == hand_macs(name, length), fv.error
    tolerance = 0.01 if length == 2304 else 0.02
    assert fv.macs / 1e9 == pytest.approx(OFFICIAL_GMACS[name][length], rel=tolerance)
