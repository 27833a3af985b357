"""ETAD building blocks: feature module, temporal evaluation module, one PEM cascade stage.

Follows the official ETAD design (sming256/ETAD ``lib/models/detector``) and the ETAD paper
(Liu et al., CVPRW 2023); every width below is a config field (paper values in comments).
Proposals are handled in *snippet-edge* units: snippet i spans ``[i, i + 1]``, the map cell
``(d, t)`` is ``[t, t + d + 1]``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from tal_bench.models.ops.roi_align_1d import roi_align_1d

if TYPE_CHECKING:
    from tal_bench.models.etad import EtadConfig

LOG_WIDTH_CLIP = math.log(1000.0)  # guard on exp(Δw) (never reached by a trained model)


def conv_gn_relu(c_in: int, c_out: int, kernel: int, groups: int, gn_groups: int) -> nn.Sequential:
    """Conv1d (no bias, 'same' padding) + GroupNorm + ReLU, the feature module's unit."""
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, groups=groups, bias=False),
        nn.GroupNorm(gn_groups, c_out),
        nn.ReLU(inplace=True),
    )


def mlp_head(c_in: int, fc_dim: int, c_out: int) -> nn.Sequential:
    """Three Linear(->fc_dim)+ReLU layers then an output Linear (official ``pem.py``)."""
    return nn.Sequential(
        nn.Linear(c_in, fc_dim),
        nn.ReLU(inplace=True),
        nn.Linear(fc_dim, fc_dim),
        nn.ReLU(inplace=True),
        nn.Linear(fc_dim, fc_dim),
        nn.ReLU(inplace=True),
        nn.Linear(fc_dim, c_out),
    )


class DirectionalLSTM(nn.Module):
    """One unidirectional one-layer LSTM; ``reverse`` reads the time-flipped sequence."""

    def __init__(self, dim: int, reverse: bool) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, dim)  # sequence-first, unmasked (official ``feature.py``)
        self.reverse = reverse

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.permute(2, 0, 1)  # (T, B, H)
        if self.reverse:
            seq = seq.flip(0)
        out, _ = self.lstm(seq)  # (T, B, H)
        if self.reverse:
            out = out.flip(0)
        return out.permute(1, 2, 0).contiguous()  # (B, H, T)


class DirectionalTransformer(nn.Module):
    """Table 4 'Transformer' ablation: a post-norm encoder layer with sinusoidal positions,
    attending only to the past (forward) or only to the future (``reverse``), so it slots in
    exactly where an LSTM reads one direction."""

    def __init__(self, dim: int, heads: int, reverse: bool) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=2 * dim, dropout=0.1, batch_first=True
        )
        self.reverse = reverse

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_batch, dim, length = x.shape
        seq = x.transpose(1, 2) + _sinusoid(length, dim, x.device, x.dtype)  # (B, T, H)
        ones = torch.ones(length, length, dtype=torch.bool, device=x.device)
        blocked = torch.tril(ones, -1) if self.reverse else torch.triu(ones, 1)  # (T, T)
        return self.layer(seq, src_mask=blocked).transpose(1, 2).contiguous()  # (B, H, T)


def _sinusoid(length: int, dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    pos = torch.arange(length, device=device, dtype=dtype)[:, None]  # (T, 1)
    freq = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=dtype) * (-math.log(10000.0) / dim)
    )  # (H/2,)
    enc = torch.zeros(length, dim, device=device, dtype=dtype)
    enc[:, 0::2] = torch.sin(pos * freq)
    enc[:, 1::2] = torch.cos(pos * freq)
    return enc  # (T, H)


def _context(kind: str, cfg: EtadConfig, reverse: bool) -> nn.Module:
    if kind == "lstm":
        return DirectionalLSTM(cfg.hidden_dim, reverse)
    if kind == "transformer":
        return DirectionalTransformer(cfg.hidden_dim, cfg.transformer_heads, reverse)
    # 'conv' ablation: local context only, a grouped k3 conv in place of each LSTM.
    return conv_gn_relu(cfg.hidden_dim, cfg.hidden_dim, 3, cfg.groups, cfg.gn_groups)


class FeatureModule(nn.Module):
    """LSTM-boosted temporal aggregation (official ``feature.py``); ``feature_module`` picks the
    ablation."""

    def __init__(self, input_dim: int, cfg: EtadConfig) -> None:
        super().__init__()
        hid, half, g, gn = cfg.hidden_dim, cfg.hidden_dim // 2, cfg.groups, cfg.gn_groups
        self.layer1 = conv_gn_relu(input_dim, hid, 3, g, gn)  # C_in -> 256
        self.context_fwd = _context(cfg.feature_module, cfg, reverse=False)
        self.context_bwd = _context(cfg.feature_module, cfg, reverse=True)
        self.branch_fwd = conv_gn_relu(hid, half, 3, g, gn)  # 256 -> 128
        self.branch_mid = conv_gn_relu(hid, hid, 3, g, gn)  # 256 -> 256
        self.branch_bwd = conv_gn_relu(hid, half, 3, g, gn)  # 256 -> 128
        self.layer3 = conv_gn_relu(2 * hid, hid, 1, g, gn)  # 512 -> 256, k1, groups 4

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T) -> (B, H, T)."""
        x = self.layer1(feats)  # (B, H, T)
        fwd = self.branch_fwd(self.context_fwd(x))  # (B, H/2, T)
        mid = self.branch_mid(x)  # (B, H, T)
        bwd = self.branch_bwd(self.context_bwd(x))  # (B, H/2, T)
        return self.layer3(torch.cat([fwd, mid, bwd], dim=1))  # (B, H, T)


class TemporalEvaluation(nn.Module):
    """Startness/endness head (official ``detector.py``): (B, H, T) -> (B, 2, T) probabilities."""

    def __init__(self, cfg: EtadConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(cfg.hidden_dim, cfg.hidden_dim, 3, padding=1, groups=cfg.groups),
            nn.ReLU(inplace=True),
            nn.Conv1d(cfg.hidden_dim, 2, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, 2, T): [startness, endness]


class PemStage(nn.Module):
    """One cascade stage: residual stage conv, reduce conv, extended RoI-align and the heads."""

    def __init__(self, cfg: EtadConfig) -> None:
        super().__init__()
        hid, roi_dim, ext, fc = cfg.hidden_dim, cfg.roi_dim, cfg.ext_dim, cfg.fc_dim
        self.roi_size, self.extend, self.aligned = cfg.roi_size, cfg.roi_extend, cfg.roi_aligned
        side = cfg.roi_size // 4  # bins of outer context per boundary (6 of 24)
        self.stage_conv = nn.Conv1d(hid, hid, 3, padding=1, groups=cfg.groups)
        self.reduce = nn.Conv1d(hid, roi_dim, 3, padding=1)
        self.ext_fc = nn.Sequential(nn.Linear(roi_dim * cfg.roi_size, ext), nn.ReLU(inplace=True))
        self.iou_fc = mlp_head(ext, fc, 2)  # [p_iou_cls, p_iou_reg]
        self.cls_se_fc = mlp_head(ext, fc, 2)  # [p_start, p_end] (auxiliary)
        self.reg_cw_fc = mlp_head(ext, fc, 2)  # [Δc, Δw] (halved)
        self.reg_s_fc = nn.Sequential(
            nn.Linear(roi_dim * side, ext), nn.ReLU(inplace=True), mlp_head(ext, fc, 1)
        )
        self.reg_e_fc = nn.Sequential(
            nn.Linear(roi_dim * side, ext), nn.ReLU(inplace=True), mlp_head(ext, fc, 1)
        )

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        """Per-stage map: x + ReLU(conv(x)), then the 256->128 reduce conv. (B,H,T)->(B,R,T)."""
        x_stage = x + torch.relu(self.stage_conv(x))  # (B, H, T)
        return torch.relu(self.reduce(x_stage))  # (B, R, T)

    def evaluate(
        self,
        feat: torch.Tensor,
        anchors: torch.Tensor,
        batch_idx: torch.Tensor,
        start_end: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Score and regress proposals.

        Args:
            feat: (B, R, T) output of ``dense``.
            anchors: (N, 2) snippet-edge ``[s, e]`` (no gradient).
            batch_idx: (N,) video index of each anchor.
            start_end: also run the auxiliary start/end head (only its loss reads it; inference
                skips it, which leaves every other output as it is).

        Returns:
            ``iou`` (N, 2) ``[p_iou_cls, p_iou_reg]`` and ``reg`` (N, 6)
            ``[Δs, Δe, Δc, Δw, p_start, p_end]`` ((N, 4) without ``start_end``).
        """
        length = anchors[:, 1] - anchors[:, 0]  # (N,)
        rois = torch.stack(
            [
                batch_idx.to(anchors.dtype),
                anchors[:, 0] - self.extend * length,
                anchors[:, 1] + self.extend * length,
            ],
            dim=1,
        )  # (N, 3) extended RoI [s - L/2, e + L/2]
        roi = roi_align_1d(feat, rois, self.roi_size, aligned=self.aligned)  # (N, R, P)
        # Bin-major (N, P, R): a free view of the op's storage. The FC weights keep the
        # official channel-major (R, P) input order and are viewed in bin-major order instead,
        # so no (N, R*P) copy of the RoI features is made (it cost as much as the FCs on CPU).
        roi_pr = roi.transpose(1, 2).contiguous()  # (N, P, R), no copy from roi_align_1d
        side = self.roi_size // 4
        ext_feat = _bin_major_linear(self.ext_fc[0], roi_pr).relu_()  # (N, E)
        start_feat = _bin_major_linear(self.reg_s_fc[0], roi_pr[:, :side]).relu_()  # (N, E)
        end_feat = _bin_major_linear(self.reg_e_fc[0], roi_pr[:, -side:]).relu_()  # (N, E)
        iou = torch.sigmoid(self.iou_fc(ext_feat))  # (N, 2)
        cw = self.reg_cw_fc(ext_feat) / 2.0  # (N, 2)
        reg = [self.reg_s_fc[2](start_feat), self.reg_e_fc[2](end_feat), cw]
        if start_end:
            reg.append(torch.sigmoid(self.cls_se_fc(ext_feat)))  # (N, 2)
        return iou, torch.cat(reg, dim=1)  # (N, 2), (N, 6) or (N, 4)


def _bin_major_linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``layer`` applied to ``x`` (N, P, R) as if to its channel-major flattening (N, R*P).

    The result equals ``layer(x.transpose(1, 2).flatten(1))``; the weight (E, R*P) is
    re-indexed to (E, P*R) (small) instead of the input (large).
    """
    n_bins, n_chan = x.shape[1], x.shape[2]
    weight = layer.weight.view(-1, n_chan, n_bins).transpose(1, 2).reshape(-1, n_bins * n_chan)
    return nn.functional.linear(x.reshape(x.shape[0], n_bins * n_chan), weight, layer.bias)


def refine_anchors(anchors: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    """Average of the start/end and centre/width decodings (official ``pem.py``), detached.

    Args:
        anchors: (N, 2) ``[s, e]``.
        reg: (N, >=4) ``[Δs, Δe, Δc, Δw, ...]``.

    Returns:
        (N, 2) refined ``[s', e']``.
    """
    reg = reg.detach()
    s, e = anchors[:, 0], anchors[:, 1]
    length = e - s
    se_start, se_end = s + length * reg[:, 0], e + length * reg[:, 1]
    centre = (s + e) / 2.0 + length * reg[:, 2]
    width = length * torch.exp(reg[:, 3].clamp(max=LOG_WIDTH_CLIP))
    cw_start, cw_end = centre - width / 2.0, centre + width / 2.0
    return torch.stack([(se_start + cw_start) / 2.0, (se_end + cw_end) / 2.0], dim=1)  # (N, 2)
