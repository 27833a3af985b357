"""Pure-PyTorch operators used by the detectors and the pipeline (no compiled extensions)."""

from __future__ import annotations

from tal_bench.models.ops.dps import (
    num_samples,
    num_valid_cells,
    sample_cells,
    valid_cells,
)
from tal_bench.models.ops.roi_align_1d import roi_align_1d
from tal_bench.models.ops.soft_nms import soft_nms_groups

__all__ = [
    "num_samples",
    "num_valid_cells",
    "roi_align_1d",
    "sample_cells",
    "soft_nms_groups",
    "valid_cells",
]
