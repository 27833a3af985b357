"""Vectorised greedy TP/FP assignment, decision-for-decision the official ActivityNet one.

The official ``compute_average_precision_detection`` walks a class's predictions by score and,
for each threshold separately, gives each one the first GT of its video, in the order
``tiou.argsort()[::-1]``, that is not yet taken, provided its tIoU is not below the threshold
(NaN is not below anything, so it matches). A taken GT is skipped and the next one tried.

Two facts make this vectorisable without changing a single decision:

* A prediction can only ever take one of its *candidates* (GT with tIoU not below the lowest
  threshold); a prediction without candidates is a false positive everywhere. Because the visit
  order is by decreasing tIoU (NaN first), the candidates at any threshold are a prefix of the
  candidates at the lowest one.
* Predictions compete only through shared candidates. In the graph linking predictions to their
  candidate GTs, each connected component can be processed on its own, in score order. So the
  loop runs over the *rank inside a component* (usually a handful), handling the k-th prediction
  of every component, at every threshold, in one set of array operations.
* Most components are one GT whose contenders have no other candidate (real detectors emit a
  few near copies per action). There the greedy rule reduces to "at each threshold, the first
  contender in visit order that reaches it takes the GT", one pass for all such GT and all
  thresholds; only components with a multi-candidate contender go through the rounds.

The candidate order is the official one: rows whose candidates have distinct tIoUs are sorted
by value; a row with tied candidates (rare with real scores) is ordered by ``argsort()[::-1]``
on its full tIoU row, exactly as the official code does, so NumPy's tie order is reproduced.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tal_bench.evaluation.arrays import argsort_stable, offsets_of, run_starts
from tal_bench.evaluation.tiou import pairwise_tiou

# Up to this many contenders left to the general rule are matched by a plain loop: with real
# detections only a few dozen share a GT with another candidate, and a loop over them is
# several times cheaper than the vectorised rounds (their fixed cost is ~20 array operations).
LOOP_CONTENDERS = 256


@dataclass
class _Pairs:
    """(prediction, GT) pairs that may overlap, grouped by prediction."""

    owner: np.ndarray  # (P,) row in ``pred`` of each pair
    gt_slot: np.ndarray  # (P,) GT index
    tiou: np.ndarray  # (P,) float64
    pred: np.ndarray  # (H,) predictions with at least one pair
    block_lo: np.ndarray  # (H,) first GT of the prediction's block
    block_n: np.ndarray  # (H,) GT in the prediction's block


def greedy_match(
    pred_block: np.ndarray,
    pred_start_s: np.ndarray,
    pred_end_s: np.ndarray,
    gt_block: np.ndarray,
    gt_start_s: np.ndarray,
    gt_end_s: np.ndarray,
    thresholds: np.ndarray,
    pred_rows: np.ndarray | None = None,
    grid: GtGrid | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """True positives of every prediction at every threshold.

    A *block* is one (class, video) pair; predictions and GT only meet inside their block.

    Args:
        pred_block: (M,) int64 block of each prediction, -1 for none; predictions must be in the
            official visit order (per class, by ``argsort()[::-1]`` of the scores).
        pred_start_s: (M',) starts (in ``pred_rows`` order if given).
        pred_end_s: (M',) ends.
        gt_block: (G,) int64 block of each GT, sorted ascending; GT of one block in file order.
        gt_start_s: (G,) starts.
        gt_end_s: (G,) ends.
        thresholds: (K,) tIoU thresholds.
        pred_rows: (M,) row in ``pred_start_s`` / ``pred_end_s`` of each prediction, so that
            only the few predictions whose block has GT are ever gathered.
        grid: ``GtGrid(gt_block, gt_start_s, gt_end_s - gt_start_s)`` if already built (it
            depends on the GT only, so a prepared ground truth keeps it).

    Returns:
        contender (N,) ascending indices of the predictions that have a candidate GT, and
        (K, N) bool: True where such a prediction is a true positive. Every other prediction
        is a false positive at every threshold (returned sparse, as most are).
    """
    thresholds = np.asarray(thresholds, dtype=np.float64)
    none = np.zeros(0, np.int64), np.zeros((len(thresholds), 0), dtype=bool)
    if grid is None:
        grid = GtGrid(gt_block, gt_start_s, gt_end_s - gt_start_s)
    lo, n_gt = grid.block_ranges(pred_block)  # (M,), (M,)
    some = n_gt.nonzero()[0]  # (S,) predictions whose block has GT: usually a small part
    if some.size == 0:
        return none
    rows = some if pred_rows is None else pred_rows.take(some)
    ps, pe = pred_start_s.take(rows), pred_end_s.take(rows)  # (S,) indices into `some` below
    pairs = _block_pairs(lo.take(some), n_gt.take(some), ps, pe, grid, gt_start_s, gt_end_s)
    if pairs is None:
        return none
    num_gt = len(gt_block)
    is_cand = ~(pairs.tiou < thresholds.min())  # (P,) NaN counts as a candidate
    cp = is_cand.nonzero()[0]  # candidate pairs, grouped by prediction in visit order
    if cp.size == 0:
        return none
    # boolean masks select by ``compress``: indexing with them is ~4x slower on random masks
    c_owner, c_slot = pairs.owner.take(cp), pairs.gt_slot.take(cp)  # (Q,)
    ncand = np.bincount(c_owner, minlength=pairs.pred.size)  # (H,)
    has_cand = ncand > 0
    column = np.cumsum(has_cand) - 1  # (H,) column of each prediction in the result
    contender = some.take(pairs.pred.compress(has_cand))  # (N,)
    tp = np.zeros((len(thresholds), contender.size), dtype=bool)  # (K, N)
    single = ncand.take(c_owner) == 1  # (Q,)
    # A GT whose contenders all have it as their only candidate forms a component of its own:
    # at each threshold its first contender in visit order that reaches the threshold takes it.
    tangled = np.zeros(num_gt + 1, dtype=bool)
    tangled[c_slot.compress(~single)] = True
    simple = single & ~tangled.take(c_slot)
    if simple.any():
        col = column.take(c_owner.compress(simple))
        slot, tiou = c_slot.compress(simple), pairs.tiou.take(cp.compress(simple))
        _first_reaching(tp, col, slot, tiou, thresholds)
    if simple.all():
        return contender, tp
    general = np.zeros(pairs.pred.size, dtype=bool)  # (H,) predictions left to the rounds
    general[c_owner.compress(~simple)] = True
    blocks = (ps, pe, gt_start_s, gt_end_s)
    cand_slot, cand_tiou, has = _candidates(pairs, is_cand, general, num_gt, blocks)
    if has.size <= LOOP_CONTENDERS:
        tp[:, column[has]] = _assign_in_order(cand_slot, cand_tiou, thresholds)
    else:
        rank = _rank_in_component(cand_slot, num_gt)
        tp[:, column[has]] = _assign(cand_slot, cand_tiou, rank, thresholds, num_gt)
    return contender, tp


def _first_reaching(
    tp: np.ndarray,
    pred: np.ndarray,
    slot: np.ndarray,
    tiou: np.ndarray,
    thresholds: np.ndarray,
) -> None:
    """Mark, per GT and threshold, the first prediction (visit order) not below the threshold.

    A contender reaches the thresholds not above its tIoU (all of them for NaN, which is below
    nothing): a *level*, the number of sorted thresholds reached. It is the first to reach a
    threshold exactly when no earlier contender of its GT reached it, so it takes the sorted
    thresholds from the best earlier level of its GT up to its own. The best earlier level is
    an exclusive running maximum inside each GT: one ``maximum.accumulate`` over
    ``(GT rank + 1) * (K + 1) + level``, as GT ranks ascend and a GT never sees a lower one's
    levels. The two levels, put back in the columns of ``tp``, give its rows by broadcasting.

    Args:
        tp: (K, N) bool, or-ed in place.
        pred: (S,) columns of the predictions, ascending (visit order), each with this single
            candidate.
        slot: (S,) their GT.
        tiou: (S,) their tIoU with it.
        thresholds: (K,).
    """
    by_gt = argsort_stable(slot)  # visit order kept inside each GT
    pred, slot, tiou = pred.take(by_gt), slot.take(by_gt), tiou.take(by_gt)
    k = thresholds.size
    # (S,) thresholds reached; K comparisons beat a binary search per value (NaN: all K)
    level = np.count_nonzero(~(tiou < thresholds[:, None]), axis=0)
    new_gt = np.empty(slot.size, dtype=bool)
    new_gt[0] = True
    np.not_equal(slot[1:], slot[:-1], out=new_gt[1:])
    base = np.cumsum(new_gt)  # (S,) GT rank + 1, times K + 1 below
    base *= k + 1
    best = base + level
    np.maximum.accumulate(best, out=best)  # (S,) best level so far in the GT, offset
    before = np.empty_like(best)
    before[0] = -1
    before[1:] = best[:-1]
    before -= base  # (S,) best earlier level; < 0 for a GT's first contender
    # back to the columns of ``tp``; other columns keep level 0 and take nothing here
    col_level = np.zeros(tp.shape[1], dtype=np.int64)
    col_before = np.zeros(tp.shape[1], dtype=np.int64)
    col_level[pred], col_before[pred] = level, before
    rank = np.empty(k, dtype=np.int64)  # (K,) sorted rank of each threshold, in tp's row order
    rank[np.argsort(thresholds)] = np.arange(k)
    rank = rank[:, None]
    tp |= (col_level > rank) & (col_before <= rank)  # (K, N): reaches, and nobody earlier did


def _block_pairs(
    lo: np.ndarray,
    n_gt: np.ndarray,
    ps: np.ndarray,
    pe: np.ndarray,
    grid: GtGrid,
    gs: np.ndarray,
    ge: np.ndarray,
) -> _Pairs | None:
    """Pairs that can reach a positive (or NaN) tIoU; the rest have tIoU 0 and never match.

    With finite positive lengths, tIoU > 0 needs an overlap, so only GT starting in
    [pred start - longest GT of the block, pred end] are paired (found through a grid, see
    ``GtGrid``). A zero-length, reversed or non-finite segment on either side can give
    0/0 = NaN anywhere, so such predictions (and every prediction of a block holding such GT,
    or whose grid would be too fine for its time values) are paired with all GT of their block.

    Args:
        lo: (S,) first GT of each prediction's block (every block here has GT).
        n_gt: (S,) GT in the block.
        ps, pe: (S,) prediction starts and ends.
        grid: the GT bucketed by block and start.
        gs, ge: (G,) GT starts and ends.
    """
    p_len = pe - ps
    rank = grid.rank.take(lo)  # (S,) block rank of each prediction
    odd = ~(np.isfinite(p_len) & (p_len > 0)) | grid.odd.take(rank)  # (S,)
    if not odd.any():  # the usual case: no split, no merge
        pair_pred, pair_slot = grid.pairs(np.arange(lo.size), rank, ps, pe)
    else:
        pair_pred, pair_slot = _split_pairs(grid, odd, lo, n_gt, rank, ps, pe)
    if pair_pred.size == 0:
        return None
    new = run_starts(pair_pred)  # (P,) first pair of a prediction
    pred, owner = np.compress(new, pair_pred), np.cumsum(new) - 1
    tiou = pairwise_tiou(
        ps.take(pair_pred), pe.take(pair_pred), gs.take(pair_slot), ge.take(pair_slot)
    )
    return _Pairs(owner, pair_slot, tiou, pred, lo.take(pred), n_gt.take(pred))


def _split_pairs(
    grid: GtGrid,
    odd: np.ndarray,
    lo: np.ndarray,
    n_gt: np.ndarray,
    rank: np.ndarray,
    ps: np.ndarray,
    pe: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs when some predictions (``odd``, (S,) bool) are paired with all GT of their block.

    Returns:
        (P,) prediction and (P,) GT slot of each pair, sorted by prediction.
    """
    full, near = np.flatnonzero(odd), np.flatnonzero(~odd)
    pair_pred, pair_slot = grid.pairs(near, rank[near], ps[near], pe[near])
    counts_full = n_gt[full]
    full_slot = np.arange(int(counts_full.sum())) + np.repeat(
        lo[full] - (np.cumsum(counts_full) - counts_full), counts_full
    )
    # two runs, each sorted by prediction: merge them
    pair_pred = np.r_[pair_pred, np.repeat(full, counts_full)]
    pair_slot = np.r_[pair_slot, full_slot]
    order = np.argsort(pair_pred, kind="stable")
    return pair_pred[order], pair_slot[order]


class GtGrid:
    """GT of each block bucketed by start into cells an eighth of the block's longest GT wide.

    A GT overlapping a prediction starts in [pred start - longest, pred end], which lies in the
    cells from that of (pred start - longest) to that of pred end; one cell of slack below
    absorbs rounding (cells are far wider than an ulp of the times, else the block is ``odd``).
    Cells are also at least (start range / GT count) / 8 wide, so a block has at most about 8
    cells per GT. Looking cells up replaces two binary searches per prediction; the window is
    at most a quarter of a longest GT too wide, which only adds pairs of tIoU 0 (an eighth
    gave 13 % fewer pairs than a quarter on the THUMOS bench).
    """

    def __init__(self, gt_block: np.ndarray, gs: np.ndarray, g_len: np.ndarray) -> None:
        block_first = run_starts(gt_block)
        heads = np.flatnonzero(block_first)  # (B,) blocks are contiguous: gt_block is sorted
        self.rank = np.cumsum(block_first) - 1  # (G,) block rank
        ends = np.empty_like(heads)  # (B,) one past each block's last GT
        ends[:-1] = heads[1:]
        ends[-1:] = gt_block.size
        good = np.isfinite(g_len) & (g_len > 0)  # (G,)
        bad_count = offsets_of(~good)
        with np.errstate(invalid="ignore", over="ignore"):
            longest = np.maximum.reduceat(g_len, heads)  # (B,) NaN if any GT length is NaN
            self.base = np.minimum.reduceat(gs, heads)  # (B,) earliest start (NaN: odd below)
            latest = np.maximum.reduceat(gs, heads)  # (B,)
            self.cell = np.maximum(longest, (latest - self.base) / (ends - heads)) / 8  # (B,)
            scale = np.maximum(np.abs(self.base), np.abs(latest))
            self.odd = (bad_count[ends] > bad_count[heads]) | ~(self.cell > 1e-9 * scale)
            self.cell[self.odd] = 1.0
            self.base[self.odd] = 0.0
            g_cell = np.floor((gs - self.base.take(self.rank)) / self.cell.take(self.rank))
        g_cell = np.where(self.odd.take(self.rank), 0, g_cell).astype(np.int64)  # (G,) >= 0
        self.n_cells = np.maximum.reduceat(g_cell, heads) + 1  # (B,)
        self.cell_off = offsets_of(self.n_cells)  # (B + 1,)
        cell_id = self.cell_off.take(self.rank) + g_cell  # (G,) global cell, blocks in order
        count = np.bincount(cell_id, minlength=self.cell_off[-1])
        self.prefix = offsets_of(count)  # first GT of each global cell in ``by_cell``
        # slots by global cell (only cells matter, not the order of starts inside one)
        self.by_cell = argsort_stable(cell_id)  # (G,)
        self.longest = longest
        # per block id: first GT and count, with a last entry of count 0 (block -1 and any
        # block past the GT read it); only when block ids are dense enough for a table
        self.gt_block = gt_block
        self.block_first = self.block_count = None
        n_blocks = int(gt_block[-1]) + 1 if gt_block.size else 0
        if n_blocks <= 8 * gt_block.size + 1024:
            self.block_count = np.bincount(gt_block, minlength=n_blocks + 1)  # (B + 1,)
            self.block_first = offsets_of(self.block_count)[:-1]
            self.block_has_gt = self.block_count > 0

    def block_ranges(self, pred_block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First GT index and GT count of each prediction's block (0 GT for block -1)."""
        if self.block_count is not None:
            idx = self._table_index(pred_block)
            return self.block_first.take(idx), self.block_count.take(idx)
        lo = np.searchsorted(self.gt_block, pred_block, side="left")
        n_gt = np.searchsorted(self.gt_block, pred_block, side="right") - lo
        n_gt[pred_block < 0] = 0
        return lo, n_gt

    def has_gt(self, pred_block: np.ndarray) -> np.ndarray:
        """(M,) bool: the prediction's block (-1: none) holds GT."""
        if self.block_count is None:  # block ids too sparse for a table
            return np.isin(pred_block, self.gt_block)
        return self.block_has_gt.take(self._table_index(pred_block))

    def _table_index(self, pred_block: np.ndarray) -> np.ndarray:
        """Row of the block tables: -1 and blocks past the GT read the last entry (count 0)."""
        return np.minimum(pred_block, self.block_count.size - 1)

    def pairs(
        self, pred: np.ndarray, rank: np.ndarray, ps: np.ndarray, pe: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(prediction, GT slot) pairs of finite, positive-length predictions of regular blocks.

        Args:
            pred: (S,) prediction indices, ascending.
            rank: (S,) block rank of each.
            ps, pe: (S,) their starts and ends.
        """
        base, cell, top = self.base.take(rank), self.cell.take(rank), self.n_cells.take(rank) - 1.0
        with np.errstate(over="ignore"):
            c_lo = np.floor((ps - self.longest.take(rank) - base) / cell) - 1.0
            c_hi = np.floor((pe - base) / cell)
        c_lo = c_lo.clip(0.0, top).astype(np.int64)  # far values clip in float, then convert
        c_hi = c_hi.clip(-1.0, top).astype(np.int64)  # < c_lo: an empty window
        off = self.cell_off.take(rank)
        a = self.prefix.take(off + c_lo)
        b = np.where(c_hi >= c_lo, self.prefix.take(off + np.maximum(c_hi, c_lo) + 1), a)
        count = b - a
        pos = np.arange(int(count.sum())) + np.repeat(a - (np.cumsum(count) - count), count)
        return np.repeat(pred, count), self.by_cell.take(pos)


def _candidates(
    pairs: _Pairs,
    is_cand: np.ndarray,
    keep: np.ndarray,
    num_gt: int,
    blocks: tuple[np.ndarray, ...],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate GTs of the kept contenders in official visit order, padded with slot ``num_gt``.

    Args:
        pairs: all pairs.
        is_cand: (P,) pairs not below the lowest threshold (or NaN).
        keep: (H,) predictions to return (each with at least one candidate).
        num_gt: GT count (the padding slot).
        blocks: (pred starts, pred ends, GT starts, GT ends), for re-ordering tied rows.

    Returns:
        cand_slot (N, c) int64, cand_tiou (N, c) float64 (-inf padding), has (N,) indices into
        ``pairs.pred``.
    """
    is_cand = is_cand & keep[pairs.owner]
    ncand = np.bincount(pairs.owner[is_cand], minlength=pairs.pred.size)  # (H,)
    has = np.flatnonzero(ncand)
    cp = np.flatnonzero(is_cand)  # candidate pairs, grouped by owner
    value = pairs.tiou[cp]
    order = np.lexsort((np.where(np.isnan(value), -np.inf, -value), pairs.owner[cp]))
    cp, value = cp[order], value[order]
    owner = pairs.owner[cp]
    width = int(ncand.max())
    row = np.searchsorted(has, owner)  # (Q,) contender row of each candidate
    col = np.arange(cp.size) - np.repeat(np.cumsum(ncand[has]) - ncand[has], ncand[has])
    cand_slot = np.full((has.size, width), num_gt, dtype=np.int64)
    cand_tiou = np.full((has.size, width), -np.inf)
    cand_slot[row, col] = pairs.gt_slot[cp]
    cand_tiou[row, col] = value
    _fix_tied_rows(pairs, has, ncand, cand_slot, cand_tiou, blocks)
    return cand_slot, cand_tiou, has


def _fix_tied_rows(
    pairs: _Pairs,
    has: np.ndarray,
    ncand: np.ndarray,
    cand_slot: np.ndarray,
    cand_tiou: np.ndarray,
    blocks: tuple[np.ndarray, ...],
) -> None:
    """Re-order rows with equal candidate tIoUs exactly as ``tiou_row.argsort()[::-1]`` does.

    The official row holds the prediction's tIoU with every GT of its block in file order.
    """
    if cand_tiou.shape[1] < 2:
        return
    ps, pe, gs, ge = blocks
    left, right = cand_tiou[:, :-1], cand_tiou[:, 1:]
    tied = ((left == right) & (right > -np.inf)) | (np.isnan(left) & np.isnan(right))
    for r in np.flatnonzero(tied.any(axis=1)):
        h = has[r]
        p, lo, n = pairs.pred[h], pairs.block_lo[h], ncand[h]
        slots = np.arange(lo, lo + pairs.block_n[h])
        row = pairwise_tiou(ps[p], pe[p], gs[slots], ge[slots])
        visit = row.argsort()[::-1][:n]  # the official visit order, first n = the candidates
        cand_slot[r, :n] = slots[visit]
        cand_tiou[r, :n] = row[visit]


def _rank_in_component(cand_slot: np.ndarray, num_gt: int) -> np.ndarray:
    """Rank of each contender inside its connected component (contenders linked via shared GT).

    Components by min-label propagation: each contender and each GT repeatedly takes the
    smallest label among its neighbours; a handful of rounds suffice for these small graphs.
    """
    n = len(cand_slot)
    label = np.arange(n)  # (N,) contenders are already in visit order
    real = cand_slot < num_gt  # (N, c)
    rows = np.broadcast_to(np.arange(n)[:, None], cand_slot.shape)[real]
    cols = cand_slot[real]
    while True:
        gt_label = np.full(num_gt, n)
        np.minimum.at(gt_label, cols, label[rows])
        new = label.copy()
        np.minimum.at(new, rows, gt_label[cols])
        if np.array_equal(new, label):
            break
        label = new
    order = np.argsort(label, kind="stable")
    sorted_comp = label[order]
    start = run_starts(sorted_comp)
    first_pos = np.maximum.accumulate(np.where(start, np.arange(n), 0))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - first_pos
    return rank


def _assign_in_order(
    cand_slot: np.ndarray, cand_tiou: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """The official greedy rule as a loop, for a few contenders in visit order.

    Each contender, at each threshold, takes its first candidate (official order) that is not
    taken yet, unless a candidate below the threshold comes first (padding is -inf, so it stops
    the walk; NaN is not below anything, so it matches). Contenders of different components
    never share a GT, so one pass in visit order is each component's own greedy order.

    Returns:
        (K, N) bool true positives of the contenders.
    """
    thr = thresholds.tolist()
    tp = np.zeros((len(thr), len(cand_slot)), dtype=bool)  # (K, N)
    taken: list[set[int]] = [set() for _ in thr]
    for j, (slots, tious) in enumerate(zip(cand_slot.tolist(), cand_tiou.tolist(), strict=True)):
        for k, t in enumerate(thr):
            for slot, value in zip(slots, tious, strict=True):
                if value < t:
                    break
                if slot not in taken[k]:
                    taken[k].add(slot)
                    tp[k, j] = True
                    break
    return tp


def _assign(
    cand_slot: np.ndarray,
    cand_tiou: np.ndarray,
    rank: np.ndarray,
    thresholds: np.ndarray,
    num_gt: int,
) -> np.ndarray:
    """Greedy assignment, one component rank at a time, all thresholds at once.

    Returns:
        (K, N) bool true positives of the contenders.
    """
    k_thr = len(thresholds)
    tp = np.zeros((k_thr, len(rank)), dtype=bool)  # (K, N)
    locked = np.zeros((k_thr, num_gt + 1), dtype=bool)  # (K, G + 1)
    locked[:, num_gt] = True  # the padding slot is never available
    by_rank = np.argsort(rank, kind="stable")
    bounds = offsets_of(np.bincount(rank))
    thr = thresholds[:, None, None]  # (K, 1, 1)
    for k in range(len(bounds) - 1):
        sel = by_rank[bounds[k] : bounds[k + 1]]  # (P,) one contender per component
        slots = cand_slot[sel]  # (P, c)
        avail = ~(cand_tiou[sel][None] < thr) & ~locked[:, slots]  # (K, P, c)
        hit = avail.any(axis=2)  # (K, P)
        first = avail.argmax(axis=2)  # (K, P)
        t_idx, p_idx = np.nonzero(hit)
        locked[t_idx, slots[p_idx, first[t_idx, p_idx]]] = True
        tp[:, sel] = hit
    return tp
