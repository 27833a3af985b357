"""Pure-PyTorch operators used by the detectors and the pipeline (no compiled extensions)."""

from __future__ import annotations

from tal_bench.models.ops.dps import (
    num_samples,
    num_valid_cells,
    sample_cells,
    valid_cells,
)
from tal_bench.models.ops.roi_align_1d import roi_align_1d, roi_align_1d_weights
from tal_bench.models.ops.soft_nms import segment_iou, soft_nms

__all__ = [
    "num_samples",
    "num_valid_cells",
    "roi_align_1d",
    "roi_align_1d_weights",
    "sample_cells",
    "segment_iou",
    "soft_nms",
    "valid_cells",
]
