"""Video encoders in plain PyTorch: TSM-ResNet and R(2+1)D, one vector per snippet.

* ``tsm``: a 2-D ResNet whose residual branches shift 1/8 of the channels one frame back and
  1/8 one frame forward in time before their first conv (TSM, Lin et al., ICCV 2019,
  mit-han-lab/temporal-shift-module, ops/temporal_shift.py: ``shift_div=8``, residual shift).
  ETAD's Fig. 5 and Table 5 use TSM-ResNet50.
* ``r2plus1d``: every 3x3x3 conv factorised into a 1x3x3 spatial conv to ``mid`` channels and a
  3x1x1 temporal conv, ``mid = 27 c_in c_out / (9 c_in + 3 c_out)`` (Tran et al., CVPR 2018;
  torchvision's ``VideoResNet`` ``Conv2Plus1D``). The released ETAD code uses R(2+1)D-34.

Both share one skeleton: stem -> four stages of BasicBlocks (``depth`` 10 / 18 / 34 = 1-1-1-1 /
2-2-2-2 / 3-4-6-3 blocks; ``width`` channels in stage 1, doubled per stage; spatial stride 2 from
stage 2 on, never in time) -> global average pooling over (t, H, W). As the released ETAD code
(sming256/ETAD, lib/models/backbone; mmaction2's ``frozen_stages`` / ``norm_eval``):
``frozen_stages = k`` puts the stem and stages 1..k in eval mode with ``requires_grad=False``,
and every BatchNorm stays in eval mode (running statistics are never updated; the affine
parameters of unfrozen stages still train).

Input: clips (N, 3, t, H, W), uint8 pixels (normalised here) or floats; output (N, 8 * width).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tal_bench.errors import TalBenchError

KINDS = ("tsm", "r2plus1d")
DEPTHS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
SHIFT_DIV = 8  # TSM: 1/8 of the channels shifted each way


@dataclass(frozen=True)
class EncoderConfig:
    """Video encoder; ``kind = "none"`` means the detector reads pre-extracted features."""

    kind: str = "none"  # "none" | "tsm" | "r2plus1d"
    depth: int = 10  # 10 | 18 | 34 (BasicBlocks per stage, see DEPTHS)
    width: int = 16  # channels of stage 1 (ResNet: 64); the output has 8 x width
    stem_stride: int = 2  # spatial stride of the stem conv (ImageNet ResNets: 4 incl. max-pool)
    frozen_stages: int = 2  # stem + stages 1..k frozen (released ETAD: 2); -1 = none
    pretrained: str = "auto"  # "auto" (snippet-classification pretraining, cached) | "none" | path

    def check(self) -> EncoderConfig:
        """Return self, or raise a TalBenchError naming the bad field."""
        checks = [
            (self.kind in ("none", *KINDS), "model.encoder.kind must be none, tsm or r2plus1d"),
            (self.depth in DEPTHS, "model.encoder.depth must be 10, 18 or 34"),
            (self.width >= 4, "model.encoder.width must be >= 4"),
            (self.stem_stride in (1, 2, 4), "model.encoder.stem_stride must be 1, 2 or 4"),
            (-1 <= self.frozen_stages <= 4, "model.encoder.frozen_stages must be in -1..4"),
        ]
        for ok, message in checks:
            if not ok:
                raise TalBenchError(f"{message} (got {self})")
        return self

    @property
    def out_dim(self) -> int:
        """Feature width D of the encoder's output."""
        return 8 * self.width


def temporal_shift(x: torch.Tensor, frames: int) -> torch.Tensor:
    """TSM's shift: 1/8 of the channels take the next frame's values, 1/8 the previous one's.

    Args:
        x: (N * t, C, H, W) frames of N clips, frame-major within each clip.
        frames: t.

    Returns:
        (N * t, C, H, W); shifted-in positions at the clip ends are zero.
    """
    nt, c, h, w = x.shape
    x = x.view(nt // frames, frames, c, h, w)  # (N, t, C, H, W)
    fold = c // SHIFT_DIV
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]  # from the future
    out[:, 1:, fold : 2 * fold] = x[:, :-1, fold : 2 * fold]  # from the past
    out[:, :, 2 * fold :] = x[:, :, 2 * fold :]
    return out.view(nt, c, h, w)


class TsmBlock(nn.Module):
    """2-D BasicBlock with a temporal shift at the start of the residual branch."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.down = None
        if stride != 1 or c_in != c_out:
            self.down = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:  # (N*t, C, H, W)
        y = torch.relu(self.bn1(self.conv1(temporal_shift(x, frames))))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.down is None else self.down(x)))


def _conv2plus1d(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """1x3x3 spatial conv, BN, ReLU, 3x1x1 temporal conv (torchvision's Conv2Plus1D)."""
    mid = (c_in * c_out * 27) // (c_in * 9 + 3 * c_out)
    return nn.Sequential(
        nn.Conv3d(c_in, mid, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False),
        nn.BatchNorm3d(mid),
        nn.ReLU(inplace=True),
        nn.Conv3d(mid, c_out, (3, 1, 1), 1, (1, 0, 0), bias=False),
    )


class R2plus1dBlock(nn.Module):
    """3-D BasicBlock with (2+1)D convs."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv2plus1d(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm3d(c_out)
        self.conv2 = _conv2plus1d(c_out, c_out, 1)
        self.bn2 = nn.BatchNorm3d(c_out)
        self.down = None
        if stride != 1 or c_in != c_out:
            self.down = nn.Sequential(
                nn.Conv3d(c_in, c_out, 1, (1, stride, stride), bias=False),
                nn.BatchNorm3d(c_out),
            )

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:  # (N, C, t, H, W)
        del frames  # the time axis is explicit
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class VideoEncoder(nn.Module):
    """TSM-ResNet or R(2+1)D over snippet clips, global-average-pooled (module docstring).

    Args:
        cfg: kind, depth, width, stem stride, frozen stages.

    Attributes:
        norm_eval: keep every BatchNorm in eval mode (True; pretraining turns it off).
    """

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        cfg.check()
        if cfg.kind not in KINDS:
            raise TalBenchError(f"no video encoder for model.encoder.kind={cfg.kind!r}")
        self.cfg, self.norm_eval = cfg, True
        w, three_d = cfg.width, cfg.kind == "r2plus1d"
        conv, bn = (nn.Conv3d, nn.BatchNorm3d) if three_d else (nn.Conv2d, nn.BatchNorm2d)
        k, s = (
            ((1, 3, 3), (1, cfg.stem_stride, cfg.stem_stride)) if three_d else (3, cfg.stem_stride)
        )
        pad = (0, 1, 1) if three_d else 1
        self.stem = nn.Sequential(conv(3, w, k, s, pad, bias=False), bn(w), nn.ReLU(inplace=True))
        stages, c_in = [], w
        for i, blocks in enumerate(DEPTHS[cfg.depth]):
            c_out = w * 2**i
            layer = []
            for j in range(blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                block_in = c_in if j == 0 else c_out
                block = R2plus1dBlock if three_d else TsmBlock
                layer.append(block(block_in, c_out, stride))
            stages.append(nn.ModuleList(layer))
            c_in = c_out
        self.stages = nn.ModuleList(stages)
        for m in self.modules():  # torchvision ResNet init
            if isinstance(m, nn.Conv2d | nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        self.freeze(cfg.frozen_stages)

    @property
    def out_dim(self) -> int:
        """D, the width of one snippet's feature."""
        return self.cfg.out_dim

    def frozen_modules(self) -> list[nn.Module]:
        """The stem and stages 1..frozen_stages (nothing for -1)."""
        k = self.frozen_stages
        return [] if k < 0 else [self.stem, *self.stages[:k]]

    def freeze(self, stages: int) -> None:
        """``requires_grad=False`` on the stem and stages 1..``stages`` (-1: none)."""
        for p in self.parameters():
            p.requires_grad_(True)
        self.frozen_stages = stages
        for m in self.frozen_modules():
            for p in m.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> VideoEncoder:
        """Train mode, except the frozen stages and (``norm_eval``) BatchNorm: always eval."""
        super().train(mode)
        if self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        for m in self.frozen_modules():
            m.eval()
        return self

    def _blocks(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        for stage in self.stages:
            for block in stage:
                x = block(x, frames)
        return x

    def forward_maps(self, clips: torch.Tensor) -> torch.Tensor:
        """The last stage's feature maps: (N, C, t, h, w) for both kinds."""
        n, _, t, h, w = clips.shape  # (N, 3, t, H, W)
        if self.cfg.kind == "r2plus1d":
            return self._blocks(self.stem(clips), t)  # (N, C, t, h, w)
        x = clips.transpose(1, 2).reshape(n * t, 3, h, w)  # (N*t, 3, H, W), frame-major
        x = self._blocks(self.stem(x), t)
        c, hh, ww = x.shape[1:]
        return x.view(n, t, c, hh, ww).transpose(1, 2)  # (N, C, t, h, w)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """(N, 3, t, H, W) clips (uint8 pixels or normalised floats) -> (N, D) features, the
        mean over (t, h, w) of the last stage."""
        if clips.dtype == torch.uint8:
            clips = normalize_pixels(clips)
        return self.forward_maps(clips).mean(dim=(2, 3, 4))


def normalize_pixels(clips: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 of mean ~0 and std ~1 (``(x / 255 - 0.5) / 0.25``)."""
    return (clips.to(torch.float32) / 255.0 - 0.5) / 0.25
