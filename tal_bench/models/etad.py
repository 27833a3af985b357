"""ETAD: "ETAD: Training Action Detection End to End on a Laptop" (Liu et al., CVPRW 2023), the
detector with Detector Proposal Sampling, following the official code (sming256/ETAD:
lib/models/detector for the architecture, lib/loss/model_loss.py, lib/utils/sampler.py for DPS,
lib/dataset/anet_1_3/post_det.py for the post-processing).
With ``model.encoder`` set it reads snippet clips of a frames dataset and trains a video
encoder with Encoder Gradient Sampling (``tal_bench.models.egs``).

Coordinates: items carry GT in grid units (feature i at x = i). Inside the model, proposals use
ETAD's snippet-edge units (snippet i spans [i, i + 1]; map cell (d, t) is [t, t + d + 1], i.e.
grid [t - 0.5, t + d + 0.5]). Padded steps (mask False) get no proposals and no TEM loss.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from tal_bench.config import SAMPLING_STRATEGIES
from tal_bench.data.items import stack_items
from tal_bench.errors import TalBenchError
from tal_bench.models.base import ModelSpec, PostDecl
from tal_bench.models.egs import VARIANTS, EgsEncoder
from tal_bench.models.encoders.resnet import EncoderConfig
from tal_bench.models.etad_losses import (
    LossWeights,
    assign_gt,
    balanced_bce,
    boundary_targets,
    stage_loss,
    tem_targets,
)
from tal_bench.models.etad_modules import FeatureModule, PemStage, TemporalEvaluation
from tal_bench.models.etad_modules import refine_anchors as _refine
from tal_bench.models.etad_post import postprocess_items
from tal_bench.models.ops.dps import sample_cells, valid_cells
from tal_bench.models.ops.roi_align_1d import reuse_tables
from tal_bench.registry import MODELS
from tal_bench.types import ItemDetections, VideoItem

if TYPE_CHECKING:
    from tal_bench.data.datasets import TalDataset


@dataclass(frozen=True)
class EtadConfig:
    """ETAD hyperparameters; defaults are the official ActivityNet design (sming256/ETAD,
    lib/models/detector/, configs/anet/)."""

    feature_module: Literal["lstm", "conv", "transformer"] = "lstm"  # Table 4(a) ablation
    hidden_dim: int = 256  # feature-module width (LSTM hidden size)
    roi_dim: int = 128  # PEM reduce-conv width (RoI-align channels)
    ext_dim: int = 512  # width of the extended-RoI FC and the start/end regressor FC
    fc_dim: int = 128  # width of the three FC layers of every head
    groups: int = 4  # groups of the grouped convs
    gn_groups: int = 16  # GroupNorm groups
    transformer_heads: int = 8  # attention heads ('transformer' feature module only)
    max_duration: int = 128  # D: proposal-map rows (longest proposal in steps); THUMOS 64
    roi_size: int = 24  # RoI-align bins of the extended RoI (multiple of 4)
    roi_extend: float = 0.5  # RoI extension on each side, as a fraction of the proposal length
    roi_aligned: bool = False  # torchvision aligned flag (official False, OpenTAD True)
    num_stages: int = 3  # cascade stages, Table 4(b)
    stage_iou_thresholds: tuple[float, ...] = (0.7, 0.8, 0.9)  # boundary-regression positives
    iou_pos_threshold: float = 0.9  # IoU-classification positives (every stage)
    loss_iou_cls: float = 1.0  # coef_pem_cls
    loss_iou_reg: float = 5.0  # coef_pem_reg
    loss_bnd_reg: float = 10.0  # coef_pem_bnd, on each of the four Smooth-L1 terms
    loss_bnd_cls: float = 0.5  # weight of the per-proposal start/end classification
    dps_ratio: float = 0.06  # Detector Proposal Sampling ratio in (0, 1] (training only)
    dps_strategy: Literal["random", "grid", "block"] = "random"
    nms_sigma: float = 0.35  # Gaussian soft-NMS sigma per item (ANet 0.35, THUMOS 0.3)
    nms_max_keep: int = 100  # detections kept per item (ANet 100, THUMOS 200)
    infer_chunk: int = 16384  # proposals per PEM chunk at inference (memory bound only)
    # End-to-end training from frames (models/egs.py): the video encoder ("none": features)
    # and Encoder Gradient Sampling; the paper's default is random at 10 %.
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    egs_ratio: float = 0.1  # share of snippets back-propagated to the encoder, in [0, 1]
    egs_strategy: Literal["random", "grid", "block"] = "random"
    egs_variant: Literal["single", "chunked"] = "single"  # paper's one pass | released code
    egs_chunk: int = 4  # snippets per re-forward of the chunked variant (released code: 4)
    encoder_batch: int = 64  # snippets per no-grad encoder call (a memory bound only)

    def __post_init__(self) -> None:
        self.encoder.check()
        checks = [
            (0.0 <= self.egs_ratio <= 1.0, "model.egs_ratio must be in [0, 1], e.g. 0.1"),
            (
                self.egs_strategy in SAMPLING_STRATEGIES,
                "model.egs_strategy must be random, grid or block",
            ),
            (self.egs_variant in VARIANTS, "model.egs_variant must be single or chunked"),
            (
                self.egs_chunk >= 1 and self.encoder_batch >= 1,
                "model.egs_chunk and model.encoder_batch must be >= 1",
            ),
            (
                self.egs_variant == "single" or self.egs_strategy == "random",
                "model.egs_variant=chunked samples randomly only (as the released code); "
                "set model.egs_strategy=random",
            ),
            (
                self.feature_module in ("lstm", "conv", "transformer"),
                "model.feature_module must be lstm, conv or transformer",
            ),
            (
                self.dps_strategy in SAMPLING_STRATEGIES,
                "model.dps_strategy must be random, grid or block",
            ),
            (0.0 < self.dps_ratio <= 1.0, "model.dps_ratio must be in (0, 1], e.g. 0.06"),
            (
                1 <= self.num_stages <= len(self.stage_iou_thresholds),
                "model.num_stages must be between 1 and len(model.stage_iou_thresholds) (3)",
            ),
            (
                self.roi_size >= 4 and self.roi_size % 4 == 0,
                "model.roi_size must be a multiple of 4, e.g. 24",
            ),
            (
                self.hidden_dim % (2 * self.groups) == 0
                and (self.hidden_dim // 2) % self.gn_groups == 0,
                "model.hidden_dim must be divisible by 2*groups and hidden_dim/2 by gn_groups",
            ),
            (
                self.feature_module != "transformer"
                or self.hidden_dim % self.transformer_heads == 0,
                "model.hidden_dim must be divisible by model.transformer_heads",
            ),
            (
                self.max_duration >= 1 and self.nms_max_keep >= 1 and self.infer_chunk >= 1,
                "model.max_duration, nms_max_keep and infer_chunk must be >= 1",
            ),
            (self.nms_sigma > 0, "model.nms_sigma must be > 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise TalBenchError(f"{message} (got {self})")


DenseOut = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class Etad(nn.Module):
    """The ETAD detector (class-agnostic proposals; a video-level classifier labels them)."""

    def __init__(self, cfg: EtadConfig, input_dim: int) -> None:
        super().__init__()
        if cfg.encoder.kind != "none":
            input_dim = cfg.encoder.out_dim
        elif input_dim == 0:
            raise TalBenchError(
                "the dataset gives frames, not features: set model.encoder.kind=tsm (or "
                "r2plus1d), e.g. with --preset egs"
            )
        if input_dim % cfg.groups:
            raise TalBenchError(
                f"ETAD needs the feature dimension ({input_dim}) divisible by model.groups "
                f"({cfg.groups}); set model.groups to a divisor"
            )
        self.cfg = cfg
        self.features = FeatureModule(input_dim, cfg)
        self.tem = TemporalEvaluation(cfg)
        self.stages = nn.ModuleList(PemStage(cfg) for _ in range(cfg.num_stages))
        self.loss_weights = LossWeights(
            cfg.loss_iou_cls, cfg.loss_iou_reg, cfg.loss_bnd_reg, cfg.loss_bnd_cls
        )
        self.generator: torch.Generator | None = None  # None = global torch RNG
        for m in self.modules():  # official reset_params: Xavier weights, zero bias
            if isinstance(m, nn.Conv1d | nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        self.encoder: EgsEncoder | None = None
        if cfg.encoder.kind != "none":
            self.encoder = EgsEncoder(
                cfg.encoder, cfg.egs_ratio, cfg.egs_strategy, cfg.egs_variant, cfg.egs_chunk,
                cfg.encoder_batch,
            )  # fmt: skip

    def prepare(self, ds: TalDataset, train_subset: str) -> None:
        """Before training: load (or first make) the encoder's pretrained weights."""
        if self.encoder is not None:
            self.encoder.prepare(ds, train_subset)

    def optimizer_groups(self) -> list[dict]:
        """The detector's parameters, and the encoder's as the group ``encoder`` (it trains at
        ``train.encoder_lr`` and its gradient is clipped apart, ``tal_bench.train``)."""
        enc = self.encoder.trainable() if self.encoder is not None else []
        seen = {id(p) for p in enc}
        det = [p for p in self.parameters() if p.requires_grad and id(p) not in seen]
        return [{"params": det}, {"params": enc, "name": "encoder"}]

    def inputs(
        self, items: list[VideoItem], device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, T) features and (B, T) mask: the items' own, or the encoder's from frames."""
        if self.encoder is not None:
            return self.encoder(items, device)
        if items[0]["feats"].shape[0] == 0:
            raise TalBenchError("the items hold frames: set model.encoder.kind=tsm (--preset egs)")
        feats, mask = stack_items(items)  # (B, C, T), (B, T)
        return feats.to(device), mask.to(device)

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def dense(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Feature module, TEM and the per-stage maps.

        Args:
            feats: (B, C_in, T).

        Returns:
            ``x`` (B, H, T), ``tem`` (B, 2, T), per-stage maps ``[(B, R, T)] * num_stages``.
        """
        x = self.features(feats)  # (B, H, T)
        return x, self.tem(x), [stage.dense(x) for stage in self.stages]

    def cascade(
        self,
        stage_maps: list[torch.Tensor],
        anchors: torch.Tensor,
        batch_idx: torch.Tensor,
        start_end: bool = True,
    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Run the stages; each refines the previous stage's (detached) output.

        Returns:
            per stage ``(input_anchors (N, 2), iou (N, 2), reg (N, 6))``; ``reg`` (N, 4)
            without ``start_end`` (inference: only the loss reads the start/end head).
        """
        outs = []
        for stage, fmap in zip(self.stages, stage_maps, strict=True):
            iou, reg = stage.evaluate(fmap, anchors, batch_idx, start_end)
            outs.append((anchors, iou, reg))
            anchors = _refine(anchors, reg)
        return outs

    def _anchors(
        self, lengths: list[int], sample: bool, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 2) snippet-edge anchors of every video's (sampled) valid cells, (N,) video ids."""
        anchors, batch_idx = [], []
        for b, length in enumerate(lengths):
            if sample:
                d, t = sample_cells(
                    length,
                    self.cfg.max_duration,
                    self.cfg.dps_ratio,
                    self.cfg.dps_strategy,
                    generator=self.generator,
                )
            else:
                d, t = valid_cells(length, self.cfg.max_duration)
            start = t.float()
            anchors.append(torch.stack([start, start + d.float() + 1.0], dim=1))  # (K_b, 2)
            batch_idx.append(torch.full((d.numel(),), b, dtype=torch.long))
        return torch.cat(anchors).to(device), torch.cat(batch_idx).to(device)

    def training_step(self, items: list[VideoItem]) -> dict[str, torch.Tensor]:
        """Forward with DPS and the full ETAD loss.

        Returns:
            ``loss`` (to backprop), ``loss_tem``, ``loss_stage{i}`` and the per-term sums over
            stages ``loss_iou_cls``, ``loss_iou_reg``, ``loss_bnd_reg``, ``loss_bnd_cls``
            (unweighted; all but ``loss`` detached).
        """
        device = self._device()
        feats, mask = self.inputs(items, device)  # (B, C, T), (B, T)
        length = feats.shape[-1]
        _, tem, stage_maps = self.dense(feats)
        gt_list = [it["segments"].to(device=device, dtype=torch.float32) + 0.5 for it in items]
        tem_tgt = tem_targets(gt_list, length)  # (B, 2, T)
        loss_tem = balanced_bce(tem[:, 0][mask], tem_tgt[:, 0][mask]) + balanced_bce(
            tem[:, 1][mask], tem_tgt[:, 1][mask]
        )
        lengths = mask.sum(dim=1).tolist()
        anchors, batch_idx = self._anchors(lengths, sample=True, device=device)
        gt, has_gt = assign_gt(anchors, batch_idx, gt_list)
        out = {"loss_tem": loss_tem.detach()}
        total = loss_tem
        sums = dict.fromkeys(("iou_cls", "iou_reg", "bnd_reg", "bnd_cls"), 0.0)
        outs = self.cascade(stage_maps, anchors, batch_idx)
        for i, (a_in, iou, reg) in enumerate(outs):
            terms = stage_loss(
                a_in,
                gt,
                has_gt,
                iou,
                reg,
                boundary_targets(a_in, batch_idx, tem_tgt),
                self.cfg.stage_iou_thresholds[i],
                float(length),
                self.cfg.iou_pos_threshold,
                self.loss_weights,
                self.generator,
            )
            total = total + terms["total"]
            out[f"loss_stage{i + 1}"] = terms["total"].detach()
            for key in sums:
                sums[key] = sums[key] + terms[key].detach()
        out.update({f"loss_{k}": v for k, v in sums.items()})
        out["num_proposals"] = torch.tensor(float(anchors.shape[0]))
        if self.encoder is not None:
            out["egs_grad_snippets"] = torch.tensor(float(self.encoder.last_grad_snippets))
        return {"loss": total, **out}

    @torch.no_grad()
    def predict(self, items: list[VideoItem]) -> list[ItemDetections]:
        """All valid proposals (no DPS), stage-averaged boxes and scores, soft-NMS per item.

        Returns:
            one ``ItemDetections`` per item, grid coordinates within the valid steps, labels -1.
        """
        if not self.training:  # a pass over a test set: no mode switch over every submodule
            return self._predict(items)
        self.eval()
        try:
            return self._predict(items)
        finally:
            self.train()

    def predict_batches(
        self, batches: Iterable[list[VideoItem]]
    ) -> Iterator[tuple[list[VideoItem], list[ItemDetections]]]:
        """``(batch, predict(batch))`` for every batch, in order: one pass over a test set.

        Within the pass, the first cascade stage of a batch with the same window lengths as a
        recent one (the same anchors) reuses its RoI-align sample table (``reuse_tables``);
        the detections are those of ``predict``.
        """
        with reuse_tables():
            for batch in batches:
                yield batch, self.predict(batch)

    def _predict(self, items: list[VideoItem]) -> list[ItemDetections]:
        feats, mask = self.inputs(items, self._device())
        # The start/end head's output is read only by the training loss: skipping it here
        # leaves every detection as it is.
        return self.postprocess(self.forward_dense(feats, mask, start_end=False), mask)

    def forward_dense(
        self, feats: torch.Tensor, mask: torch.Tensor, start_end: bool = True
    ) -> DenseOut:
        """The network over every valid proposal: stage-averaged boxes and scores.

        Args:
            feats: (B, C_in, T); mask: (B, T) valid steps.
            start_end: also run the auxiliary start/end head of every stage, as the official
                network does (what ``talbench profile`` counts and times); ``predict`` skips it.

        Returns:
            ``(boxes (N, 2), scores (N,), tem (B, 2, T), batch_idx (N,))``; the profiler times
            this and :meth:`postprocess` separately.
        """
        _, tem, stage_maps = self.dense(feats)
        lengths = mask.sum(dim=1).tolist()
        anchors, batch_idx = self._anchors(lengths, sample=False, device=feats.device)
        boxes, scores = [], []
        for lo in range(0, anchors.shape[0], self.cfg.infer_chunk):
            sl = slice(lo, lo + self.cfg.infer_chunk)
            outs = self.cascade(stage_maps, anchors[sl], batch_idx[sl], start_end)
            refined = torch.stack([_refine(a, reg) for a, _, reg in outs]).mean(0)  # (n, 2)
            iou = torch.stack([iou for _, iou, _ in outs]).mean(0)  # (n, 2)
            boxes.append(refined)
            scores.append(iou[:, 0] * iou[:, 1])
        return torch.cat(boxes), torch.cat(scores), tem, batch_idx

    def postprocess(self, out: DenseOut, mask: torch.Tensor) -> list[ItemDetections]:
        """Boundary filter and soft-NMS of every item, the items' NMS loops run side by side."""
        boxes, scores, tem, batch_idx = out
        per_item = []
        for b, length in enumerate(mask.sum(dim=1).tolist()):
            sel = batch_idx == b
            per_item.append((boxes[sel], scores[sel], tem[b, 0, :length], tem[b, 1, :length]))
        return postprocess_items(per_item, self.cfg.nms_sigma, self.cfg.nms_max_keep)


# After predict's per-window soft-NMS: OpenTAD's video-level Gaussian soft-NMS over the windows
# (sigma 0.3, 200 kept), then the top-2 classes of a video-level classifier, score product
# (OpenTAD, opentad/cores/test_engine.py and its THUMOS ETAD and BMN configs; the official
# sming256/ETAD post_det.py fuses top-2 classes the same way on ActivityNet). BMN shares it.
OPENTAD_PROPOSAL_POST = PostDecl(
    window_merge="soft_nms", merge_params={"sigma": 0.3}, top_k_classes=2, max_dets_per_video=200
)


def build(cfg: EtadConfig | None, input_dim: int, num_classes: int) -> Etad:
    """Build ETAD (``num_classes`` is unused: the detector is class-agnostic)."""
    del num_classes
    return Etad(cfg if cfg is not None else EtadConfig(), input_dim)


MODELS.register("etad")(
    ModelSpec(
        name="etad",
        config_cls=EtadConfig,
        build=build,
        description="ETAD (CVPRW 2023): LSTM features, 3-stage cascade PEM, proposal sampling",
        class_agnostic=True,
        native_mode="window",  # THUMOS: OpenTAD's sliding windows
        post=OPENTAD_PROPOSAL_POST,
    )
)
