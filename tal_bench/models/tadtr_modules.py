"""TadTR building blocks: sine position embedding, temporal deformable attention, the
deformable encoder/decoder layers with iterative segment refinement, and the actionness head.

Follows TadTR (Liu et al., IEEE TIP 2022), xlliu7/TadTR ``models/transformer.py``,
``models/position_encoding.py``, ``models/ops/temporal_deform_attn`` and ``models/tadtr.py``;
Deformable DETR (fundamentalvision/Deformable-DETR) is the design both descend from.

Conventions: sequences are batch-first ``(B, T, D)``; ``padding`` is a ``(B, T)`` bool that is
True on padded steps (the official ``NestedTensor`` mask). Segments are ``(centre, width)``
normalised to an item's valid steps: step i spans ``[i, i + 1] / L``.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from tal_bench.models.ops.deform_attn_1d import deform_attn_1d
from tal_bench.models.ops.roi_align_1d import roi_align_1d

INV_SIGMOID_EPS = 1e-5  # Deformable DETR's inverse_sigmoid clamp


def inverse_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """logit(x) with x clamped to [eps, 1 - eps] as Deformable DETR does."""
    x = x.clamp(min=0.0, max=1.0)
    return torch.log(x.clamp(min=INV_SIGMOID_EPS) / (1.0 - x).clamp(min=INV_SIGMOID_EPS))


def sine_position_embedding(
    valid: torch.Tensor, dim: int, temperature: float = 10000.0
) -> torch.Tensor:
    """Normalised sine embedding of the step positions (DETR's ``PositionEmbeddingSine``, 1-D).

    Position = cumulative count of valid steps divided by the valid count, times 2π, so the
    last valid step sits at 2π whatever the length; channel pairs (2k, 2k + 1) hold the sine and
    cosine of ``position / temperature ** (2k / dim)``.

    Args:
        valid: (B, T) bool, True on real steps (padding at the end).
        dim: embedding width (even).

    Returns:
        (B, T, dim) embeddings.
    """
    pos = valid.cumsum(1, dtype=torch.float32)  # (B, T)
    pos = pos / (pos[:, -1:] + 1e-6) * (2.0 * math.pi)
    index = torch.arange(dim, dtype=torch.float32, device=valid.device)
    freq = temperature ** (2.0 * torch.div(index, 2, rounding_mode="floor") / dim)  # (dim,)
    angle = pos[:, :, None] / freq  # (B, T, dim)
    return torch.stack([angle[..., 0::2].sin(), angle[..., 1::2].cos()], dim=3).flatten(2)


class Mlp(nn.Module):
    """``layers`` Linear layers with ReLU between them (DETR's ``MLP``)."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int, layers: int) -> None:
        super().__init__()
        dims = [d_in] + [d_hidden] * (layers - 1)
        outs = [d_hidden] * (layers - 1) + [d_out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, outs, strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class DeformAttn1d(nn.Module):
    """Temporal deformable attention: each query attends to ``points`` sampled steps per head.

    Sampling offsets and attention weights are linear functions of the query. With a 1-D
    reference (a point, normalised), offsets are in steps of the padded sequence; with a 2-D
    reference (a segment ``(c, w)``), they are relative to the segment: ``c + off / P * w / 2``.
    """

    def __init__(self, dim: int, heads: int, points: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"model.hidden_dim ({dim}) must be divisible by model.heads ({heads})")
        self.heads, self.points = heads, points
        self.sampling_offsets = nn.Linear(dim, heads * points)
        self.attention_weights = nn.Linear(dim, heads * points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official init: zero offset weights, offsets fanned out per head, uniform attention."""
        nn.init.zeros_(self.sampling_offsets.weight)
        # Head h starts at cos(4πh / H) * (p + 1) steps: +, 0, -, 0, ... times 1..P.
        theta = torch.arange(self.heads, dtype=torch.float32) * (4.0 * math.pi / self.heads)
        fan = theta.cos()[:, None] * torch.arange(1, self.points + 1, dtype=torch.float32)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(fan.reshape(-1))  # (H * P,), head-major
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(
        self,
        query: torch.Tensor,
        reference: torch.Tensor,
        source: torch.Tensor,
        padding: torch.Tensor,
    ) -> torch.Tensor:
        """Attend from ``query`` (B, Q, D) to ``source`` (B, T, D).

        Args:
            query: (B, Q, D) queries (content + position).
            reference: (B, Q, 1) points or (B, Q, 2) segments, normalised to the padded length.
            source: (B, T, D) the attended sequence.
            padding: (B, T) True on padded steps (their values are zeroed).

        Returns:
            (B, Q, D).
        """
        n_batch, n_query, _ = query.shape
        length = source.shape[1]
        value = self.value_proj(source).masked_fill(padding[..., None], 0.0)  # (B, T, D)
        value = value.view(n_batch, length, self.heads, -1)  # (B, T, H, Dh)
        shape = (n_batch, n_query, self.heads, self.points)
        offsets = self.sampling_offsets(query).view(shape)  # (B, Q, H, P)
        weights = F.softmax(self.attention_weights(query).view(shape), dim=-1)  # (B, Q, H, P)
        if reference.shape[-1] == 1:
            locations = reference[..., None] + offsets / length  # (B, Q, H, P)
        else:
            centre, width = reference[..., :1, None], reference[..., 1:, None]  # (B, Q, 1, 1)
            locations = centre + offsets / self.points * width * 0.5
        return self.output_proj(deform_attn_1d(value, locations, weights))  # (B, Q, D)


class EncoderLayer(nn.Module):
    """Post-norm layer: deformable self-attention over the sequence, then the FFN."""

    def __init__(self, dim: int, heads: int, points: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = DeformAttn1d(dim, heads, points)
        self.norm1 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, src: torch.Tensor, pos: torch.Tensor, reference: torch.Tensor, padding: torch.Tensor
    ) -> torch.Tensor:
        """(B, T, D) -> (B, T, D)."""
        src = self.norm1(src + self.dropout(self.self_attn(src + pos, reference, src, padding)))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout(ffn))


class DecoderLayer(nn.Module):
    """Post-norm layer: query self-attention, deformable cross-attention, FFN."""

    def __init__(self, dim: int, heads: int, points: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout)  # sequence-first
        self.norm2 = nn.LayerNorm(dim)
        self.cross_attn = DeformAttn1d(dim, heads, points)
        self.norm1 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        tgt: torch.Tensor,
        query_pos: torch.Tensor,
        reference: torch.Tensor,
        memory: torch.Tensor,
        padding: torch.Tensor,
    ) -> torch.Tensor:
        """(B, Q, D) queries attending to the (B, T, D) encoder memory -> (B, Q, D)."""
        qk = (tgt + query_pos).transpose(0, 1)  # (Q, B, D)
        attn = self.self_attn(qk, qk, tgt.transpose(0, 1), need_weights=False)[0]
        tgt = self.norm2(tgt + self.dropout(attn.transpose(0, 1)))
        cross = self.cross_attn(tgt + query_pos, reference, memory, padding)
        tgt = self.norm1(tgt + self.dropout(cross))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout(ffn))


def refine(delta: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Iterative segment refinement: the new ``(c, w)`` from a layer's offsets and its reference.

    A point reference (the first layer) refines the centre only; the width is predicted from
    scratch. A segment reference refines both in logit space.

    Args:
        delta: (B, Q, 2) output of the layer's segment MLP.
        reference: (B, Q, 1) or (B, Q, 2) in (0, 1).

    Returns:
        (B, Q, 2) sigmoid-space ``(c, w)``.
    """
    if reference.shape[-1] == 2:
        return torch.sigmoid(delta + inverse_sigmoid(reference))
    centre = delta[..., :1] + inverse_sigmoid(reference)
    return torch.sigmoid(torch.cat([centre, delta[..., 1:]], dim=-1))


def clones(module: nn.Module, count: int) -> nn.ModuleList:
    return nn.ModuleList(copy.deepcopy(module) for _ in range(count))


class ActionnessHead(nn.Module):
    """RoI-align of each predicted segment (widened 1.5x) over the encoder memory, then an MLP
    to one sigmoid actionness (the official head's 16 bins x D channels -> D -> D -> 1)."""

    def __init__(self, dim: int, bins: int, scale: float) -> None:
        super().__init__()
        self.bins, self.scale = bins, scale
        self.mlp = nn.Sequential(
            nn.Linear(bins * dim, dim),
            nn.ReLU(inplace=True),
            nn.Linear(dim, dim),
            nn.ReLU(inplace=True),
            nn.Linear(dim, 1),
        )

    def forward(
        self, memory: torch.Tensor, segments: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """Actionness of every query's segment.

        Args:
            memory: (B, D, T) encoder output.
            segments: (B, Q, 2) normalised ``(c, w)`` (no gradient flows through the RoIs).
            lengths: (B,) valid steps per item (float).

        Returns:
            (B, Q) actionness in (0, 1).
        """
        n_batch, n_query, _ = segments.shape
        seg = segments.detach()
        half = seg[..., 1:] * (self.scale / 2.0)
        length = lengths[:, None, None]  # (B, 1, 1)
        # Official coordinates: [0, L] for the L valid steps, torchvision roi_align without the
        # half-step alignment (feature j sits at j), RoIs clamped to the sequence.
        bounds = (torch.cat([seg[..., :1] - half, seg[..., :1] + half], dim=-1) * length).clamp(
            min=torch.zeros_like(length), max=length
        )  # (B, Q, 2)
        batch_idx = torch.arange(n_batch, device=seg.device, dtype=seg.dtype)
        rois = torch.cat([batch_idx[:, None, None].expand(n_batch, n_query, 1), bounds], dim=-1)
        pooled = roi_align_1d(memory, rois.reshape(-1, 3), self.bins)  # (B*Q, D, bins)
        feats = pooled.reshape(n_batch, n_query, -1)  # (B, Q, D * bins), channel-major
        return torch.sigmoid(self.mlp(feats)).squeeze(-1)  # (B, Q)
