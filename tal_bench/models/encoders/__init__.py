"""Video encoders for end-to-end training from frames (``resnet``) and their pretraining."""

from __future__ import annotations

from tal_bench.models.encoders.resnet import EncoderConfig, VideoEncoder, normalize_pixels

__all__ = ["EncoderConfig", "VideoEncoder", "normalize_pixels"]
