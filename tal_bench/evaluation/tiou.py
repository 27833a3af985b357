"""Temporal IoU with the exact floating-point recipe of the official ActivityNet ``segment_iou``
(``Evaluation/utils.py``), and the tIoU thresholds.

The recipe matters for bit-exact agreement: intersection ``max(0, min(ends) - max(starts))``,
union ``len(gt) + len(pred) - intersection`` in that order, no clipping and no guard against
0/0, so two zero-length segments give NaN, which the official matching counts as a hit.
"""

from __future__ import annotations

import numpy as np

from tal_bench.errors import TalBenchError

# ``np.linspace`` arguments as ActionFormer and the ActivityNet evaluation pass them: they give
# 0.39999999999999997 and 0.8999999999999999, which decide tIoUs on the boundary
TIOU_PRESETS = {"thumos": (0.3, 0.7, 5), "anet": (0.5, 0.95, 10)}
_PRESET_ALIASES = {"thumos14": "thumos", "activitynet": "anet", "anet13": "anet"}


def pairwise_tiou(pred_start_s, pred_end_s, gt_start_s, gt_end_s) -> np.ndarray:
    """tIoU of prediction and GT arrays, element-wise (broadcast), official recipe (0/0: NaN)."""
    inter = np.maximum(np.minimum(pred_end_s, gt_end_s) - np.maximum(pred_start_s, gt_start_s), 0)
    union = (gt_end_s - gt_start_s) + (pred_end_s - pred_start_s) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def tiou_preset(spec: str | float | list[float] | tuple[float, ...] | np.ndarray) -> np.ndarray:
    """(K,) thresholds from "thumos" (``np.linspace(0.3, 0.7, 5)``), "anet"
    (``np.linspace(0.5, 0.95, 10)``), a comma list such as "0.3,0.5" or numbers; checked by
    :func:`check_thresholds`.

    Example:
        >>> tiou_preset("thumos")[1]
        0.39999999999999997
    """
    if not isinstance(spec, str):
        return check_thresholds(np.atleast_1d(np.asarray(spec, dtype=np.float64)))
    key = _PRESET_ALIASES.get(spec.strip().lower(), spec.strip().lower())
    if key in TIOU_PRESETS:
        return np.linspace(*TIOU_PRESETS[key])
    try:
        return check_thresholds([float(p) for p in spec.split(",") if p.strip()])
    except ValueError:
        raise TalBenchError(
            f"bad tIoU spec {spec!r}: use 'thumos', 'anet' or a comma list such as 0.3,0.5,0.7"
        ) from None


def check_thresholds(values) -> np.ndarray:
    """(K,) float64 copy of ``values``; raises unless 1-D, non-empty, in (0, 1], no repeats."""
    arr = np.array(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise TalBenchError("no tIoU thresholds given: use 'thumos', 'anet' or e.g. 0.3,0.5,0.7")
    bad = arr[~((arr > 0) & (arr <= 1))]
    if bad.size:
        raise TalBenchError(f"tIoU thresholds must lie in (0, 1]; got {bad[0]!r}")
    if len(np.unique(arr)) < arr.size:
        raise TalBenchError(f"tIoU thresholds repeat a value: {arr.tolist()}")
    return arr
