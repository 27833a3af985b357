"""TadTR: "End-to-end Temporal Action Detection with Transformer" (Liu et al., IEEE TIP 2022),
the efficiency study's case, following the official code (xlliu7/TadTR at 983ae14) in plain
PyTorch.

* Input projection: Conv1d(C_in -> D, k 1) + GroupNorm(32); normalised sine positions plus a
  learned level embedding.
* Deformable transformer (D 256, 8 heads, FFN 1024, dropout 0.1): 4 encoder layers of temporal
  deformable self-attention (4 points), 4 decoder layers of query self-attention + deformable
  cross-attention (4 points) over 40 action queries.
* Iterative segment refinement: every decoder layer has its own class head (Linear, prior 0.01)
  and segment MLP (3 layers) refining the sigmoid-space ``(centre, width)`` of the previous
  layer; the first layer refines a point predicted from the query embedding.
* Actionness head: 1-D RoI-align (16 bins) of each final segment widened 1.5x over the encoder
  output, MLP to one sigmoid score; final score = sigmoid(class) x actionness.
* Loss: Hungarian matching and focal / L1 / IoU / actionness terms (``tadtr_losses``).
* Inference per item: the top 100 (query, class) pairs by score; windows of one video are then
  merged by class-wise NMS on the windows' overlap regions only (the ``overlap_nms`` rule of
  ``tal_bench.postprocess``, declared in the spec below).

Coordinates: items carry GT in grid units (step i at x = i); inside the model segments are
normalised to the item's valid steps (step i spans ``[i, i + 1] / L``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tal_bench.data.items import stack_items
from tal_bench.errors import TalBenchError
from tal_bench.models.base import ModelSpec, PostDecl, predict_split
from tal_bench.models.tadtr_losses import (
    LossWeights,
    MatchCosts,
    cw_to_se,
    set_criterion,
    targets_from_items,
)
from tal_bench.models.tadtr_modules import (
    ActionnessHead,
    DecoderLayer,
    DeformAttn1d,
    EncoderLayer,
    Mlp,
    clones,
    refine,
    sine_position_embedding,
)
from tal_bench.registry import MODELS
from tal_bench.types import ItemDetections, VideoItem

CLASS_PRIOR = 0.01  # initial class probability (focal-loss bias init)
FIRST_WIDTH_LOGIT = -2.0  # first segment MLP's width bias: initial width sigmoid(-2) = 0.12
SLOW_LR_NAMES = ("sampling_offsets", "reference_points")  # trained at lr_mult_offsets x LR
UNCAPPED = 1_000_000  # detections per video: the official fusion keeps all (100 per window)


@dataclass(frozen=True)
class TadtrConfig:
    """TadTR hyperparameters; defaults are the official THUMOS-14 config
    (``configs/thumos14_i3d2s_tadtr.yml`` over ``opts.py``)."""

    hidden_dim: int = 256  # transformer width D
    heads: int = 8
    enc_layers: int = 4
    dec_layers: int = 4
    ffn_dim: int = 1024
    dropout: float = 0.1
    enc_points: int = 4  # sampling points per head, encoder
    dec_points: int = 4  # sampling points per head, decoder cross-attention
    num_queries: int = 40
    gn_groups: int = 32  # GroupNorm groups of the input projection
    actionness: bool = True  # actionness head (act_reg)
    roi_bins: int = 16  # RoI-align bins of the actionness head
    roi_scale: float = 1.5  # actionness RoI = predicted segment widened by this factor
    aux_loss: bool = True  # losses at every decoder layer
    cost_cls: float = 6.0  # matching cost weights (set_cost_*)
    cost_seg: float = 5.0
    cost_iou: float = 2.0
    loss_cls: float = 2.0  # loss weights (*_loss_coef)
    loss_seg: float = 5.0
    loss_iou: float = 2.0
    loss_actionness: float = 4.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    topk: int = 100  # (query, class) pairs kept per item (postproc_ins_topk)
    lr_mult_offsets: float = 0.1  # LR multiplier of sampling offsets and reference points

    def __post_init__(self) -> None:
        checks = [
            (
                self.hidden_dim % self.heads == 0 and self.hidden_dim % 2 == 0,
                "model.hidden_dim must be even and divisible by model.heads",
            ),
            (
                self.hidden_dim % self.gn_groups == 0,
                "model.hidden_dim must be divisible by model.gn_groups",
            ),
            (
                min(self.enc_layers, self.dec_layers, self.num_queries, self.topk) >= 1,
                "model.enc_layers, dec_layers, num_queries and topk must be >= 1",
            ),
            (
                min(self.enc_points, self.dec_points, self.roi_bins, self.ffn_dim) >= 1,
                "model.enc_points, dec_points, roi_bins and ffn_dim must be >= 1",
            ),
            (0.0 <= self.dropout < 1.0, "model.dropout must be in [0, 1)"),
            (self.roi_scale > 0 and self.lr_mult_offsets > 0, "model.roi_scale and "
             "model.lr_mult_offsets must be > 0"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise TalBenchError(f"{message} (got {self})")


DenseOut = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


class Tadtr(nn.Module):
    """The TadTR detector (class-aware: labels are class ids)."""

    def __init__(self, cfg: TadtrConfig, input_dim: int, num_classes: int) -> None:
        super().__init__()
        self.cfg = cfg
        dim = cfg.hidden_dim
        self.input_proj = nn.Sequential(
            nn.Conv1d(input_dim, dim, 1), nn.GroupNorm(cfg.gn_groups, dim)
        )
        self.level_embed = nn.Parameter(torch.empty(dim))
        enc = EncoderLayer(dim, cfg.heads, cfg.enc_points, cfg.ffn_dim, cfg.dropout)
        dec = DecoderLayer(dim, cfg.heads, cfg.dec_points, cfg.ffn_dim, cfg.dropout)
        self.encoder = clones(enc, cfg.enc_layers)
        self.decoder = clones(dec, cfg.dec_layers)
        self.query_embed = nn.Embedding(cfg.num_queries, 2 * dim)  # [position | content]
        self.reference_points = nn.Linear(dim, 1)
        # One head each, deep-copied per decoder layer (the official clones start identical).
        self.class_heads = clones(nn.Linear(dim, num_classes), cfg.dec_layers)
        self.segment_heads = clones(Mlp(dim, dim, 2, 3), cfg.dec_layers)
        self.actionness = (
            ActionnessHead(dim, cfg.roi_bins, cfg.roi_scale) if cfg.actionness else None
        )
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """The official initialisation (Deformable DETR's transformer reset, DETR heads)."""
        for layers in (self.encoder, self.decoder):
            for p in layers.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, DeformAttn1d):
                m.reset_parameters()
        nn.init.xavier_uniform_(self.reference_points.weight)
        nn.init.zeros_(self.reference_points.bias)
        nn.init.normal_(self.level_embed)
        nn.init.xavier_uniform_(self.input_proj[0].weight)
        nn.init.zeros_(self.input_proj[0].bias)
        bias = -torch.log(torch.tensor((1.0 - CLASS_PRIOR) / CLASS_PRIOR)).item()
        for head in self.class_heads:
            nn.init.constant_(head.bias, bias)
        for mlp in self.segment_heads:
            nn.init.zeros_(mlp.layers[-1].weight)
            nn.init.zeros_(mlp.layers[-1].bias)
        nn.init.constant_(self.segment_heads[0].layers[-1].bias[1:], FIRST_WIDTH_LOGIT)

    def _device(self) -> torch.device:
        return self.level_embed.device

    def optimizer_groups(self) -> list[dict]:
        """Parameter groups: sampling offsets and reference points at ``lr_mult_offsets`` x LR."""
        slow, rest = [], []
        for name, p in self.named_parameters():
            (slow if any(key in name for key in SLOW_LR_NAMES) else rest).append(p)
        return [{"params": rest}, {"params": slow, "lr_mult": self.cfg.lr_mult_offsets}]

    def forward_dense(self, feats: torch.Tensor, mask: torch.Tensor) -> DenseOut:
        """The network on a batch.

        Args:
            feats: (B, C_in, T); mask: (B, T) True on valid steps (padding at the end).

        Returns:
            ``logits`` (L, B, Q, K) and ``segments`` (L, B, Q, 2) normalised ``(c, w)`` per
            decoder layer, ``actionness`` (B, Q) or None.
        """
        valid = mask.bool()
        padding = ~valid
        n_batch, _, length = feats.shape
        lengths = valid.sum(dim=1).to(feats.dtype)  # (B,)
        src = self.input_proj(feats).transpose(1, 2)  # (B, T, D)
        pos = sine_position_embedding(valid, src.shape[-1]) + self.level_embed  # (B, T, D)
        centres = (torch.arange(length, device=feats.device, dtype=feats.dtype) + 0.5) / length
        enc_ref = centres[None, :, None].expand(n_batch, length, 1)  # (B, T, 1)
        memory = src
        for layer in self.encoder:
            memory = layer(memory, pos, enc_ref, padding)  # (B, T, D)
        # A copy, not an expanded view: torch's module tracker (FlopCounterMode) rejects views
        # of parameters made under no_grad when they enter a submodule.
        queries = self.query_embed.weight.repeat(n_batch, 1, 1)  # (B, Q, 2D)
        query_pos, tgt = queries.split(src.shape[-1], dim=2)  # (B, Q, D) each
        refs = [torch.sigmoid(self.reference_points(query_pos))]  # [(B, Q, 1)]
        ratio = (lengths / length)[:, None, None]  # decoder references live on the valid steps
        hidden = []
        for lid, layer in enumerate(self.decoder):
            tgt = layer(tgt, query_pos, refs[-1] * ratio, memory, padding)  # (B, Q, D)
            hidden.append(tgt)
            if lid < len(self.decoder) - 1:  # the next layer's reference (none after the last)
                refs.append(refine(self.segment_heads[lid](tgt), refs[-1]).detach())
        logits = torch.stack([head(h) for head, h in zip(self.class_heads, hidden, strict=True)])
        # As the official head, each layer's segment MLP is applied again here (the decoder's
        # application only fed the next reference, detached); the MACs the study counted
        # include both.
        segments = torch.stack(
            [
                refine(seg_head(h), ref)
                for seg_head, h, ref in zip(self.segment_heads, hidden, refs, strict=True)
            ]
        )  # (L, B, Q, 2)
        actionness = None
        if self.actionness is not None:
            actionness = self.actionness(memory.transpose(1, 2), segments[-1], lengths)
        return logits, segments, actionness

    def _batch(self, items: list[VideoItem]) -> tuple[torch.Tensor, torch.Tensor]:
        feats, mask = stack_items(items)  # (B, C, T), (B, T)
        return feats.to(self._device()), mask.to(self._device())

    def training_step(self, items: list[VideoItem]) -> dict[str, torch.Tensor]:
        """Forward and the set loss (``tadtr_losses.set_criterion``)."""
        feats, mask = self._batch(items)
        logits, segments, actionness = self.forward_dense(feats, mask)
        lengths = mask.sum(dim=1).tolist()
        targets = targets_from_items(
            [it["segments"].to(feats.device) for it in items],
            [it["labels"].to(feats.device) for it in items],
            lengths,
        )
        costs = MatchCosts(
            self.cfg.cost_cls, self.cfg.cost_seg, self.cfg.cost_iou,
            self.cfg.focal_alpha, self.cfg.focal_gamma,
        )  # fmt: skip
        weights = LossWeights(
            self.cfg.loss_cls, self.cfg.loss_seg, self.cfg.loss_iou, self.cfg.loss_actionness,
            self.cfg.focal_alpha, self.cfg.focal_gamma,
        )  # fmt: skip
        return set_criterion(
            logits, segments, actionness, targets, costs, weights, aux=self.cfg.aux_loss
        )

    def predict(self, items: list[VideoItem]) -> list[ItemDetections]:
        """Top-``topk`` (query, class) pairs per item, in grid coordinates, class ids as labels."""
        return predict_split(self, *self._batch(items))

    def postprocess(self, out: DenseOut, mask: torch.Tensor) -> list[ItemDetections]:
        """Score = sigmoid(class) x actionness; keep the ``topk`` best (query, class) pairs.

        Segments are not clipped (the official code does not); the pipeline clips to the video.
        """
        logits, segments, actionness = out
        prob = torch.sigmoid(logits[-1])  # (B, Q, K)
        if actionness is not None:
            prob = prob * actionness[..., None]
        n_batch, n_query, n_cls = prob.shape
        scores, flat = prob.reshape(n_batch, -1).topk(min(self.cfg.topk, n_query * n_cls), dim=1)
        query, labels = flat // n_cls, flat % n_cls  # (B, k) each
        edges = cw_to_se(segments[-1])  # (B, Q, 2) normalised
        lengths = mask.sum(dim=1).tolist()
        dets = []
        for b, length in enumerate(lengths):
            segs = edges[b, query[b]] * float(length) - 0.5  # (k, 2) grid coordinates
            dets.append(
                ItemDetections(
                    segments=segs.detach().float().cpu(),
                    scores=scores[b].detach().float().cpu(),
                    labels=labels[b].detach().long().cpu(),
                )
            )
        return dets


def build(cfg: TadtrConfig | None, input_dim: int, num_classes: int) -> Tadtr:
    """Build TadTR for ``input_dim``-d features and ``num_classes`` classes."""
    return Tadtr(cfg if cfg is not None else TadtrConfig(), input_dim, num_classes)


MODELS.register("tadtr")(
    ModelSpec(
        name="tadtr",
        config_cls=TadtrConfig,
        build=build,
        description="TadTR (TIP 2022): deformable DETR-style transformer, 40 queries, actionness",
        class_agnostic=False,
        native_mode="window",  # THUMOS: sliding windows (data.window / strides in the presets)
        # After predict's top-100 per window: the official cross-window fusion, class-wise hard
        # NMS (0.4) on the windows' overlap regions only (xlliu7/TadTR datasets/tad_eval.py),
        # which caps nothing: every window's detections are kept.
        post=PostDecl(
            window_merge="overlap_nms", merge_params={"iou": 0.4}, max_dets_per_video=UNCAPPED
        ),
    )
)
