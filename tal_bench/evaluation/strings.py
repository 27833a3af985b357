"""Exact lookup of tens of thousands of strings (video ids, class names) among a few keys.

Sorting or hashing strings one by one in Python is slow. Instead every fixed-width string is
read as a few 64-bit words of its bytes (one byte per character when all are Latin-1); a hash
of one word in which the keys all differ (else of all words) picks a slot in a table where no
two keys collide, and each value is compared word by word with the key in its slot, so the
answer is exact whatever the hash does. The key side (words, hash, slot table) is built once
per value layout and kept, so a ``StringKeys`` serves many lookups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class _Slots:
    """Hash of a key's words -> key row, without collisions between keys."""

    mult: np.ndarray | None  # (W,) multipliers mixing the words; None: one word, its own hash
    seed: np.uint64  # multiplier picking the slot from the hash's top bits
    shift: np.uint64
    table: np.ndarray | None  # (2^bits,) key row of each slot; None: search ``sorted_hash``
    sorted_hash: np.ndarray | None = None  # (K,) ascending key hashes (fallback)
    order: np.ndarray | None = None  # (K,) key row of each sorted hash

    def lookup(self, v_cols: list[np.ndarray]) -> np.ndarray:
        """(M,) intp key row whose slot each value falls in, to be checked by the caller."""
        v_hash = v_cols[0] if self.mult is None else _mix(v_cols, self.mult)
        if self.table is None:
            pos = np.searchsorted(self.sorted_hash, v_hash).clip(0, self.sorted_hash.size - 1)
            return self.order[pos]
        slot = v_hash * self.seed  # (M,) new array, shifted in place
        slot >>= self.shift
        # below 2^bits: the same values read as int64, no converting copy
        return self.table.take(slot.view(np.int64))


@dataclass
class _KeyTable:
    """The keys that can equal a value of one layout (width, narrow), ready to compare."""

    rows: np.ndarray  # (F,) position in the key list of each fitting key
    words: list[np.ndarray]  # W x (F,) contiguous uint64 words of the fitting keys
    cols: list[int]  # the words hashed
    slots: _Slots | None  # None: two keys hash alike, compare whole strings
    same_word: list[np.uint64 | None]  # (W,) the word where every fitting key has the same one
    all_keys: bool = False  # every key fits: ``rows`` is 0..K-1 and needs no gather


class StringKeys:
    """Distinct strings prepared once; ``index(values)`` finds each value's position among them."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = [str(k) for k in keys]
        self._tables: dict[tuple[int, bool], _KeyTable | None] = {}

    def index(self, values: np.ndarray) -> np.ndarray:
        """Position of each value in ``keys`` (-1 if absent).

        Args:
            values: (M,) strings (any array-like; ``<U`` arrays are fastest).

        Returns:
            (M,) int64 indices.
        """
        arr = np.asarray(values)
        if arr.dtype.kind != "U":
            arr = arr.astype(str)
        arr = arr.reshape(-1)
        width = arr.dtype.itemsize // 4
        if arr.size == 0 or width == 0 or not self.keys:
            out = np.full(arr.size, -1, dtype=np.int64)
            if width == 0 and "" in self.keys:  # only empty strings
                out[:] = self.keys.index("")
            return out
        narrow = int(arr.view(np.uint32).max()) < 256  # Latin-1: one byte per character
        layout = (width, narrow)
        if layout not in self._tables:
            self._tables[layout] = self._key_table(arr.dtype, narrow)
        table = self._tables[layout]
        if table is None:  # no key fits this width
            return np.full(arr.size, -1, dtype=np.int64)
        if table.slots is None:  # two keys with one 64-bit hash: compare whole strings
            lookup = {self.keys[i]: i for i in table.rows.tolist()}
            return np.fromiter((lookup.get(v, -1) for v in arr.tolist()), np.int64, arr.size)
        # contiguous copies: arithmetic on the unaligned strided views is 3-8x slower
        v_words = [np.ascontiguousarray(w) for w in _string_words(arr, narrow)]  # W x (M,)
        cand = table.slots.lookup([v_words[j] for j in table.cols])  # (M,) intp
        same = np.ones(arr.size, dtype=bool)
        for vw, kw, const in zip(v_words, table.words, table.same_word, strict=True):
            # a word all keys share needs no gather
            same &= (vw == const) if const is not None else (vw == kw.take(cand))
        out = cand if table.all_keys else table.rows.take(cand)  # a fresh array either way
        np.copyto(out, -1, where=~same)  # cheaper than np.where's three-operand select
        return out.astype(np.int64, copy=False)

    def _key_table(self, dtype: np.dtype, narrow: bool) -> _KeyTable | None:
        width = dtype.itemsize // 4
        key_all = np.asarray(self.keys, dtype=str)
        n_keys = len(self.keys)
        # the per-key checks run only when the array's width or code points say they matter
        ok = np.ones(n_keys, dtype=bool)
        if key_all.itemsize > dtype.itemsize:
            ok &= np.strings.str_len(key_all) <= width  # a longer key equals no value
        code_points = key_all.view(np.uint32).reshape(n_keys, -1)
        if narrow and code_points.size and int(code_points.max()) >= 256:
            ok &= code_points.max(axis=1, initial=0) < 256
        rows = np.flatnonzero(ok)
        if rows.size == 0:
            return None
        words = [
            np.ascontiguousarray(w) for w in _string_words(key_all[rows].astype(dtype), narrow)
        ]
        # Hash only a word that already tells the keys apart, if there is one (ids tend to
        # differ at their end, so the last words are tried first).
        cols = list(range(len(words)))
        for j in cols[::-1]:
            if _distinct(words[j]):
                cols = [j]
                break
        same_word = [w[0] if bool((w == w[0]).all()) else None for w in words]
        slots = _build_slots([words[j] for j in cols])
        return _KeyTable(rows, words, cols, slots, same_word, all_keys=rows.size == n_keys)


def index_strings(values: np.ndarray, keys: list[str]) -> np.ndarray:
    """Position of each value in ``keys`` (-1 if absent); see :class:`StringKeys`."""
    return StringKeys(keys).index(values)


def _string_words(arr: np.ndarray, narrow: bool) -> list[np.ndarray]:
    """The bytes of each string of a 1-D ``<U`` array as (M,) uint64 words (they may overlap).

    ``narrow``: every code point is below 256, so one byte per character is kept. Words are
    read in place through unaligned strided views; the last one ends at the string's end.
    """
    data = arr.view(np.uint32).reshape(arr.size, -1)  # (M, W) code points
    if narrow:
        data = data.astype(np.uint8)
    data = data.view(np.uint8).reshape(arr.size, -1)  # (M, B) bytes
    n_bytes = data.shape[1]
    if n_bytes < 8:
        padded = np.zeros((arr.size, 8), dtype=np.uint8)
        padded[:, :n_bytes] = data
        data, n_bytes = padded, 8
    data = np.ascontiguousarray(data)
    offsets = list(range(0, n_bytes - 7, 8))
    if offsets[-1] != n_bytes - 8:
        offsets.append(n_bytes - 8)
    return [
        np.ndarray((arr.size,), dtype=np.uint64, buffer=data, offset=o, strides=(n_bytes,))
        for o in offsets
    ]


def _build_slots(k_cols: list[np.ndarray]) -> _Slots | None:
    """A slot table for keys distinct on ``k_cols`` as a whole.

    Multipliers are tried until no two keys share a slot (about K^2 slots make that likely),
    else the sorted key hashes are searched. None if two keys have one 64-bit hash.
    """
    n_keys = k_cols[0].size
    bits = min(24, max(8, 2 * int(n_keys).bit_length()))
    mult = None
    if len(k_cols) == 1:  # the keys differ in this word: it is its own one-to-one hash
        k_hash = k_cols[0]
    else:
        mult = _odd_constants(len(k_cols), offset=8)
        k_hash = _mix(k_cols, mult)
        if not _distinct(k_hash):
            return None
    shift = np.uint64(64 - bits)
    for seed in _odd_constants(8):
        k_slot = ((k_hash * seed) >> shift).astype(np.int64)
        if _distinct(k_slot):
            # a small table stays in cache for the random reads
            table = np.zeros(2**bits, dtype=np.intp)
            table[k_slot] = np.arange(n_keys)
            return _Slots(mult, seed, shift, table)
    order = np.argsort(k_hash)
    return _Slots(mult, np.uint64(1), shift, None, k_hash[order], order)


def _odd_constants(n: int, offset: int = 0) -> np.ndarray:
    """(n,) fixed odd 64-bit multipliers (odd multiples of the golden-ratio constant).

    Any odd multipliers do: every candidate slot is checked against the key it names.
    """
    odd = np.arange(2 * offset + 1, 2 * (offset + n), 2, dtype=np.uint64)  # (n,)
    return odd * np.uint64(0x9E3779B97F4A7C15) | np.uint64(1)


def _distinct(values: np.ndarray) -> bool:
    """No two of the (few) values are equal (cheaper than ``np.unique`` on small arrays)."""
    ordered = np.sort(values)
    return bool((ordered[1:] != ordered[:-1]).all())


def _mix(words: list[np.ndarray], mult: np.ndarray) -> np.ndarray:
    """(M,) uint64 hash of the words (wrapping arithmetic)."""
    out = words[0] * mult[0]
    for w, m in zip(words[1:], mult[1:], strict=True):
        out += w * m
    return out ^ (out >> np.uint64(31))
