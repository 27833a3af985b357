"""Building blocks shared by the ActionFormer family (ActionFormer, TriDet, TemporalMaxer):
layers, embedding/neck/padding rule, points, heads, losses, label assignment, decoding +
soft-NMS, and the detector shell :class:`PointDetector` that wires them."""

from __future__ import annotations

from tal_bench.models.common.detector import DenseOut, PointDetector, PointDetectorConfig

__all__ = ["DenseOut", "PointDetector", "PointDetectorConfig"]
