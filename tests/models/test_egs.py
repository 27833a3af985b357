"""Encoder Gradient Sampling: selection per strategy, order-preserving reassembly, gradients
that reach exactly the sampled snippets, and the chunked variant against the single pass."""

from __future__ import annotations

import pytest
import torch

from tal_bench.models.egs import (
    EgsEncoder,
    egs_count,
    encode_chunked,
    encode_single_pass,
    reassemble,
    select_snippets,
)
from tal_bench.models.encoders.resnet import EncoderConfig, VideoEncoder

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = EncoderConfig(kind="tsm", depth=10, width=8, stem_stride=2, frozen_stages=1)


def _encoder(kind: str = "tsm", frozen: int = 1) -> VideoEncoder:
    torch.manual_seed(0)
    cfg = EncoderConfig(kind=kind, depth=10, width=8, stem_stride=2, frozen_stages=frozen)
    return VideoEncoder(cfg).train()


def _clips(n: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 2, 16, 16, generator=gen, dtype=torch.float64).float()


# ---------------------------------------------------------------------- selection


@pytest.mark.parametrize(
    ("length", "ratio", "chunk", "count"),
    [
        (64, 0.1, None, 6),  # int(6.4)
        (64, 0.3, None, 19),  # int(19.2)
        (5, 0.1, None, 1),  # at least one
        (128, 0.3, 4, 40),  # released code: int(38.4 / 4 + 0.99) = 10 chunks of 4
        (64, 0.1, 4, 8),  # int(1.6 + 0.99) = 2 chunks
        (10, 0.95, 4, 10),  # 3 chunks = 12, capped at L
        (64, 0.0, None, 0),
        (64, 1.0, 4, 64),
    ],
)
def test_counts(length: int, ratio: float, chunk: int | None, count: int) -> None:
    assert egs_count(length, ratio, chunk) == count


def test_random_selection_distinct_seeded_and_sized() -> None:
    picks = [select_snippets(64, 0.3, "random", torch.Generator().manual_seed(s)) for s in (0, 0)]
    assert torch.equal(picks[0], picks[1])  # same seed, same draw
    other = select_snippets(64, 0.3, "random", torch.Generator().manual_seed(1))
    assert not torch.equal(picks[0], other)
    for pick in (picks[0], other):
        assert pick.numel() == 19 == len(set(pick.tolist()))
        assert int(pick.min()) >= 0 and int(pick.max()) < 64


def test_grid_selection_is_the_fixed_stride_lattice() -> None:
    # stride 1 / 0.25 = 4 from snippet 1: 1, 5, 9, 13, 17 (by hand)
    assert select_snippets(20, 0.25, "grid").tolist() == [1, 5, 9, 13, 17]
    # stride 10: 1, 11, 21, ..., 61 -> 7 snippets of 64
    assert select_snippets(64, 0.1, "grid").tolist() == [1, 11, 21, 31, 41, 51, 61]


def test_block_selection_is_consecutive() -> None:
    starts = set()
    for seed in range(20):
        pick = select_snippets(64, 0.3, "block", torch.Generator().manual_seed(seed))
        assert pick.numel() == 19
        assert pick.tolist() == list(range(int(pick[0]), int(pick[0]) + 19))
        assert 0 <= int(pick[0]) <= 64 - 19
        starts.add(int(pick[0]))
    assert len(starts) > 5  # the start is drawn, not fixed


def test_ratio_one_selects_all_and_zero_none() -> None:
    for strategy in ("random", "grid", "block"):
        assert select_snippets(9, 1.0, strategy).tolist() == list(range(9))
        assert select_snippets(9, 0.0, strategy).numel() == 0
    with pytest.raises(ValueError, match="randomly only"):
        select_snippets(64, 0.3, "grid", chunk=4)


# ---------------------------------------------------------------------- reassembly


def test_reassemble_puts_rows_back_in_order() -> None:
    feats = torch.tensor([[30.0], [10.0], [40.0], [20.0], [0.0]])
    out = reassemble([(torch.tensor([3, 1]), feats[:2]), (torch.tensor([4, 0, 2]), feats[2:])], 5)
    assert out.squeeze(1).tolist() == [20.0, 10.0, 0.0, 30.0, 40.0]
    with pytest.raises(ValueError, match="partition"):
        reassemble([(torch.tensor([0, 0]), feats[:2])], 2)


@pytest.mark.parametrize("kind", ["tsm", "r2plus1d"])
def test_single_pass_features_equal_one_full_pass(kind: str) -> None:
    encoder, clips = _encoder(kind), _clips(11)
    full = encoder(clips)  # BatchNorm in eval: batch composition cannot change a feature
    selected = torch.tensor([7, 2, 9])
    split = encode_single_pass(encoder, clips, selected, chunk=4)
    torch.testing.assert_close(split, full, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------- gradients


def test_gradients_reach_exactly_the_sampled_snippets() -> None:
    encoder = _encoder(frozen=-1)  # nothing frozen: the input gradient shows every path
    clips = _clips(10).requires_grad_(True)
    selected = torch.tensor([8, 3, 5])
    weights = torch.randn(10, encoder.out_dim, generator=torch.Generator().manual_seed(2))
    (encode_single_pass(encoder, clips, selected, chunk=3) * weights).sum().backward()
    touched = clips.grad.flatten(1).abs().sum(1) > 0  # (10,)
    assert touched.nonzero().squeeze(1).tolist() == [3, 5, 8]
    # the encoder's gradient is that of the selected snippets' features alone, computed apart
    got = [p.grad.clone() for p in encoder.parameters()]
    encoder.zero_grad()
    (encoder(clips[selected].detach()) * weights[selected]).sum().backward()
    for g, ref in zip(got, (p.grad for p in encoder.parameters()), strict=True):
        torch.testing.assert_close(g, ref, rtol=1e-5, atol=1e-7)


def test_frozen_stages_and_batchnorm_stay_put() -> None:
    encoder = _encoder(frozen=2)
    frozen = [*encoder.stem.parameters(), *encoder.stages[0].parameters(),
              *encoder.stages[1].parameters()]  # fmt: skip
    assert all(not p.requires_grad for p in frozen)
    assert all(p.requires_grad for p in encoder.stages[3].parameters())
    stats = [b.running_mean.clone() for b in encoder.modules() if hasattr(b, "running_mean")]
    encoder.train()
    encoder(_clips(4)).sum().backward()
    after = [b.running_mean for b in encoder.modules() if hasattr(b, "running_mean")]
    assert all(torch.equal(a, b) for a, b in zip(stats, after, strict=True))
    assert all(p.grad is None for p in frozen)


def test_chunked_variant_gives_the_single_pass_gradients() -> None:
    clips, weights = _clips(16), torch.randn(16, 64, generator=torch.Generator().manual_seed(3))
    # L = 16 at ratio 0.25: 4 snippets either way (int(4.0); one chunk of 4), same draw
    single = select_snippets(16, 0.25, "random", torch.Generator().manual_seed(5))
    chunked = select_snippets(16, 0.25, "random", torch.Generator().manual_seed(5), chunk=2)
    assert torch.equal(single, chunked)
    grads, feats = [], []
    for variant in ("single", "chunked"):
        encoder = _encoder()
        if variant == "single":
            out = encode_single_pass(encoder, clips, single, chunk=4)
        else:
            out = encode_chunked(encoder, clips, list(torch.split(chunked, 2)), chunk=4)
        (out * weights).sum().backward()
        feats.append(out.detach())
        grads.append([p.grad for p in encoder.parameters() if p.requires_grad])
    torch.testing.assert_close(feats[0], feats[1])
    assert len(grads[0]) == len(grads[1]) > 0
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------- the module over items


def _items(lengths: list[int], window: int = 12) -> list[dict]:
    gen = torch.Generator().manual_seed(4)
    items = []
    for i, n in enumerate(lengths):
        frames = torch.zeros(window, 3, 2, 16, 16, dtype=torch.uint8)
        frames[:n] = torch.randint(0, 256, (n, 3, 2, 16, 16), generator=gen, dtype=torch.uint8)
        mask = torch.zeros(window, dtype=torch.bool)
        mask[:n] = True
        items.append({"video_id": f"v{i}", "frames": frames, "mask": mask, "window_start": 0})
    return items


def test_module_zero_pads_and_counts_grad_snippets() -> None:
    torch.manual_seed(0)
    egs = EgsEncoder(TINY, 0.25, "random", "single", 4).train()
    items = _items([12, 7])
    feats, mask = egs(items, torch.device("cpu"))
    assert feats.shape == (2, 64, 12) and mask.sum(1).tolist() == [12, 7]
    assert torch.all(feats[1, :, 7:] == 0)
    assert egs.last_grad_snippets == 3 + 1  # int(12 / 4) + max(1, int(7 / 4))
    with torch.no_grad():
        ref = egs.encoder(items[1]["frames"][:7])  # (7, D)
    torch.testing.assert_close(feats[1, :, :7].T, ref, rtol=1e-5, atol=1e-6)


def test_ratio_zero_freezes_and_encodes_each_item_once() -> None:
    egs = EgsEncoder(TINY, 0.0, "random", "single", 4).train()
    assert egs.trainable() == []
    calls = []
    egs.encoder.register_forward_hook(lambda *_: calls.append(1))
    items = _items([12, 7])
    first, _ = egs(items, torch.device("cpu"))
    n_calls = len(calls)
    again, _ = egs(items, torch.device("cpu"))
    assert len(calls) == n_calls  # the second epoch reuses the features
    assert torch.equal(first, again) and not first.requires_grad
