"""BMN: "Boundary-Matching Network for Temporal Action Proposal Generation" (Lin et al., ICCV
2019), the proposal network ETAD builds on, as OpenTAD implements it for THUMOS-14
(sming256/OpenTAD ``configs/bmn/thumos_i3d.py``, ``models/detectors/bmn.py``,
``roi_extractors/bmn_extractor.py``, ``proposal_head/pem_head.py``, ``dense_heads/tem_head.py``).

* Projection: two Conv1d(k 3, groups 4) + ReLU, C_in -> 256 -> 256 (padded steps zeroed).
* Temporal evaluation module: separate start and end branches, Conv1d(256, k 3, groups 4) +
  ReLU then Conv1d(-> 1, k 1), sigmoid.
* Boundary-matching layer: Conv1d(256 -> 128, k 3) + ReLU, then one matrix product with the
  sampling-mask matrix (T, N, D, T): for every map cell (d, t) (proposal [t, t + d + 1] in
  snippet-edge units, widened by half its length on each side) it interpolates N = 32 points,
  each the mean of 3 linearly interpolated samples; a Conv2d with kernel (N, 1) (the paper's
  "3-D conv") reduces them to 512 channels, a 1x1 Conv2d to 128.
* Proposal evaluation module: two 3x3 Conv2d(128) + ReLU and a 1x1 Conv2d to 2 maps, sigmoid:
  the IoU-classification and IoU-regression confidence of every (d, t) proposal.
* Losses: TEM balanced BCE on startness/endness (positive > 0.5); PEM balanced BCE
  (positive IoU > 0.9) + 5 x balanced L2 regression to the proposal's best IoU.
* Inference: ETAD's post-processing (``etad_post``): boundary filter on the TEM peaks, score
  ``p_cls x p_reg``, Gaussian soft-NMS per item; labels -1 (class-agnostic), classes from the
  video-level classifier like ETAD.

The map, targets and losses reuse ETAD's pieces (``ops.dps.valid_cells``,
``etad_losses.tem_targets`` / ``balanced_bce`` / ``iou_regression_loss`` / ``pair_iou``) in
ETAD's snippet-edge units: an item's grid coordinate x is the edge coordinate x - 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tal_bench.data.items import stack_items
from tal_bench.errors import TalBenchError
from tal_bench.models.base import ModelSpec, predict_split
from tal_bench.models.etad import OPENTAD_PROPOSAL_POST
from tal_bench.models.etad_losses import balanced_bce, iou_regression_loss, pair_iou, tem_targets
from tal_bench.models.etad_post import postprocess_items
from tal_bench.models.ops.dps import valid_cells
from tal_bench.registry import MODELS
from tal_bench.types import ItemDetections, VideoItem


@dataclass(frozen=True)
class BmnConfig:
    """BMN hyperparameters; defaults are OpenTAD's BMN model (``_base_/models/bmn.py``) on a
    128-step window, with ActivityNet's D = 128 (THUMOS: 64, the ``paper`` preset)."""

    hidden_dim: int = 256  # projection / TEM width
    groups: int = 4  # groups of the projection and TEM convs
    bm_dim: int = 128  # boundary-matching input channels (the 256 -> 128 reduce conv)
    roi_dim: int = 512  # output of the (N, 1) "3-D" conv over the sampled points
    pem_dim: int = 128  # 1x1 conv output and PEM conv width
    pem_convs: int = 2  # 3x3 PEM convs
    tscale: int = 128  # T: window length the sampling mask is built for (= data.window)
    dscale: int = 128  # D: map rows, proposals up to D steps (THUMOS 64)
    num_samples: int = 32  # N points per proposal
    samples_per_bin: int = 3  # interpolated samples averaged into each point
    prop_extend: float = 0.5  # proposal widened by this fraction of its length on each side
    tem_pos_threshold: float = 0.5  # TEM balanced BCE positives
    pem_pos_threshold: float = 0.9  # PEM classification positives (IoU)
    loss_pem_reg: float = 5.0  # weight of the PEM balanced L2 regression
    proj_wd_mult: float = 10.0  # OpenTAD trains the projection with 10x weight decay
    nms_sigma: float = 0.3  # Gaussian soft-NMS sigma per item
    nms_max_keep: int = 200  # detections kept per item

    def __post_init__(self) -> None:
        checks = [
            (self.hidden_dim % self.groups == 0, "model.hidden_dim must be divisible by groups"),
            (
                min(self.tscale, self.dscale, self.num_samples, self.samples_per_bin) >= 1
                and self.dscale <= self.tscale,
                "model.tscale, dscale, num_samples, samples_per_bin must be >= 1, dscale <= tscale",
            ),
            (
                self.nms_sigma > 0 and self.nms_max_keep >= 1,
                "model.nms_sigma > 0, nms_max_keep >= 1",
            ),
            (self.prop_extend >= 0, "model.prop_extend must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise TalBenchError(f"{message} (got {self})")


def sampling_mask(
    tscale: int, dscale: int, num_samples: int, per_bin: int, extend: float
) -> torch.Tensor:
    """BMN's boundary-matching sampling-mask matrix.

    Cell (d, t) with t + d < T is the proposal of snippets t .. t + d; its sampled span runs
    from ``t - (d + 1) * extend`` to ``t + d + (d + 1) * extend`` (snippet-index coordinates),
    and ``N * per_bin`` samples are spread evenly over it, both ends included. Point n averages
    samples ``n * per_bin .. (n + 1) * per_bin - 1``; a sample at x puts ``1 - frac`` on snippet
    ``trunc(x)`` and ``frac`` on ``ceil(x)`` (``frac = x - trunc(x)``, negative left of 0, so
    ``x`` in (-1, 0) reads snippet 0 with weight 1), each only when inside ``[0, T - 1]``:
    the official code's ``math.modf`` rule. Cells with t + d >= T are all zero.

    Returns:
        (T, N, D, T) float32: ``feature (C, T) @ mask.view(T, -1)`` gives the (C, N, D, T)
        sampled points of every cell, ``[..., n, d, t]`` for cell (d, t).
    """
    d_idx = torch.arange(dscale, dtype=torch.float64)[:, None]  # (D, 1)
    t_idx = torch.arange(tscale, dtype=torch.float64)[None, :]  # (1, T)
    length = d_idx + 1.0
    lo, hi = t_idx - length * extend, t_idx + d_idx + length * extend  # (D, T)
    total = num_samples * per_bin
    k = torch.arange(total, dtype=torch.float64)  # (K,)
    x = lo[..., None] + (hi - lo)[..., None] / (total - 1.0) * k  # (D, T, K)
    down = torch.trunc(x)
    frac = x - down
    up = torch.ceil(x)
    valid_cell = (t_idx + d_idx < tscale)[..., None]  # (D, T, 1)
    mask = torch.zeros(dscale, tscale, num_samples, tscale, dtype=torch.float64)  # (D,T,N,T)
    point = (k // per_bin).long().expand_as(x)  # (D, T, K)
    for pos, weight in ((down, 1.0 - frac), (up, frac)):
        inside = (pos >= 0) & (pos <= tscale - 1) & valid_cell
        index = point * tscale + pos.clamp(0, tscale - 1).long()  # (D, T, K) into N*T
        flat = mask.view(dscale, tscale, num_samples * tscale)
        flat.scatter_add_(2, index, torch.where(inside, weight, torch.zeros_like(weight)))
    mask /= per_bin
    return mask.permute(3, 2, 0, 1).contiguous().float()  # (T_feat, N, D, T_start)


def conv_relu(c_in: int, c_out: int, kernel: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, groups=groups), nn.ReLU(inplace=True)
    )


class Bmn(nn.Module):
    """The BMN detector (class-agnostic proposals; a video-level classifier labels them)."""

    def __init__(self, cfg: BmnConfig, input_dim: int) -> None:
        super().__init__()
        if input_dim % cfg.groups:
            raise TalBenchError(
                f"BMN needs the feature dimension ({input_dim}) divisible by model.groups "
                f"({cfg.groups}); set model.groups to a divisor"
            )
        self.cfg = cfg
        h, g = cfg.hidden_dim, cfg.groups
        self.projection = nn.ModuleList([conv_relu(input_dim, h, 3, g), conv_relu(h, h, 3, g)])
        self.tem_start = nn.Sequential(conv_relu(h, h, 3, g), nn.Conv1d(h, 1, 1))
        self.tem_end = nn.Sequential(conv_relu(h, h, 3, g), nn.Conv1d(h, 1, 1))
        self.bm_reduce = conv_relu(h, cfg.bm_dim, 3)
        self.bm_points = nn.Sequential(
            nn.Conv2d(cfg.bm_dim, cfg.roi_dim, (cfg.num_samples, 1), stride=(cfg.num_samples, 1)),
            nn.ReLU(inplace=True),
        )
        self.bm_map = nn.Sequential(nn.Conv2d(cfg.roi_dim, cfg.pem_dim, 1), nn.ReLU(inplace=True))
        pem: list[nn.Module] = []
        for _ in range(cfg.pem_convs):
            pem += [nn.Conv2d(cfg.pem_dim, cfg.pem_dim, 3, padding=1), nn.ReLU(inplace=True)]
        self.pem = nn.Sequential(*pem, nn.Conv2d(cfg.pem_dim, 2, 1))
        mask = sampling_mask(
            cfg.tscale, cfg.dscale, cfg.num_samples, cfg.samples_per_bin, cfg.prop_extend
        )
        self.register_buffer("sample_mask", mask.view(cfg.tscale, -1), persistent=False)
        for m in self.modules():  # OpenTAD's BMN.reset_params
            if isinstance(m, nn.Conv1d | nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def _device(self) -> torch.device:
        return self.sample_mask.device

    def optimizer_groups(self) -> list[dict]:
        """The projection at ``proj_wd_mult`` x weight decay (OpenTAD's BMN optimizer groups)."""
        proj = list(self.projection.parameters())
        ids = {id(p) for p in proj}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": proj, "wd_mult": self.cfg.proj_wd_mult}, {"params": rest}]

    def forward_dense(
        self, feats: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """TEM and PEM maps of a batch of windows.

        Args:
            feats: (B, C_in, T) with T = ``tscale``; mask: (B, T) valid steps.

        Returns:
            ``tem`` (B, 2, T) start/end probabilities and ``pem`` (B, 2, D, T)
            ``[p_cls, p_reg]`` of cell (d, t) = proposal ``[t, t + d + 1]``.
        """
        n_batch, _, length = feats.shape
        if length != self.cfg.tscale:
            raise TalBenchError(
                f"BMN's boundary-matching layer is built for {self.cfg.tscale}-step windows but "
                f"got {length} steps; set data.window = model.tscale (and data.mode = window)"
            )
        x = feats
        keep = mask[:, None, :].to(feats.dtype)  # (B, 1, T)
        for conv in self.projection:
            x = conv(x) * keep  # (B, H, T), padded steps zeroed
        tem = torch.sigmoid(torch.cat([self.tem_start(x), self.tem_end(x)], dim=1))  # (B, 2, T)
        y = self.bm_reduce(x)  # (B, R, T)
        points = torch.matmul(y, self.sample_mask)  # (B, R, N*D*T)
        points = points.view(n_batch, self.cfg.bm_dim, self.cfg.num_samples, -1)  # (B,R,N,D*T)
        cells = self.bm_points(points).view(n_batch, self.cfg.roi_dim, self.cfg.dscale, length)
        pem = torch.sigmoid(self.pem(self.bm_map(cells)))  # (B, 2, D, T)
        return tem, pem

    def _batch(self, items: list[VideoItem]) -> tuple[torch.Tensor, torch.Tensor]:
        feats, mask = stack_items(items)
        return feats.to(self._device()), mask.to(self._device())

    def _cells(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(d, t) of the valid cells of an item with ``length`` valid steps."""
        return valid_cells(length, self.cfg.dscale, device=self._device())

    def training_step(self, items: list[VideoItem]) -> dict[str, torch.Tensor]:
        """TEM + PEM losses over the batch (``loss``, detached ``loss_tem``, ``loss_pem_cls``,
        ``loss_pem_reg``)."""
        feats, mask = self._batch(items)
        tem, pem = self.forward_dense(feats, mask)
        gt = [it["segments"].to(feats.device, torch.float32) + 0.5 for it in items]  # edges
        tem_tgt = tem_targets(gt, feats.shape[-1])  # (B, 2, T)
        thr = self.cfg.tem_pos_threshold
        loss_tem = balanced_bce(tem[:, 0][mask], tem_tgt[:, 0][mask], thr) + balanced_bce(
            tem[:, 1][mask], tem_tgt[:, 1][mask], thr
        )
        preds, ious = [], []
        for b, length in enumerate(mask.sum(dim=1).tolist()):
            d, t = self._cells(length)
            preds.append(pem[b][:, d, t])  # (2, K_b)
            ious.append(_best_iou(torch.stack([t, t + d + 1], dim=1).float(), gt[b]))
        pred, iou = torch.cat(preds, dim=1), torch.cat(ious)  # (2, K), (K,)
        loss_cls = balanced_bce(pred[0], iou, self.cfg.pem_pos_threshold)
        loss_reg = iou_regression_loss(pred[1], iou)
        loss = loss_tem + loss_cls + self.cfg.loss_pem_reg * loss_reg
        return {
            "loss": loss,
            "loss_tem": loss_tem.detach(),
            "loss_pem_cls": loss_cls.detach(),
            "loss_pem_reg": loss_reg.detach(),
        }

    def predict(self, items: list[VideoItem]) -> list[ItemDetections]:
        """Every valid cell of every item, boundary filter, soft-NMS; labels -1."""
        return predict_split(self, *self._batch(items))

    def postprocess(
        self, out: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor
    ) -> list[ItemDetections]:
        """ETAD's post-processing of each item's cells (``etad_post.postprocess_items``)."""
        tem, pem = out
        per_item = []
        for b, length in enumerate(mask.sum(dim=1).tolist()):
            d, t = self._cells(length)
            anchors = torch.stack([t, t + d + 1], dim=1).float()  # (K, 2) snippet edges
            scores = pem[b, 0, d, t] * pem[b, 1, d, t]  # (K,)
            per_item.append((anchors, scores, tem[b, 0, :length], tem[b, 1, :length]))
        return postprocess_items(per_item, self.cfg.nms_sigma, self.cfg.nms_max_keep)


def _best_iou(anchors: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(K,) best tIoU of every anchor (K, 2) with the item's GT (N, 2); 0 without GT."""
    if gt.numel() == 0:
        return anchors.new_zeros(anchors.shape[0])
    n_anchor, n_gt = anchors.shape[0], gt.shape[0]
    iou = pair_iou(
        anchors[:, None, :].expand(n_anchor, n_gt, 2).reshape(-1, 2),
        gt[None, :, :].expand(n_anchor, n_gt, 2).reshape(-1, 2),
    )
    return iou.view(n_anchor, n_gt).max(dim=1).values


def check_config(run_cfg: Any) -> None:
    """BMN's sampling mask is built for one item length: windows (or resized videos) of exactly
    ``tscale`` steps; whole videos of any length cannot run."""
    data, model = run_cfg.data, run_cfg.model
    if data.mode == "resize":
        if data.resize_len != model.tscale:
            raise TalBenchError(
                f"BMN's boundary-matching layer is built for {model.tscale} steps but videos are "
                f"resized to {data.resize_len}; set data.resize_len = model.tscale"
            )
        return
    if data.mode != "window" or data.window != model.tscale:
        raise TalBenchError(
            f"BMN's boundary-matching layer is built for {model.tscale}-step windows but the "
            f"data are {data.mode!r} items of {data.window} steps; set data.mode=window and "
            f"data.window = model.tscale"
        )


def build(cfg: BmnConfig | None, input_dim: int, num_classes: int) -> Bmn:
    """Build BMN (``num_classes`` is unused: the detector is class-agnostic)."""
    del num_classes
    return Bmn(cfg if cfg is not None else BmnConfig(), input_dim)


MODELS.register("bmn")(
    ModelSpec(
        name="bmn",
        config_cls=BmnConfig,
        build=build,
        description="BMN (ICCV 2019): boundary-matching proposal map, TEM + PEM (class-agnostic)",
        class_agnostic=True,
        native_mode="window",  # THUMOS: OpenTAD's sliding windows
        post=OPENTAD_PROPOSAL_POST,  # as ETAD: soft-NMS merge, top-2 classes (configs/bmn/)
        check_config=check_config,
    )
)
