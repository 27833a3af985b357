"""Temporal IoU between segments, with the exact floating-point recipe of the official
ActivityNet ``segment_iou`` (``Evaluation/utils.py``), and the tIoU threshold presets.

The recipe matters for bit-exact agreement: intersection = ``max(0, min(ends) - max(starts))``,
union = ``len(gt) + len(pred) - intersection`` in that order, no clipping to the video and no
guard against 0/0, so a zero-length prediction on a zero-length GT gives NaN, which the
matching counts as a hit (shared/research/evaluation.md §3, P8).
"""

from __future__ import annotations

import numpy as np

from tal_bench.errors import TalBenchError

# The exact arrays ActionFormer / the ANet evaluation pass (evaluation.md "tIoU conventions"):
# linspace gives 0.39999999999999997 and 0.8999999999999999, which decide boundary tIoUs (P4).
TIOU_PRESETS = {
    "thumos": (0.3, 0.7, 5),
    "anet": (0.5, 0.95, 10),
}
_PRESET_ALIASES = {"thumos14": "thumos", "activitynet": "anet", "anet13": "anet"}


def pairwise_tiou(
    pred_start_s: np.ndarray, pred_end_s: np.ndarray, gt_start_s: np.ndarray, gt_end_s: np.ndarray
) -> np.ndarray:
    """Element-wise tIoU of aligned (prediction, GT) pairs, official recipe.

    Args:
        pred_start_s: (P,) prediction starts.
        pred_end_s: (P,) prediction ends.
        gt_start_s: (P,) GT starts.
        gt_end_s: (P,) GT ends.

    Returns:
        (P,) float64 tIoU; NaN where both segments have zero length and touch.
    """
    inter = np.minimum(pred_end_s, gt_end_s) - np.maximum(pred_start_s, gt_start_s)  # (P,)
    inter = inter.clip(0)
    union = (gt_end_s - gt_start_s) + (pred_end_s - pred_start_s) - inter  # (P,)
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def segment_tiou(pred_segments_s: np.ndarray, gt_segments_s: np.ndarray) -> np.ndarray:
    """tIoU of every prediction with every GT segment.

    Args:
        pred_segments_s: (M, 2) [start_s, end_s].
        gt_segments_s: (N, 2) [start_s, end_s].

    Returns:
        (M, N) float64 tIoU matrix (official recipe, see the module docstring).
    """
    pred = np.asarray(pred_segments_s, dtype=np.float64).reshape(-1, 2)  # (M, 2)
    gt = np.asarray(gt_segments_s, dtype=np.float64).reshape(-1, 2)  # (N, 2)
    return pairwise_tiou(pred[:, None, 0], pred[:, None, 1], gt[None, :, 0], gt[None, :, 1])


def tiou_preset(spec: str | float | list[float] | tuple[float, ...] | np.ndarray) -> np.ndarray:
    """tIoU thresholds from a preset name or an explicit list.

    Args:
        spec: "thumos" (``np.linspace(0.3, 0.7, 5)``), "anet" (``np.linspace(0.5, 0.95, 10)``),
            a comma list such as "0.3,0.5" (parsed as given), or numbers.

    Returns:
        (K,) float64 thresholds, each in (0, 1], no duplicates.

    Example:
        >>> tiou_preset("thumos")[1]
        0.39999999999999997
    """
    if isinstance(spec, str):
        key = spec.strip().lower()
        key = _PRESET_ALIASES.get(key, key)
        if key in TIOU_PRESETS:
            return np.linspace(*TIOU_PRESETS[key])
        values = _parse_list(spec)
    else:
        values = np.atleast_1d(np.asarray(spec, dtype=np.float64))
    return check_thresholds(values)


def _parse_list(text: str) -> np.ndarray:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        return np.asarray([float(p) for p in parts], dtype=np.float64)
    except ValueError:
        raise TalBenchError(
            f"bad tIoU spec {text!r}: use 'thumos', 'anet' or a comma list such as 0.3,0.5,0.7"
        ) from None


def check_thresholds(values: np.ndarray) -> np.ndarray:
    """Validate thresholds: 1-D, non-empty, finite, in (0, 1], no duplicates.

    Args:
        values: candidate thresholds.

    Returns:
        (K,) float64 copy of ``values``.
    """
    arr = np.array(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise TalBenchError("no tIoU thresholds given: use 'thumos', 'anet' or e.g. 0.3,0.5,0.7")
    bad = arr[~((arr > 0) & (arr <= 1))]
    if bad.size:
        raise TalBenchError(f"tIoU thresholds must lie in (0, 1]; got {bad[0]!r}")
    ordered = np.sort(arr)  # (cheaper than np.unique for a handful of values)
    if (ordered[1:] == ordered[:-1]).any():
        raise TalBenchError(f"tIoU thresholds repeat a value: {arr.tolist()}")
    return arr
