"""Detection mAP as activitynet/ActivityNet ``Evaluation/eval_detection.py`` computes it:
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
    reach_s: np.ndarray  # (C,) a hair over the longest GT of each class
    meta: dict[str, Any]  # the GT's share of ``EvalResult``: classes, num_gt, subset, ...

    def evaluate(self, dets: Detections, tiou_thresholds: np.ndarray) -> EvalResult:
        """Official ActivityNet detection mAP of ``dets`` against this subset."""
        thresholds, classes = check_thresholds(tiou_thresholds), self.meta["classes"]
        video = _lookup(self.video_ids, dets.video_ids)[dets.video_idx]  # (M,) -1: other video
        label = _lookup(classes, dets.classes)[dets.label_idx]  # (M,) -1: dropped
        # by class, input order inside one: (class, row) keys are distinct, so any sort does
        rows = np.argsort(label * len(label) + np.arange(len(label)))  # (M,)
        known = (video >= 0) & (label >= 0)
        block = np.where(known, label * len(self.video_ids) + video, -2)[rows]  # -2: no GT
        start_s, end_s, scores = dets.t_start_s[rows], dets.t_end_s[rows], dets.scores[rows]
        # the candidates of every class at once, as the table is sorted by class first
        pred, slot = self._near_gt(block, start_s, end_s)  # (P,) pairs, ascending ``pred``
        tiou = pairwise_tiou(start_s[pred], end_s[pred], self.start_s[slot], self.end_s[slot])
        near = (~(tiou < thresholds.min())).nonzero()[0]  # NaN is below nothing: it matches
        pred, slot, tiou = pred[near], slot[near], tiou[near]
        first = label[rows].searchsorted(np.arange(len(classes) + 1))  # (C + 1,) class starts
        first_pair = pred.searchsorted(first)  # (C + 1,)
        ap = np.zeros((len(thresholds), len(classes)))  # (K, C)
        for c in np.diff(first).nonzero()[0]:  # a class without predictions has AP 0
            n, pairs = slice(first[c], first[c + 1]), slice(first_pair[c], first_pair[c + 1])
            cand = (pred[pairs] - first[c], slot[pairs], tiou[pairs])
            ap[:, c] = self.class_ap(c, scores[n], start_s[n], end_s[n], *cand, thresholds)
        dropped, names = label < 0, np.array([*dets.classes, ""], dtype=object)  # -1 -> ""
        lost = sorted(set(names[np.unique(dets.label_idx[dropped])]))
        counts = (len(dets), int(dropped.sum()), lost, int(((video < 0) & ~dropped).sum()))
        mean_ap = ap.mean(axis=1)  # (K,)
        mAP = dict(zip(thresholds.tolist(), mean_ap.tolist(), strict=True))
        return EvalResult(thresholds, mAP, float(mean_ap.mean()), ap, *counts, **self.meta)

    def class_ap(self, c, scores, start_s, end_s, pred, slot, tiou, thresholds) -> np.ndarray:
        """(K,) AP of class ``c``: the official ``compute_average_precision_detection``, given
        the class's (n,) predictions in input order and their (P,) pairs with candidate GT
        (``pred`` indexes the predictions, ``slot`` the table, ``tiou`` not below a threshold)."""
        order = scores.argsort()[::-1]  # the official visit order, ties included
        visit = np.empty_like(order)
        visit[order] = np.arange(len(order))  # (n,) visit rank of each prediction
        # each prediction's candidates by decreasing tIoU, NaN first: ``tiou.argsort()[::-1]``
        by_tiou = np.lexsort((np.where(np.isnan(tiou), -np.inf, -tiou), visit[pred]))
        pred, slot, tiou = visit[pred[by_tiou]], slot[by_tiou], tiou[by_tiou]
        self._official_ties(pred, slot, tiou, start_s[order[pred]], end_s[order[pred]])
        slot = slot - self.block_row[c * len(self.video_ids)]  # (P,) the GT's index in its class
        tp = greedy_match(pred, slot, tiou, thresholds, len(order), self.npos[c])  # (K, n)
        # interpolated AP (official ``interpolated_prec_rec``): precision and recall change only
        # at the TPs, so the envelope there and the recall steps give every non-zero term
        k_idx, seen = tp.nonzero()  # (T,) by threshold, then visit order
        n_tp = np.bincount(k_idx, minlength=len(thresholds))  # (K,)
        found = np.arange(1, k_idx.size + 1) - (n_tp.cumsum() - n_tp).repeat(n_tp)  # (T,) TPs
        envelope = np.zeros((len(thresholds), n_tp.max(initial=0)))  # (K, most TPs), 0 after
        envelope[k_idx, found - 1] = found / (seen + 1.0)  # precision: TP / (TP + FP)
        envelope = np.maximum.accumulate(envelope[:, ::-1], axis=1)[:, ::-1]  # max from the right
        step = found / self.npos[c] - (found - 1) / self.npos[c]  # (T,) recall steps, as there
        terms = step * envelope[k_idx, found - 1]  # (T,)
        return np.bincount(k_idx, terms, minlength=len(thresholds))

    def _near_gt(self, block, start_s, end_s) -> tuple[np.ndarray, np.ndarray]:
        """(P,) prediction and (P,) table row of the pairs whose tIoU may be positive or NaN:
        GT of the prediction's block (none: the official ``get_group`` miss, a false positive)
        starting in [s - reach, e) for a finite s < e (an overlap), all of them otherwise or if
        a GT has end < start (0/0 = NaN can then happen anywhere)."""
        row, width, length = self.block_row, len(self.starts) + 1, self.end_s - self.start_s
        some = (row[block + 1] > row[block]).nonzero()[0]  # (S,) with GT in the block
        block, s, e = block[some], start_s[some], end_s[some]
        with np.errstate(invalid="ignore"):
            rank_lo = self.starts.searchsorted(s - self.reach_s[block // len(self.video_ids)])
        near_lo = self.key.searchsorted(block * width + rank_lo)
        near_hi = self.key.searchsorted(block * width + self.starts.searchsorted(e))
        regular = np.isfinite(s) & np.isfinite(e) & (e > s) & (length.min() >= 0)
        lo = np.where(regular, near_lo, row[block])  # (S,)
        count = np.where(regular, near_hi, row[block + 1]) - lo  # (S,)
        pred = some.repeat(count)
        return pred, np.arange(count.sum()) + (lo - (count.cumsum() - count)).repeat(count)

    def _official_ties(self, pred, slot, tiou, start_s, end_s) -> None:
        """Order tied candidates in place as ``tiou_arr.argsort()[::-1]`` does on the official
        row: the tIoU with every GT of the video, in file order (NumPy's sort decides ties).
        ``start_s``, ``end_s``: (P,) the segment of each pair's prediction."""
        same = (tiou[1:] == tiou[:-1]) | (np.isnan(tiou[1:]) & np.isnan(tiou[:-1]))
        for p in np.unique(pred[1:][same & (pred[1:] == pred[:-1])]):
            lo, hi = pred.searchsorted([p, p + 1])
            block = self.key[slot[lo]] // (len(self.starts) + 1)  # the prediction's (class, video)
            rows = np.arange(self.block_row[block], self.block_row[block + 1])
            rows = rows[np.argsort(self.file_row[rows])]
            row = pairwise_tiou(start_s[lo], end_s[lo], self.start_s[rows], self.end_s[rows])
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
        first = np.concatenate(([True], item[1:] != item[:-1]))  # each one's first free GT
        earliest = np.full(locked.size, tp.size)
        np.minimum.at(earliest, want, item)  # the earliest open prediction wanting each GT
        won = first & (earliest[want] == item)
        tp[item[won]], locked[want[won]] = True, True
        still = ~(tp[item] | locked[want])
        item, want = item[still], want[still]
    return tp.reshape(len(thresholds), n_pred)


def prepare_ground_truth(gt: Annotations, subset: str, dedup: bool = False) -> GroundTruthIndex:
    """Lay out one subset of ``gt`` for scoring (``evaluate_detections`` does this every call)."""
    videos, how = select_subset(gt, subset, require_instances=True)
    segs = [v.segments_s.reshape(-1, 2) for v in videos]  # (N, 2) each, file order
    labels = np.array([label for v in videos for label in v.labels], dtype=object)  # (G0,)
    keep = np.ones(len(labels), dtype=bool)  # (G0,)
    if dedup:
        keep = np.concatenate([dedup_mask(v.labels, s) for v, s in zip(videos, segs, strict=True)])
    if not keep.any():
        raise TalBenchError(
            f"subset {subset!r}: de-duplication removed every GT instance (all shorter than "
            f"{DEDUP_TOL_S} s); evaluate without --dedup"
        )
    classes = list(dict.fromkeys(labels[keep].tolist()))  # first-appearance order, as there
    cls = _lookup(classes, labels[keep].tolist())[:-1]  # (G,) class of each GT row
    vid = np.repeat(np.arange(len(videos)), [len(seg) for seg in segs])[keep]  # (G,)
    start, end = np.concatenate(segs)[keep].T  # (G,) each
    order = np.lexsort((start, vid, cls))  # stable: file order among equal starts
    block = (cls * len(videos) + vid)[order]  # (G,) ascending
    start, end, starts = start[order], end[order], np.unique(start)
    meta = dict(classes=list(classes), num_gt=len(cls), dedup=dedup, subset=subset)
    meta |= dict(num_videos=len(videos), subset_raw=sorted({v.subset_raw for v in videos}))
    meta |= dict(num_gt_removed=len(keep) - len(cls), subset_match=how)
    block_row = np.searchsorted(block, np.arange(len(classes) * len(videos) + 2))
    key = block * (len(starts) + 1) + np.searchsorted(starts, start)  # (G,) ascending
    reach = np.zeros(len(classes))
    np.maximum.at(reach, cls[order], (end - start) * (1 + 1e-9))  # a hair: lengths round down
    ids, npos = [v.video_id for v in videos], np.bincount(cls)
    return GroundTruthIndex(ids, npos, block_row, key, start, end, order, starts, reach, meta)


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
