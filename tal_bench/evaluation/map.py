"""Detection mAP exactly as the official ActivityNet ``Evaluation/eval_detection.py`` computes it,
vectorised over videos (shared/research/evaluation.md §3; ActionFormer's GT de-duplication §4).

Rules kept from the official code:
* classes are the labels with GT in the subset (first-appearance order); mAP averages them only;
* every GT row counts in ``npos`` (unless ``dedup``); predictions are not filtered by subset, so
  predictions on other videos are false positives;
* per class, predictions are visited in ``scores.argsort()[::-1]`` order over the class's
  predictions in input order, and matched greedily (see ``matching.py``);
* AP is the all-point interpolated AP (precision envelope); a class without predictions has AP 0.

Differences, on purpose: a predicted label with no GT in the subset is dropped and counted
instead of raising ``KeyError``; the subset may also be given by its normalised name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from tal_bench.data.annotations import select_subset
from tal_bench.errors import TalBenchError
from tal_bench.evaluation.arrays import argsort_stable, offsets_of, run_starts
from tal_bench.evaluation.factorize import factorize
from tal_bench.evaluation.matching import GtGrid, greedy_match
from tal_bench.evaluation.strings import StringKeys
from tal_bench.evaluation.tiou import check_thresholds
from tal_bench.types import Annotations, Detections, VideoRecord

DEDUP_TOL_S = 1e-3  # ActionFormer's tolerance for duplicate / too-short GT


@dataclass
class EvalResult:
    """mAP of one prediction set (fractions in [0, 1], as the official code)."""

    tiou_thresholds: np.ndarray  # (K,)
    mAP: dict[float, float]  # threshold -> mAP over classes
    average_mAP: float  # mean over thresholds
    ap: np.ndarray  # (K, C) per threshold, per class
    classes: list[str]  # (C,) classes with GT in the subset, first-appearance order
    num_gt: int  # GT instances scored (after dedup)
    num_pred: int  # predictions given
    num_dropped_pred: int  # predictions whose label has no GT in the subset
    dropped_labels: list[str] = field(default_factory=list)
    subset: str = ""  # as requested
    subset_match: str = ""  # "raw" (exact file string) or "normalized"
    subset_raw: list[str] = field(default_factory=list)  # raw names of the videos used
    num_videos: int = 0  # videos in the subset
    num_pred_outside_subset: int = 0  # scored predictions on videos outside the subset (FPs)
    num_gt_removed: int = 0  # GT rows removed by dedup
    dedup: bool = False

    def summary(self) -> dict[str, Any]:
        """JSON-able summary; mAP keys are the thresholds written shortly ("0.3", "0.4")."""
        keys = threshold_keys(self.tiou_thresholds)
        return {
            "mAP": {k: float(v) for k, v in zip(keys, self.ap.mean(axis=1), strict=True)},
            "average_mAP": float(self.average_mAP),
            "tiou_thresholds": [float(t) for t in self.tiou_thresholds],
            "num_gt": self.num_gt,
            "num_pred": self.num_pred,
            "num_dropped_pred": self.num_dropped_pred,
            "dropped_labels": list(self.dropped_labels),
            "num_pred_outside_subset": self.num_pred_outside_subset,
            "num_gt_removed": self.num_gt_removed,
            "dedup": self.dedup,
            "subset": self.subset,
            "subset_match": self.subset_match,
            "subset_raw": list(self.subset_raw),
            "num_videos": self.num_videos,
            "num_classes": len(self.classes),
            "classes": list(self.classes),
            "ap_per_class": {
                c: [float(x) for x in self.ap[:, i]] for i, c in enumerate(self.classes)
            },
        }


def threshold_keys(thresholds: np.ndarray) -> list[str]:
    """Short unique labels for thresholds: 0.39999999999999997 -> "0.4"."""
    keys = [f"{float(t):.10g}" for t in thresholds]
    return keys if len(set(keys)) == len(keys) else [repr(float(t)) for t in thresholds]


@dataclass
class _GtTable:
    video_idx: np.ndarray  # (G,) index into the subset's videos
    labels: list[str]  # (G,)
    start_s: np.ndarray  # (G,)
    end_s: np.ndarray  # (G,)
    num_removed: int


def evaluate_detections(
    gt: Annotations,
    subset: str,
    dets: Detections,
    tiou_thresholds: np.ndarray,
    dedup: bool = False,
) -> EvalResult:
    """Official ActivityNet detection mAP of ``dets`` against one subset of ``gt``.

    To score many prediction sets against one subset, prepare it once with
    :func:`prepare_ground_truth` and call its ``evaluate``: the result is the same.

    Args:
        gt: ground truth (any supported annotation file).
        subset: the raw subset string ("Test", "validation") or a normalised name ("test").
        dets: predictions in seconds, any videos.
        tiou_thresholds: (K,) thresholds, e.g. ``tiou_preset("thumos")``.
        dedup: drop same-label GT within 1e-3 s at both ends and GT shorter than 1e-3 s
            (ActionFormer / OpenTAD).

    Returns:
        ``EvalResult`` with mAP per threshold and average_mAP as fractions.
    """
    return prepare_ground_truth(gt, subset, dedup).evaluate(dets, tiou_thresholds)


@dataclass
class GroundTruthIndex:
    """One subset of the ground truth, laid out for scoring (see :func:`prepare_ground_truth`).

    Everything here depends on the GT only: the GT table sorted by (class, video) block, the
    block grid of the matching, and the key tables of the video-id and class-name lookups.
    """

    subset: str  # as requested
    subset_match: str  # "raw" or "normalized"
    subset_raw: list[str]  # raw names of the videos used
    dedup: bool
    num_videos: int
    classes: list[str]  # (C,) classes with GT in the subset, first-appearance order
    npos: np.ndarray  # (C,) GT instances per class
    num_gt_removed: int
    gt_block: np.ndarray  # (G,) class * num_videos + video, ascending
    gt_start_s: np.ndarray  # (G,) in ``gt_block`` order
    gt_end_s: np.ndarray  # (G,)
    grid: GtGrid
    video_keys: StringKeys
    class_keys: StringKeys

    @property
    def num_gt(self) -> int:
        return int(self.gt_block.size)

    def evaluate(self, dets: Detections, tiou_thresholds: np.ndarray) -> EvalResult:
        """Official ActivityNet detection mAP of ``dets`` against this subset.

        Args:
            dets: predictions in seconds, any videos.
            tiou_thresholds: (K,) thresholds, e.g. ``tiou_preset("thumos")``.
        """
        thresholds = check_thresholds(tiou_thresholds)
        p_vid = self.video_keys.index(dets.video_ids)  # (M,) -1: other video
        p_cls = self.class_keys.index(dets.labels)  # (M,) -1: label without GT, dropped
        ap = _ap_all_classes(self, dets, p_vid, p_cls, thresholds)
        mean_ap = ap.mean(axis=1)  # (K,)
        dropped = p_cls < 0
        labels = np.asarray(dets.labels)
        return EvalResult(
            tiou_thresholds=thresholds,
            mAP={float(t): float(m) for t, m in zip(thresholds, mean_ap, strict=True)},
            average_mAP=float(mean_ap.mean()),
            ap=ap,
            classes=list(self.classes),
            num_gt=self.num_gt,
            num_pred=len(dets),
            num_dropped_pred=int(dropped.sum()),
            dropped_labels=sorted({str(x) for x in labels.compress(dropped).tolist()}),
            subset=self.subset,
            subset_match=self.subset_match,
            subset_raw=list(self.subset_raw),
            num_videos=self.num_videos,
            num_pred_outside_subset=int(((p_vid < 0) & ~dropped).sum()),
            num_gt_removed=self.num_gt_removed,
            dedup=self.dedup,
        )


def prepare_ground_truth(gt: Annotations, subset: str, dedup: bool = False) -> GroundTruthIndex:
    """Lay out one subset of ``gt`` for scoring; ``evaluate_detections`` does this every call.

    Args:
        gt: ground truth (any supported annotation file).
        subset: the raw subset string ("Test", "validation") or a normalised name ("test").
        dedup: ActionFormer's GT de-duplication (see ``evaluate_detections``).
    """
    videos, how = select_subset(gt, subset, require_instances=True)
    table = _gt_table(videos, dedup)
    if not table.labels:
        raise TalBenchError(
            f"subset {subset!r}: de-duplication removed every GT instance (all shorter than "
            f"{DEDUP_TOL_S} s); evaluate without --dedup"
        )
    gt_cls, classes = _class_codes(table.labels)
    gt_block = gt_cls * len(videos) + table.video_idx  # (G,)
    g_order = np.argsort(gt_block, kind="stable")  # file order kept inside a block
    gt_block, start_s, end_s = gt_block[g_order], table.start_s[g_order], table.end_s[g_order]
    return GroundTruthIndex(
        subset=subset,
        subset_match=how,
        subset_raw=sorted({v.subset_raw for v in videos}),
        dedup=dedup,
        num_videos=len(videos),
        classes=classes,
        npos=np.bincount(gt_cls, minlength=len(classes)),
        num_gt_removed=table.num_removed,
        gt_block=gt_block,
        gt_start_s=start_s,
        gt_end_s=end_s,
        grid=GtGrid(gt_block, start_s, end_s - start_s),
        video_keys=StringKeys([v.video_id for v in videos]),
        class_keys=StringKeys(classes),
    )


def _class_codes(labels: list[str]) -> tuple[np.ndarray, list[str]]:
    """(G,) int64 code of each GT label and the classes in order of first appearance."""
    codes, uniques = factorize(labels)
    return codes, [str(c) for c in uniques]


def _gt_table(videos: list[VideoRecord], dedup: bool) -> _GtTable:
    """All GT rows of the subset in file order (videos, then annotations)."""
    counts = np.array([len(v.labels) for v in videos], dtype=np.int64)
    labels = list(chain.from_iterable([v.labels for v in videos]))
    seg = np.concatenate([v.segments_s for v in videos])  # (G, 2) as the loaders store them
    if seg.ndim != 2 or seg.shape[1] != 2:  # (0,) or flat segments built by hand
        seg = np.concatenate([v.segments_s.reshape(-1, 2) for v in videos])
    video_idx = np.repeat(np.arange(len(videos)), counts)  # (G,)
    if not dedup:
        return _GtTable(video_idx, labels, seg[:, 0].copy(), seg[:, 1].copy(), 0)
    keep = _dedup_keep(videos, labels, seg, video_idx)
    kept_labels = [lab for lab, k in zip(labels, keep.tolist(), strict=True) if k]
    seg = seg[keep]
    return _GtTable(
        video_idx[keep], kept_labels, seg[:, 0].copy(), seg[:, 1].copy(), int((~keep).sum())
    )


def _dedup_keep(
    videos: list[VideoRecord], labels: list[str], seg: np.ndarray, video_idx: np.ndarray
) -> np.ndarray:
    """(G,) keep mask of ``dedup_mask``; the exact loop runs only on videos that need it.

    Two same-label rows of a video can only be duplicates if their starts are within the
    tolerance, which shows as two neighbours after sorting by (video, label, start).
    """
    keep = (seg[:, 1] - seg[:, 0]) >= DEDUP_TOL_S  # (G,) rows too short never survive
    label_codes = factorize(labels)[0]  # (G,)
    order = np.lexsort((seg[:, 0], label_codes, video_idx))
    same_group = (video_idx[order][1:] == video_idx[order][:-1]) & (
        label_codes[order][1:] == label_codes[order][:-1]
    )
    close = np.abs(np.diff(seg[order, 0])) <= DEDUP_TOL_S
    first_row = np.r_[0, np.cumsum([len(v.labels) for v in videos])]
    for vi in np.unique(video_idx[order][1:][same_group & close]):
        lo, hi = first_row[vi], first_row[vi + 1]
        keep[lo:hi] = dedup_mask(videos[vi].labels, seg[lo:hi])
    return keep


def dedup_mask(labels: list[str], segments_s: np.ndarray, tol_s: float = DEDUP_TOL_S) -> np.ndarray:
    """ActionFormer's GT clean-up for one video: which rows to keep.

    A row is dropped if it is shorter than ``tol_s`` or if an earlier *kept* row has the same
    label and both boundaries within ``tol_s``.

    Args:
        labels: (N,) class names, file order.
        segments_s: (N, 2) segments.
        tol_s: the tolerance (1e-3 s in ActionFormer).

    Returns:
        (N,) bool keep mask.
    """
    keep = np.zeros(len(labels), dtype=bool)
    kept: dict[str, list[tuple[float, float]]] = {}
    for i, (label, (start, end)) in enumerate(zip(labels, segments_s.tolist(), strict=True)):
        same = kept.setdefault(label, [])
        duplicate = any(abs(start - s) <= tol_s and abs(end - e) <= tol_s for s, e in same)
        if (end - start) >= tol_s and not duplicate:
            keep[i] = True
            same.append((start, end))
    return keep


def _ap_all_classes(
    index: GroundTruthIndex,
    dets: Detections,
    p_vid: np.ndarray,
    p_cls: np.ndarray,
    thresholds: np.ndarray,
) -> np.ndarray:
    """(K, C) AP: official visit order per class, one vectorised matching for all classes."""
    num_videos, num_classes = index.num_videos, len(index.classes)
    scores = np.asarray(dets.scores, dtype=np.float64)
    matchable = (p_vid >= 0) & (p_cls >= 0)  # on a subset video, with a kept label
    pred_block = np.where(matchable, p_cls * num_videos + p_vid, -1)  # (M,)
    wanted = index.grid.has_gt(pred_block)  # (M,)
    # only predictions whose block has GT can be TPs: the rest count by their class alone
    rows, pos, offsets = _wanted_positions(p_cls, scores, num_classes, wanted)  # (S,), (S,)
    contender, tp = greedy_match(
        pred_block.take(rows),
        np.asarray(dets.t_start_s, dtype=np.float64),
        np.asarray(dets.t_end_s, dtype=np.float64),
        index.gt_block,
        index.gt_start_s,
        index.gt_end_s,
        thresholds,
        pred_rows=rows,
        grid=index.grid,
    )  # (N,), (K, N)
    return class_aps(pos.take(contender), tp, np.diff(offsets), index.npos)


def _wanted_positions(
    p_cls: np.ndarray, scores: np.ndarray, num_classes: int, wanted: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Visit-order positions of the ``wanted`` predictions (the only ones that can be TPs).

    ``class_aps`` needs only where each possible TP stands in its class's visit order (the
    other predictions are FPs that just take up ranks). With the (class, quantised score) keys
    of ``_visit_keys``, a wanted prediction's position in the classes' concatenated visit order
    is its rank among the wanted keys plus the number of other keys below its own, so only the
    wanted keys are sorted with their rows (``argsort_stable``); the others are sorted as
    plain values and counted by one search. Where the keys of a class differ that is the exact
    descending order, which is what ``argsort()[::-1]`` gives for distinct scores. Where a
    wanted key equals another key, or a class has a non-finite score, the class is redone with
    the official expression.

    Args:
        p_cls: (M,) class of each prediction, -1 if dropped.
        scores: (M,) scores.
        num_classes: C.
        wanted: (M,) bool, only for kept predictions.

    Returns:
        rows (S,) wanted predictions in visit order, pos (S,) their positions in the
        concatenated visit order (class ``c`` starts at ``offsets[c]``), offsets (C + 1,).
    """
    key, q_bits, redo = _visit_keys(p_cls, scores, num_classes)
    dtype = key.dtype.type
    rows = wanted.nonzero()[0]  # (S,)
    w_key = key.take(rows)
    order = argsort_stable(w_key, key_bits=key.dtype.itemsize * 8)
    rows, w_key = rows.take(order), w_key.take(order)  # (S,) in visit order
    # (compress, not a boolean index: the latter is several times slower on a random mask)
    other = np.sort(np.compress(~wanted, key))  # (M - S,) keys of the rest, dropped last
    pos = np.searchsorted(other, w_key)  # (S,) other keys below each wanted key
    # class c starts at its first key; dropped predictions (class C) sort after every class
    starts = np.arange(num_classes + 1, dtype=dtype) << dtype(q_bits)
    offsets = np.searchsorted(other, starts) + np.searchsorted(w_key, starts)  # (C + 1,)
    offsets = offsets.astype(np.int64)
    # only a tie touching a wanted key leaves a needed position open
    tie = np.zeros(w_key.size, dtype=bool)
    if other.size:
        tie = other.take(np.minimum(pos, other.size - 1)) == w_key
    tie[1:] |= w_key[1:] == w_key[:-1]
    pos += np.arange(w_key.size)
    redo[(np.compress(tie, w_key) >> dtype(q_bits)).astype(np.intp)] = True
    cls_rows = p_cls.take(rows)  # (S,) ascending
    redo[:num_classes] &= np.bincount(cls_rows, minlength=num_classes) > 0  # else nothing to do
    for c in np.flatnonzero(redo[:num_classes]):
        lo, hi = np.searchsorted(cls_rows, [c, c + 1])  # the class's wanted run in ``rows``
        rows[lo:hi], rank = _official_ranks(np.flatnonzero(p_cls == c), scores, wanted)
        pos[lo:hi] = offsets[c] + rank
    return rows, pos, offsets


def _official_ranks(
    in_cls: np.ndarray, scores: np.ndarray, wanted: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Wanted predictions of one class in the official ``argsort()[::-1]`` order, with ranks.

    Args:
        in_cls: (n,) the class's predictions in input order, as the official code sees them.
        scores, wanted: (M,) all predictions.

    Returns:
        (w,) wanted predictions by rank, (w,) their ranks in the class.
    """
    perm = scores[in_cls].argsort()[::-1]  # the official expression
    rank = np.empty(in_cls.size, dtype=np.int64)
    rank[perm] = np.arange(in_cls.size)
    pick = np.flatnonzero(wanted[in_cls])
    pick = pick[np.argsort(rank[pick])]
    return in_cls[pick], rank[pick]


def _visit_keys(
    p_cls: np.ndarray, scores: np.ndarray, num_classes: int
) -> tuple[np.ndarray, int, np.ndarray]:
    """(class, descending score quantised to the bits left) sort keys of the predictions.

    Quantising is monotone, so a smaller key in a class means a strictly higher score; equal
    keys (a tie, or two close scores) leave the order open and their class must be redone.
    Dropped predictions (class -1) get class ``num_classes``, after all others.

    Returns:
        key (M,) uint32 (uint64 past 2^16 classes), q_bits (the score's bits, below the class),
        redo (C + 1,) bool: classes with a non-finite score (their keys mean nothing).
    """
    cls_bits = max(1, int(num_classes).bit_length())  # class num_classes: dropped, sorted last
    total_bits = 32 if cls_bits <= 16 else 64
    q_bits = total_bits - cls_bits
    lo, hi = (scores.min(), scores.max()) if scores.size else (0.0, 0.0)
    # NaN propagates into min and max, so finite extremes mean every score is finite
    all_finite = bool(np.isfinite(lo) and np.isfinite(hi))
    if not all_finite:
        finite = np.isfinite(scores)
        fin = scores[finite]
        lo, hi = (fin.min(), fin.max()) if fin.size else (0.0, 0.0)
    top = float(2**q_bits - 1)
    with np.errstate(over="ignore"):
        spread = hi - lo
    if not (np.isfinite(spread) and spread > 0):  # one key for all: every class is redone
        q = np.zeros(scores.size)
    else:
        with np.errstate(invalid="ignore", over="ignore"):  # non-finite: redone below anyway
            # (M,) non-increasing in the score; -0.0 and 0.0 give one value, as argsort does
            q = hi - scores  # (M,) the same expression, computed in place
            q *= top / spread
            np.minimum(q, top, out=q)
        if not all_finite:
            q = np.where(finite, q, 0.0)
    dtype = np.uint32 if total_bits == 32 else np.uint64
    all_kept = p_cls.size == 0 or int(p_cls.min()) >= 0
    kept = None if all_kept else p_cls >= 0
    cls_key = p_cls if all_kept else np.where(kept, p_cls, num_classes)
    key = q.astype(dtype)  # (M,) class bits or-ed in place
    cls_part = cls_key.astype(dtype)
    cls_part <<= dtype(q_bits)
    key |= cls_part
    redo = np.zeros(num_classes + 1, dtype=bool)
    if not all_finite:
        redo[p_cls[~finite if all_kept else kept & ~finite]] = True
    return key, q_bits, redo


def class_aps(
    contender: np.ndarray, tp: np.ndarray, counts: np.ndarray, npos: np.ndarray
) -> np.ndarray:
    """All-point interpolated AP of every class at every threshold, from the TP positions only.

    Recall changes exactly at the true positives, and the precision envelope at a true positive
    is the largest precision at this or a later true positive (precision only rises at TPs), so
    the official sum over recall changes becomes a sum over TPs of
    ``(rank / npos - (rank - 1) / npos) * envelope``, with the official float expressions
    (precision = TP count / predictions seen, recall = TP count / npos).

    Args:
        contender: (N,) ascending positions, among the M predictions (classes one after
            another, each in visit order), of those that may be true positives.
        tp: (K, N) bool true positives among them.
        counts: (C,) predictions per class (they sum to M).
        npos: (C,) GT instances per class.

    Returns:
        (K, C) AP; 0 for a class without predictions.
    """
    k, n_cls = tp.shape[0], len(counts)
    offsets = offsets_of(counts)
    # by threshold, then class, then visit order (a row at a time: 2-D nonzero is slower)
    hits = [row.nonzero()[0] for row in tp]  # K x (T_k,) columns of the TPs
    n_idx = np.concatenate(hits) if hits else np.zeros(0, dtype=np.intp)  # (T,)
    t_idx = np.repeat(np.arange(k), [h.size for h in hits])  # (T,)
    # contender is ascending, so its classes come from one search with sorted queries
    c_cls = np.searchsorted(offsets[1:], contender, side="right")  # (N,)
    c_seen = contender - offsets.take(c_cls) + 1  # (N,) predictions seen in its class
    cls = c_cls.take(n_idx)  # (T,)
    group = t_idx * n_cls + cls  # (T,) ascending
    n_grp = np.bincount(group, minlength=k * n_cls)  # (K * C,)
    grp_first = np.cumsum(n_grp) - n_grp
    rank = np.arange(group.size) - grp_first.take(group) + 1  # TPs up to and including it
    precision = rank / c_seen.take(n_idx)  # (T,)
    n_pos = npos.take(cls)  # (T,)
    step = rank / n_pos - (rank - 1) / n_pos  # (T,) recall change
    envelope = group_suffix_max(precision, group, k * n_cls)  # (T,)
    if envelope is None:
        envelope = segment_suffix_max(precision, (grp_first + n_grp)[group])
    ap = np.bincount(group, weights=step * envelope, minlength=k * n_cls)  # (K * C,)
    return ap.reshape(k, n_cls)


def group_suffix_max(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray | None:
    """Running maximum from the right inside groups, in one pass when the bits allow.

    The bit pattern of a positive finite float64, read as an unsigned integer, orders like the
    value. So each value becomes the integer ``(n_groups - 1 - group) << b | (bits - min bits)``:
    read right to left, the group part never decreases, and inside a group the order is the
    values' own. One ``maximum.accumulate`` over the reversed keys is then the suffix maximum
    of every group, and masking the low ``b`` bits gives back the exact float.

    Args:
        values: (T,) positive finite values (precisions), groups stored one after another.
        group: (T,) ascending group index of each value, below ``n_groups``.
        n_groups: number of groups.

    Returns:
        (T,) suffix maxima, or None when the group index and the value bits need more than
        64 bits together (then use :func:`segment_suffix_max`).
    """
    if values.size == 0:
        return values.copy()
    bits = values.view(np.uint64)  # (T,)
    low = bits.min()
    value_bits = int(bits.max() - low).bit_length()
    if value_bits + max(1, int(n_groups - 1).bit_length()) > 64:
        return None
    key = (np.uint64(n_groups - 1) - group.astype(np.uint64)) << np.uint64(value_bits)
    key |= bits - low
    out = np.maximum.accumulate(key[::-1])[::-1]  # (T,) a reversed view of the accumulation
    out &= np.uint64((1 << value_bits) - 1)
    out += low
    return out.view(np.float64)


def segment_suffix_max(values: np.ndarray, segment_end: np.ndarray) -> np.ndarray:
    """Running maximum from the right inside contiguous segments (the precision envelope).

    When the segments are of similar length they are laid reversed, one per row of a padded
    matrix, and one ``maximum.accumulate`` along the rows does it; otherwise log-step doubling:
    after the round with shift s every element holds the maximum of the next 2s elements of its
    own segment. Max is exact either way, so no rounding enters.

    Args:
        values: (T,) values, segments stored one after another.
        segment_end: (T,) index one past the end of each element's segment.

    Returns:
        (T,) suffix maxima.
    """
    index = np.arange(values.size)
    longest = int((segment_end - index).max(initial=0))
    new_seg = run_starts(segment_end)[: values.size]  # (T,)
    n_seg = int(new_seg.sum())
    if n_seg * longest <= 4 * values.size + 4096:  # few, even segments: one padded pass
        grid = np.full((n_seg, longest), -np.inf)  # (S, L), each segment reversed, from col 0
        # flat cell of each value (2-D fancy indexing is several times slower)
        cell = (np.cumsum(new_seg) - 1) * longest + (segment_end - index - 1)
        grid.reshape(-1)[cell] = values
        return np.maximum.accumulate(grid, axis=1).reshape(-1)[cell]
    out = values.copy()
    shift = 1
    while shift < longest:
        inside = index[:-shift] + shift < segment_end[:-shift]
        head = out[:-shift]
        out[:-shift] = np.where(inside, np.maximum(head, out[shift:]), head)
        shift *= 2
    return out
