"""Detection mAP as the official ActivityNet ``Evaluation/eval_detection.py`` computes it:
``GroundTruthIndex.class_ap`` reads beside its ``compute_average_precision_detection``.

As there: the classes are the labels with GT in the subset (first appearance), every GT row counts
in ``npos``, predictions on videos outside the subset are false positives, a class without
predictions has AP 0. Unlike there: a label without GT is dropped and counted (not ``KeyError``),
the subset may be named normalised, and ``dedup`` is ActionFormer's GT clean-up
(happyharrycn/actionformer_release, libs/utils/metrics.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tal_bench.data.annotations import select_subset
from tal_bench.errors import TalBenchError
from tal_bench.evaluation.tiou import check_thresholds, pairwise_tiou
from tal_bench.types import Annotations, Detections

DEDUP_TOL_S = 1e-3  # ActionFormer's tolerance for duplicate / too-short GT


@dataclass
class EvalResult:
    """mAP of one prediction set (fractions in [0, 1], as the official code)."""

    tiou_thresholds: np.ndarray  # (K,)
    mAP: dict[float, float]  # threshold -> mAP over classes
    average_mAP: float  # mean over thresholds
    ap: np.ndarray  # (K, C) per threshold, per class
    num_pred: int  # predictions given
    num_dropped_pred: int  # predictions whose label has no GT in the subset
    dropped_labels: list[str]
    num_pred_outside_subset: int  # scored predictions on videos outside the subset (FPs)
    classes: list[str]  # (C,) classes with GT in the subset, first-appearance order
    num_gt: int  # GT instances scored (after dedup)
    num_gt_removed: int  # GT rows removed by dedup
    dedup: bool
    subset: str  # as requested
    subset_match: str  # "raw" (exact file string) or "normalized"
    subset_raw: list[str]  # raw names of the videos used
    num_videos: int  # videos in the subset


def evaluate_detections(
    gt: Annotations, subset: str, dets: Detections, tiou_thresholds: np.ndarray, dedup: bool = False
) -> EvalResult:
    """mAP of ``dets`` on ``subset`` ("Test" as in the file, or "test") of ``gt`` at (K,)
    ``tiou_thresholds``: ``prepare_ground_truth(gt, subset, dedup).evaluate(...)``."""
    return prepare_ground_truth(gt, subset, dedup).evaluate(dets, tiou_thresholds)


@dataclass
class GroundTruthIndex:
    """One subset's GT as a table sorted by (class, video, start), made once to score many
    prediction sets. A row's key packs the three: (class * V + video) * W + the rank of its start
    among the distinct GT starts, so one ``searchsorted`` finds a video's GT near a time."""

    video_ids: list[str]  # (V,) the subset's videos, file order
    npos: np.ndarray  # (C,) GT per class
    block_row: np.ndarray  # (C * V + 2,) first row of each (class, video); 2 empty at the end
    key: np.ndarray  # (G,) int64, ascending
    start_s: np.ndarray  # (G,)
    end_s: np.ndarray  # (G,)
    file_row: np.ndarray  # (G,) row in file order: the order of the official tIoU rows
    starts: np.ndarray  # (W - 1,) distinct GT starts, ascending (a rank indexes it)
    meta: dict[str, Any]  # the GT's share of ``EvalResult``: classes, num_gt, subset, ...

    def evaluate(self, dets: Detections, tiou_thresholds: np.ndarray) -> EvalResult:
        """Official ActivityNet detection mAP of ``dets`` against this subset."""
        thresholds, classes = check_thresholds(tiou_thresholds), self.meta["classes"]
        video = _lookup(self.video_ids, dets.video_ids)[dets.video_idx]  # (M,) -1: other video
        label = _lookup(classes, dets.classes)[dets.label_idx]  # (M,) -1: dropped
        # by class, input order inside one: (class, row) keys are distinct, so any sort does
        by_class = np.argsort(label * len(label) + np.arange(len(label)))
        bounds = np.searchsorted(label[by_class], np.arange(len(classes) + 1))
        ap = np.zeros((len(thresholds), len(classes)))  # (K, C)
        for c in np.flatnonzero(np.diff(bounds)):  # a class without predictions has AP 0
            rows = by_class[bounds[c] : bounds[c + 1]]
            cols = (video[rows], dets.t_start_s[rows], dets.t_end_s[rows], dets.scores[rows])
            ap[:, c] = self.class_ap(c, *cols, thresholds)
        dropped, names = label < 0, np.array([*dets.classes, ""], dtype=object)  # -1 -> ""
        lost = sorted(set(names[np.unique(dets.label_idx[dropped])]))
        counts = (len(dets), int(dropped.sum()), lost, int(((video < 0) & ~dropped).sum()))
        mean_ap = ap.mean(axis=1)  # (K,)
        mAP = dict(zip(thresholds.tolist(), mean_ap.tolist(), strict=True))
        return EvalResult(thresholds, mAP, float(mean_ap.mean()), ap, *counts, **self.meta)

    def class_ap(self, c, video, start_s, end_s, scores, thresholds) -> np.ndarray:
        """(K,) AP of class ``c``, the official ``compute_average_precision_detection``, from
        its (n,) predictions in input order (``video`` -1: outside the subset)."""
        order = scores.argsort()[::-1]  # the official visit order, ties included
        video, start_s, end_s = video[order], start_s[order], end_s[order]
        pred, slot = self._near_gt(c, video, start_s, end_s)  # (P,) pairs
        tiou = pairwise_tiou(start_s[pred], end_s[pred], self.start_s[slot], self.end_s[slot])
        near = ~(tiou < thresholds.min())  # the candidates; NaN is below nothing: it matches
        pred, slot, tiou = pred[near], slot[near], tiou[near]
        # each prediction's candidates by decreasing tIoU, NaN first: ``tiou.argsort()[::-1]``
        by_tiou = np.lexsort((np.where(np.isnan(tiou), -np.inf, -tiou), pred))
        pred, slot, tiou = pred[by_tiou], slot[by_tiou], tiou[by_tiou]
        self._official_ties(pred, slot, tiou, c, video, start_s, end_s)
        slot -= self.block_row[c * len(self.video_ids)]  # (P,) the GT's index in its class
        tp = greedy_match(pred, slot, tiou, thresholds, len(order), self.npos[c])  # (K, n)
        # precision and recall of the official cumulative sums change only at a TP: passing
        # the TPs alone to ``interpolated_prec_rec`` selects the very same terms
        ap = np.zeros(len(thresholds))
        for k, hits in enumerate(tp):
            seen = np.flatnonzero(hits) + 1.0  # (T,) predictions seen at each TP
            found = np.arange(1.0, seen.size + 1)  # (T,) TPs so far
            ap[k] = interpolated_prec_rec(found / seen, found / self.npos[c])
        return ap

    def _near_gt(self, c, video, start_s, end_s) -> tuple[np.ndarray, np.ndarray]:
        """(P,) prediction and (P,) table row of the pairs whose tIoU may be positive or NaN:
        GT of the prediction's video (none: the official ``get_group`` miss, a false positive)
        starting in [s - 2 x the longest GT, e) (2x: room for rounding) for a finite s < e, all
        of them otherwise or if a GT has end < start (0/0 = NaN can then happen anywhere)."""
        block = np.where(video >= 0, c * len(self.video_ids) + video, -2)  # -2: an empty block
        some = np.flatnonzero(self.block_row[block + 1] > self.block_row[block])  # (S,) with GT
        block, s, e = block[some], start_s[some], end_s[some]
        lo, hi = self.block_row[block], self.block_row[block + 1]  # (S,) the video's GT
        width = len(self.starts) + 1
        length = self.end_s - self.start_s  # (G,)
        with np.errstate(invalid="ignore"):
            rank_lo = np.searchsorted(self.starts, s - 2 * length.max())
        near_lo = np.searchsorted(self.key, block * width + rank_lo)
        near_hi = np.searchsorted(self.key, block * width + np.searchsorted(self.starts, e))
        regular = np.isfinite(s) & np.isfinite(e) & (e > s) & (length.min() >= 0)
        lo, hi = np.where(regular, near_lo, lo), np.where(regular, near_hi, hi)
        count = hi - lo  # (S,)
        pred = np.repeat(some, count)
        return pred, np.arange(count.sum()) + np.repeat(lo - (np.cumsum(count) - count), count)

    def _official_ties(self, pred, slot, tiou, c, video, start_s, end_s) -> None:
        """Order tied candidates in place as ``tiou_arr.argsort()[::-1]`` does on the official
        row: the tIoU with every GT of the video, in file order (NumPy's sort decides ties)."""
        same = (tiou[1:] == tiou[:-1]) | (np.isnan(tiou[1:]) & np.isnan(tiou[:-1]))
        for p in np.unique(pred[1:][same & (pred[1:] == pred[:-1])]):
            lo, hi = np.searchsorted(pred, [p, p + 1])
            block = c * len(self.video_ids) + video[p]
            rows = np.arange(self.block_row[block], self.block_row[block + 1])
            rows = rows[np.argsort(self.file_row[rows])]
            row = pairwise_tiou(start_s[p], end_s[p], self.start_s[rows], self.end_s[rows])
            best = row.argsort()[::-1][: hi - lo]  # the candidates come first
            slot[lo:hi], tiou[lo:hi] = rows[best], row[best]


def greedy_match(pred, slot, tiou, thresholds, n_pred: int, n_gt: int) -> np.ndarray:
    """(K, n_pred) official TPs: at each threshold each prediction, in visit order, locks the first
    free GT of its (P,) candidate pairs (by prediction, then GT order), unless a tIoU below the
    threshold comes first. All go at once, in rounds: a prediction whose first free GT no earlier
    open one may still take gets it for sure (others lock only their own candidates), so each
    round settles at least the earliest open prediction."""
    k_idx, pair = np.nonzero(~(tiou < thresholds[:, None]))  # (Q,) by threshold, then pair
    item, want = k_idx * n_pred + pred[pair], k_idx * n_gt + slot[pair]  # items ascending
    tp, locked = np.zeros(len(thresholds) * n_pred, bool), np.zeros(len(thresholds) * n_gt, bool)
    while item.size:
        first = np.r_[True, item[1:] != item[:-1]]  # each open prediction's first free GT
        earliest = np.full(locked.size, tp.size)
        np.minimum.at(earliest, want, item)  # the earliest open prediction wanting each GT
        won = first & (earliest[want] == item)
        tp[item[won]], locked[want[won]] = True, True
        still = ~(tp[item] | locked[want])
        item, want = item[still], want[still]
    return tp.reshape(len(thresholds), n_pred)


def interpolated_prec_rec(prec: np.ndarray, rec: np.ndarray) -> float:
    """All-point interpolated AP: the official ``interpolated_prec_rec``."""
    mprec, mrec = np.hstack([[0], prec, [0]]), np.hstack([[0], rec, [1]])
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]  # the official loop, max with the next
    idx = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def prepare_ground_truth(gt: Annotations, subset: str, dedup: bool = False) -> GroundTruthIndex:
    """Lay out one subset of ``gt`` for scoring (``evaluate_detections`` does this every call)."""
    videos, how = select_subset(gt, subset, require_instances=True)
    rows = []  # (label, video, start_s, end_s) of every GT kept, file order
    for i, v in enumerate(videos):
        seg = v.segments_s.reshape(-1, 2)  # (N, 2)
        keep = dedup_mask(v.labels, seg) if dedup else [True] * len(seg)
        kept = zip(v.labels, seg.tolist(), keep, strict=True)
        rows += [(label, i, *segment) for label, segment, k in kept if k]
    if not rows:
        raise TalBenchError(
            f"subset {subset!r}: de-duplication removed every GT instance (all shorter than "
            f"{DEDUP_TOL_S} s); evaluate without --dedup"
        )
    labels, vid, start, end = zip(*rows, strict=True)
    classes = list(dict.fromkeys(labels))
    code = {name: i for i, name in enumerate(classes)}
    cls = np.array([code[label] for label in labels])  # (G,) file order
    order = np.lexsort((start, vid, cls))  # stable: file order among equal starts
    block = (cls * len(videos) + np.array(vid))[order]  # (G,) ascending
    start, end = np.array(start)[order], np.array(end)[order]
    starts = np.unique(start)
    block_row = np.searchsorted(block, np.arange(len(classes) * len(videos) + 2))
    meta = dict(classes=classes, num_gt=len(rows), dedup=dedup, subset=subset, subset_match=how)
    meta |= dict(num_videos=len(videos), subset_raw=sorted({v.subset_raw for v in videos}))
    meta["num_gt_removed"] = sum(len(v.labels) for v in videos) - len(rows)
    key = block * (len(starts) + 1) + np.searchsorted(starts, start)  # (G,) ascending
    ids = [v.video_id for v in videos]
    return GroundTruthIndex(ids, np.bincount(cls), block_row, key, start, end, order, starts, meta)


def _lookup(names: list[str], queries: list[str]) -> np.ndarray:
    """(Q + 1,) position of each query in ``names`` (-1: absent); index -1 reads the last -1."""
    where = {name: i for i, name in enumerate(names)}
    return np.array([where.get(q, -1) for q in queries] + [-1], dtype=np.int64)


def dedup_mask(labels: list[str], segments_s: np.ndarray, tol_s: float = DEDUP_TOL_S) -> np.ndarray:
    """ActionFormer's GT clean-up of one video, (N,) rows to keep: a row goes if it is shorter
    than ``tol_s`` or an earlier *kept* row has its label and both ends within ``tol_s``."""
    keep = np.zeros(len(labels), dtype=bool)
    kept: dict[str, list[tuple[float, float]]] = {}
    for i, (label, (start, end)) in enumerate(zip(labels, segments_s.tolist(), strict=True)):
        same = kept.setdefault(label, [])
        duplicate = any(abs(start - s) <= tol_s and abs(end - e) <= tol_s for s, e in same)
        if (end - start) >= tol_s and not duplicate:
            keep[i] = True
            same.append((start, end))
    return keep
