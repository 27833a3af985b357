"""A deliberately plain, loop-by-loop ActivityNet detection mAP: the tests' reference.

Written from the official ``Evaluation/eval_detection.py`` (activitynet/ActivityNet) and
ActionFormer's GT de-duplication (happyharrycn/actionformer_release, libs/utils/metrics.py),
one prediction at a time, with no shortcuts, so that the vectorised evaluator in
``tal_bench.evaluation`` can be checked against it. It reuses nothing from
``tal_bench.evaluation``; it only reads ``Annotations`` / ``Detections``.
"""

from __future__ import annotations

import numpy as np

from tal_bench.types import Annotations, Detections

_NORMALISED = {"validation": "val", "training": "train", "testing": "test"}


def _norm(name: str) -> str:
    low = name.lower()
    return _NORMALISED.get(low, low)


def select_videos(gt: Annotations, subset: str) -> list:
    """Exact raw subset match (the official rule), else a match on the normalised name."""
    exact = [v for v in gt.videos.values() if v.subset_raw == subset]
    if exact:
        return exact
    return [v for v in gt.videos.values() if _norm(v.subset_raw) == _norm(subset)]


def dedup_rows(rows: list[tuple], tol: float = 1e-3) -> list[tuple]:
    """ActionFormer's rule on one video's (label, start, end) rows, in file order."""
    kept: list[tuple] = []
    for label, start, end in rows:
        valid = (end - start) >= tol
        for k_label, k_start, k_end in kept:
            if abs(start - k_start) <= tol and abs(end - k_end) <= tol and label == k_label:
                valid = False
                break
        if valid:
            kept.append((label, start, end))
    return kept


def segment_iou(target: list[float], candidates: np.ndarray) -> np.ndarray:
    """Official recipe: one target segment against (N, 2) candidate segments."""
    tt1 = np.maximum(target[0], candidates[:, 0])
    tt2 = np.minimum(target[1], candidates[:, 1])
    inter = (tt2 - tt1).clip(0)
    union = (candidates[:, 1] - candidates[:, 0]) + (target[1] - target[0]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter.astype(float) / union


def interpolated_prec_rec(prec: np.ndarray, rec: np.ndarray) -> float:
    """All-point interpolated AP (VOC 2010+), written out as a loop."""
    mprec = np.hstack([[0], prec, [0]])
    mrec = np.hstack([[0], rec, [1]])
    for i in range(len(mprec) - 1)[::-1]:
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.where(mrec[1::] != mrec[0:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def ap_detection(
    gt_rows: list[tuple], pred_rows: list[tuple], thresholds: np.ndarray
) -> np.ndarray:
    """AP of one class at every threshold.

    gt_rows: (video, start, end) in GT order; pred_rows: (video, start, end, score) in input order.
    """
    thresholds = np.asarray(thresholds)
    ap = np.zeros(len(thresholds))
    if not pred_rows:
        return ap
    npos = float(len(gt_rows))
    lock_gt = np.ones((len(thresholds), len(gt_rows))) * -1
    scores = np.array([p[3] for p in pred_rows])
    sort_idx = scores.argsort()[::-1]
    tp = np.zeros((len(thresholds), len(pred_rows)))
    fp = np.zeros((len(thresholds), len(pred_rows)))
    by_video: dict = {}
    for gidx, (video, start, end) in enumerate(gt_rows):
        by_video.setdefault(video, []).append((gidx, start, end))
    for idx, pidx in enumerate(sort_idx):
        video, start, end, _ = pred_rows[pidx]
        if video not in by_video:
            fp[:, idx] = 1
            continue
        this_gt = by_video[video]
        tiou_arr = segment_iou([start, end], np.array([[g[1], g[2]] for g in this_gt]))
        tiou_sorted_idx = tiou_arr.argsort()[::-1]
        for tidx, thr in enumerate(thresholds):
            for jdx in tiou_sorted_idx:
                if tiou_arr[jdx] < thr:
                    fp[tidx, idx] = 1
                    break
                if lock_gt[tidx, this_gt[jdx][0]] >= 0:
                    continue
                tp[tidx, idx] = 1
                lock_gt[tidx, this_gt[jdx][0]] = idx
                break
            if not tp[tidx, idx] and not fp[tidx, idx]:
                fp[tidx, idx] = 1
    tp_cumsum = np.cumsum(tp, axis=1).astype(float)
    fp_cumsum = np.cumsum(fp, axis=1).astype(float)
    recall = tp_cumsum / npos
    precision = tp_cumsum / (tp_cumsum + fp_cumsum)
    for tidx in range(len(thresholds)):
        ap[tidx] = interpolated_prec_rec(precision[tidx, :], recall[tidx, :])
    return ap


def reference_evaluate(
    gt: Annotations, subset: str, dets: Detections, thresholds: np.ndarray, dedup: bool = False
) -> dict:
    """mAP the slow, obvious way. Returns ap (K, C), mAP (K,), average_mAP, classes, counts."""
    gt_rows = []  # (video, label, start, end) in file order
    for v in select_videos(gt, subset):
        segs = v.segments_s.tolist()
        rows = [(lab, s, e) for (s, e), lab in zip(segs, v.labels, strict=True)]
        if dedup:
            rows = dedup_rows(rows)
        gt_rows += [(v.video_id, lab, s, e) for lab, s, e in rows]
    classes: list[str] = []
    for row in gt_rows:
        if row[1] not in classes:
            classes.append(row[1])
    pred_rows, dropped = [], 0
    for i in range(len(dets)):
        label = dets.classes[dets.label_idx[i]] if dets.label_idx[i] >= 0 else ""
        if label not in classes:
            dropped += 1
            continue
        video = dets.video_ids[dets.video_idx[i]]
        pred_rows.append((video, label, dets.t_start_s[i], dets.t_end_s[i], dets.scores[i]))
    ap = np.zeros((len(thresholds), len(classes)))
    for cidx, name in enumerate(classes):
        gt_c = [(r[0], r[2], r[3]) for r in gt_rows if r[1] == name]
        pred_c = [(p[0], p[2], p[3], p[4]) for p in pred_rows if p[1] == name]
        ap[:, cidx] = ap_detection(gt_c, pred_c, thresholds)
    mean_ap = ap.mean(axis=1) if classes else np.full(len(thresholds), np.nan)
    return {
        "ap": ap,
        "mAP": mean_ap,
        "average_mAP": float(mean_ap.mean()),
        "classes": classes,
        "num_gt": len(gt_rows),
        "num_dropped_pred": dropped,
    }
