"""Encoder Gradient Sampling (EGS): train a video encoder with the detector, back-propagating
through a sampled subset of snippets (ETAD, Liu et al., CVPRW 2023, §3.3, Table 3, Table 5,
Fig. 5; the released code sming256/ETAD, lib/core/trainer.py).

Per video (item) and training step, a share ``ratio`` of its valid snippets is selected:

* ``random``: K = max(1, int(L * ratio)) distinct snippets, uniformly (DPS's random draw on a
  one-row map, ``ops.dps.sample_cells``);
* ``grid``: a fixed stride ``1 / ratio`` (DPS's lattice, ``ops.dps.lattice``: positions
  ``round(arange(1, L, 1 / ratio))``), no randomness;
* ``block``: K consecutive snippets at a uniformly random start.

``ratio = 1`` selects every snippet (plain end-to-end training) and ``ratio = 0`` none (the
encoder is frozen: the pre-extracted-features baseline; its features are then computed once per
training item and reused, which is what extracting features beforehand does).

Two ways to train on the selection, ``variant``:

* ``single`` (the paper's description, §3.3 and Fig. 2): the unselected snippets go through the
  encoder under ``no_grad`` (``batch`` snippets per call), the selected ones in one pass with
  autograd; the two sets of features are put back in their original order and the detector and
  the encoder train from one loss in one backward. Activations are kept for the selected
  snippets only, so memory grows with the ratio (what Table 3 and Fig. 5 report).
* ``chunked`` (the released code): all snippets go through the encoder without autograd; the
  detector's backward stops at the features and hands over the loss gradient G = dL/dF; then,
  per chunk of ``chunk`` selected snippets, the chunk is re-encoded with autograd and
  ``backward(gradient=G[chunk])`` accumulates the encoder's gradients. Only one chunk's
  activations are alive at a time (memory about flat in the ratio), every selected snippet is
  encoded twice (time grows with it). As the released code, the count is rounded up to whole
  chunks (``int(L * ratio / chunk + 0.99)`` chunks; 0.3 of 128 with chunks of 4 gives 40, not
  38) and the selection is random only. The released code then calls ``optimizer.step()``
  twice (detector, then encoder, with ``zero_grad`` between); here the re-forward runs inside
  the one ``loss.backward()`` of the shared loop (an autograd Function's backward) and one
  step updates both parameter groups, which is the same update (the shared loop clips each
  group's gradient norm on its own, ``train.loop.clip_gradients``).

In both variants unselected snippets contribute no encoder gradient and nothing is rescaled by
``1 / ratio`` (released code). BatchNorm stays in eval mode, so splitting the snippets into sets
and chunks does not change any feature.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tal_bench.config import SAMPLING_STRATEGIES
from tal_bench.errors import TalBenchError
from tal_bench.models.encoders.pretrain import ensure_pretrained, load_weights
from tal_bench.models.encoders.resnet import EncoderConfig, VideoEncoder
from tal_bench.models.ops import dps
from tal_bench.types import VideoItem

if TYPE_CHECKING:
    from tal_bench.data.datasets import TalDataset

VARIANTS = ("single", "chunked")


# ---------------------------------------------------------------------- selection


def egs_count(length: int, ratio: float, chunk: int | None = None) -> int:
    """Snippets of a video with ``length`` valid snippets that get gradients.

    Args:
        length: L.
        ratio: in [0, 1].
        chunk: None for the single-pass count ``max(1, int(L * ratio))``; the chunk size for
            the released code's whole chunks, ``min(L, int(L * ratio / chunk + 0.99) * chunk)``.
    """
    if ratio <= 0.0 or length <= 0:
        return 0
    if ratio >= 1.0:
        return length
    if chunk is None:
        return dps.num_samples(length, 1, ratio)  # a one-row map has L cells
    return min(length, int(length * ratio / chunk + 0.99) * chunk)


def select_snippets(
    length: int,
    ratio: float,
    strategy: str = "random",
    generator: torch.Generator | None = None,
    chunk: int | None = None,
) -> torch.Tensor:
    """Indices of the snippets that get gradients (module docstring).

    Args:
        length: L, valid snippets of the video.
        ratio: EGS ratio in [0, 1].
        strategy: ``random`` | ``grid`` | ``block``.
        generator: CPU generator (None: the global torch RNG).
        chunk: released-code rounding to whole chunks (``random`` only), see :func:`egs_count`.

    Returns:
        (K,) int64; ``random`` in random order (consecutive groups of ``chunk`` form the
        chunked variant's chunks), the others ascending.
    """
    if strategy not in SAMPLING_STRATEGIES:
        use = ", ".join(SAMPLING_STRATEGIES)
        raise ValueError(f"unknown EGS strategy {strategy!r}; use one of {use}")
    k = egs_count(length, ratio, chunk)
    if k == 0:
        return torch.zeros(0, dtype=torch.long)
    if k >= length:
        return torch.arange(length)
    if strategy == "random":
        return dps.sample_cells(length, 1, ratio, "random", generator, count=k)[1]
    if chunk is not None:
        raise ValueError("the chunked variant samples randomly only (as the released code)")
    if strategy == "grid":
        pos = dps.lattice(length, 1.0 / ratio)
        return torch.from_numpy(pos) if len(pos) else torch.zeros(1, dtype=torch.long)
    start = int(torch.randint(0, length - k + 1, (1,), generator=generator))
    return torch.arange(start, start + k)


# ---------------------------------------------------------------------- encoding


def encode_no_grad(encoder: nn.Module, clips: torch.Tensor, chunk: int) -> torch.Tensor:
    """Features of every clip without autograd, ``chunk`` clips per call: (N, D)."""
    with torch.no_grad():
        parts = [encoder(clips[i : i + chunk]) for i in range(0, len(clips), chunk)]
    return torch.cat(parts) if parts else clips.new_zeros((0, encoder.out_dim), dtype=torch.float)


def reassemble(parts: list[tuple[torch.Tensor, torch.Tensor]], n: int) -> torch.Tensor:
    """Put feature sets back in snippet order.

    Args:
        parts: ``(indices (K_i,), features (K_i, D))`` per set; the indices of all sets
            together are a permutation of ``0 .. n-1``.
        n: number of snippets.

    Returns:
        (n, D): row j is the feature of snippet j, whichever set it came from (autograd flows
        back to the sets that carry it).
    """
    idx = torch.cat([i for i, _ in parts])
    if idx.numel() != n or not torch.equal(torch.sort(idx).values, torch.arange(n)):
        raise ValueError("the index sets do not partition the snippets")
    return torch.cat([f for _, f in parts])[torch.argsort(idx)]


def encode_single_pass(
    encoder: nn.Module, clips: torch.Tensor, selected: torch.Tensor, chunk: int
) -> torch.Tensor:
    """The paper's EGS: ``selected`` clips with autograd, the others without, in order.

    Args:
        encoder: clips (n, 3, t, H, W) -> features (n, D).
        clips: (N, 3, t, H, W) all snippets of the batch.
        selected: (K,) indices into ``clips`` that get gradients.
        chunk: clips per no-grad call.

    Returns:
        (N, D) features; only rows ``selected`` carry a graph to the encoder.
    """
    others = torch.ones(len(clips), dtype=torch.bool)
    others[selected] = False
    rest = others.nonzero().squeeze(1)
    parts = [(rest, encode_no_grad(encoder, clips[rest], chunk))]
    if selected.numel():
        parts.append((selected, encoder(clips[selected])))
    return reassemble(parts, len(clips))


class _ChunkedReforward(torch.autograd.Function):
    """Forward: every clip without autograd. Backward: re-encode each chunk with autograd and
    push the incoming feature gradient through it (the released code's sampled backward)."""

    @staticmethod
    def forward(ctx: Any, anchor, encoder, clips, chunks, chunk):  # noqa: ANN001, ANN205
        del anchor  # only makes the output require grad, so that backward runs
        ctx.encoder, ctx.clips, ctx.chunks = encoder, clips, chunks
        return encode_no_grad(encoder, clips, chunk)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):  # noqa: ANN205
        for idx in ctx.chunks:  # one chunk's activations alive at a time
            with torch.enable_grad():
                feats = ctx.encoder(ctx.clips[idx])  # (c, D)
            torch.autograd.backward(feats, grad[idx])
        return None, None, None, None, None


def encode_chunked(
    encoder: nn.Module, clips: torch.Tensor, chunks: list[torch.Tensor], chunk: int
) -> torch.Tensor:
    """The released code's EGS (module docstring).

    Args:
        encoder: clips -> features.
        clips: (N, 3, t, H, W).
        chunks: index tensors into ``clips``; each is re-encoded with autograd during backward.
        chunk: clips per no-grad call of the forward.

    Returns:
        (N, D) features whose backward accumulates the encoder's gradients chunk by chunk.
    """
    anchor = torch.ones((), requires_grad=torch.is_grad_enabled() and bool(chunks))
    return _ChunkedReforward.apply(anchor, encoder, clips, chunks, chunk)


# ---------------------------------------------------------------------- the module


class EgsEncoder(nn.Module):
    """A video encoder over items' snippet clips, trained with EGS (module docstring).

    Args:
        enc_cfg: the encoder (``model.encoder``).
        ratio: EGS ratio in [0, 1] (0 freezes the whole encoder).
        strategy: ``random`` | ``grid`` | ``block``.
        variant: ``single`` | ``chunked``.
        chunk: snippets per re-forward of the chunked variant (released code: 4).
        batch: snippets per no-grad encoder call (bounds the no-grad passes' memory; larger
            calls are faster on CPUs).
    """

    def __init__(
        self,
        enc_cfg: EncoderConfig,
        ratio: float,
        strategy: str,
        variant: str,
        chunk: int = 4,
        batch: int = 64,
    ) -> None:
        super().__init__()
        self.encoder = VideoEncoder(enc_cfg)
        self.ratio, self.strategy, self.variant = ratio, strategy, variant
        self.chunk, self.batch = chunk, batch
        # Its own stream, seeded from the global one at construction (which every ratio does
        # alike): the sampling draws of the detector (DPS, the loss) are then the same whatever
        # the EGS ratio, strategy or variant, and runs differ only by what EGS changes.
        self.generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
        self._frozen_feats: dict[tuple[str, int, int], torch.Tensor] = {}
        if ratio == 0.0:
            self.encoder.freeze(len(self.encoder.stages))
        self.last_grad_snippets = 0  # snippets that got gradients in the last training step

    @property
    def out_dim(self) -> int:
        """D."""
        return self.encoder.out_dim

    def prepare(self, ds: TalDataset, subset: str) -> None:
        """Load the pretrained weights ``model.encoder.pretrained`` names (``auto``: cached
        snippet-classification pretraining on ``subset`` of ``ds``, trained on first use)."""
        how = self.encoder.cfg.pretrained
        if how == "none":
            return
        if how == "auto":
            if getattr(ds, "provides", "features") != "frames":
                raise TalBenchError(f"dataset {ds.name!r} has no frames to pretrain an encoder on")
            how = str(ensure_pretrained(self.encoder.cfg, ds, subset))
        load_weights(self.encoder, how)
        self._frozen_feats.clear()

    def forward(self, items: list[VideoItem], device: torch.device) -> tuple[torch.Tensor, ...]:
        """Features of every item's valid snippets, zero on padded steps.

        Returns:
            ``feats`` (B, D, T) and ``mask`` (B, T); in training, gradients reach the encoder
            through the selected snippets only.
        """
        if any("frames" not in it for it in items):
            raise TalBenchError(
                "model.encoder is set but the items hold no frames; use a frames dataset "
                "(e.g. synthetic-thumos14-frames) or set model.encoder.kind=none"
            )
        length = max(int(it["mask"].shape[0]) for it in items)
        mask = torch.zeros(len(items), length, dtype=torch.bool, device=device)
        lengths = []
        for b, it in enumerate(items):
            mask[b, : it["mask"].shape[0]] = it["mask"].to(device)
            lengths.append(int(it["mask"].sum()))
        if self.training and self.ratio == 0.0:
            flat = self._frozen(items, lengths, device)
        else:
            clips = torch.cat([it["frames"][:n] for it, n in zip(items, lengths, strict=True)])
            flat = self._encode(clips.to(device), lengths)  # (N, D)
        b_idx = torch.repeat_interleave(torch.arange(len(items)), torch.tensor(lengths))
        t_idx = torch.cat([torch.arange(n) for n in lengths])
        feats = flat.new_zeros(len(items), length, flat.shape[1])  # (B, T, D)
        feats = feats.index_put((b_idx.to(device), t_idx.to(device)), flat)
        return feats.transpose(1, 2), mask  # (B, D, T), (B, T)

    def _encode(self, clips: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """(N, 3, t, H, W) clips of the batch's items, item after item -> (N, D)."""
        if not self.training or self.ratio == 0.0:
            self.last_grad_snippets = 0
            return encode_no_grad(self.encoder, clips, self.batch)
        chunk = self.chunk if self.variant == "chunked" else None
        offsets = torch.tensor([0, *lengths]).cumsum(0).tolist()
        picks = [
            offsets[b] + select_snippets(n, self.ratio, self.strategy, self.generator, chunk)
            for b, n in enumerate(lengths)
        ]
        self.last_grad_snippets = sum(int(p.numel()) for p in picks)
        if self.variant == "single":
            return encode_single_pass(self.encoder, clips, torch.cat(picks), self.batch)
        chunks = [c for p in picks for c in torch.split(p, self.chunk)]
        return encode_chunked(self.encoder, clips, chunks, self.batch)

    def _frozen(self, items: list[VideoItem], lengths: list[int], device) -> torch.Tensor:
        """Ratio 0 in training: each item's features computed once, then reused."""
        out = []
        for it, n in zip(items, lengths, strict=True):
            key = (it["video_id"], int(it["window_start"]), n)
            if key not in self._frozen_feats:
                clips = it["frames"][:n].to(device)
                self._frozen_feats[key] = encode_no_grad(self.encoder, clips, self.batch)
            out.append(self._frozen_feats[key])
        self.last_grad_snippets = 0
        return torch.cat(out)

    def trainable(self) -> list[nn.Parameter]:
        """The encoder parameters that receive gradients (none at ratio 0)."""
        return [p for p in self.encoder.parameters() if p.requires_grad]
