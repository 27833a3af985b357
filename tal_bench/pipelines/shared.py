"""What every cell of a grid computes the same way, computed once per grid.

Each cell trains and runs its own model, but every cell that scores the same test subset with
the same item geometry cuts the same test items out of the same feature files, and every cell
whose video-level classifier is the internal one pools the same videos' features. ``EvalInputs``
is that work: built by the first cell that needs it and kept in the run directory
(``<run>/shared/items-<key>.pt`` and ``pooled-<key>.pt``, written atomically), so later cells
-- other worker processes, a resumed grid, Slurm jobs on a shared file system -- load it
instead. A cell that cannot read or
write the file (a Ray worker on another machine) builds its own copy, which is the same.

Test items are kept only while they fit in ``MAX_ITEM_BYTES`` (the embedded dataset's 1,485
windows: 24 MB); real THUMOS-14 I3D windows would take gigabytes in every worker, so there
each cell cuts its items lazily as before and only the pooled features are shared.

Each file's key names exactly what its content depends on, so that cells of different models
(a grid over ETAD's windows and ActionFormer's whole videos) share only what is identical: the
test items depend on the dataset, root, test subset, package version and the item geometry the
mode reads (window: length, test stride, minimum inside share; resize: length; full: maximum
length; all: downsampling); the pooled features on the dataset, root, both subsets and the
version, not on the mode, so every model of the grid reads one file. The loaded
tensors are bit-for-bit those a cell would build, so rows do not depend on where a cell ran.
The prepared ground truth (``prepare_ground_truth``, ~10 ms) is not worth a file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

import tal_bench
from tal_bench.config import RunConfig, config_hash
from tal_bench.data import build_items
from tal_bench.models.video_classifier import pool_video
from tal_bench.types import VideoItem

if TYPE_CHECKING:
    from tal_bench.data import TalDataset

MAX_ITEM_BYTES = 256 * 2**20  # test items larger than this are not kept (see the docstring)
# What build_items reads of the data config for test items, per mode (tal_bench.data.items).
GEOMETRY = {
    "window": ("window", "test_window_stride", "window_stride", "window_min_inside"),
    "resize": ("resize_len",),
    "full": ("max_len",),
}


@dataclass
class EvalInputs:
    """The test items and pooled features every cell of a grid uses."""

    items: list[VideoItem] | None  # build_items(test subset, train=False); None: too large
    video_ids: list[str]  # the test subset's videos (ds.video_ids order)
    pooled: dict[str, np.ndarray]  # video id -> (3C,) ``pool_video`` of train and test videos


def _source(cfg: RunConfig) -> dict:
    data = cfg.data
    return dict(dataset=data.dataset, root=data.root, version=tal_bench.__version__)


def items_key(cfg: RunConfig) -> str:
    """What the test items depend on, hashed (``cfg`` resolved: no "auto" left)."""
    data = cfg.data
    geometry = {name: getattr(data, name) for name in GEOMETRY.get(data.mode, ())}
    parts = _source(cfg) | geometry | dict(mode=data.mode, downsample=data.downsample)
    return config_hash(parts | dict(test=data.test_subset), length=16)


def pooled_key(cfg: RunConfig) -> str:
    """What the pooled features depend on, hashed: the videos, not how items are cut."""
    data = cfg.data
    parts = _source(cfg) | dict(train=data.train_subset, test=data.test_subset)
    return config_hash(parts, length=16)


def build_eval_inputs(ds: TalDataset, cfg: RunConfig, train_subset: str, test_subset: str):
    """Build ``EvalInputs`` from the dataset (what a cell does when no shared copy exists)."""
    test_ids = ds.video_ids(test_subset)
    return EvalInputs(
        _small_items(ds, cfg, test_subset, test_ids),
        test_ids,
        _pooled(ds, train_subset, test_ids),
    )


def _pooled(ds: TalDataset, train_subset: str, test_ids: list[str]) -> dict[str, np.ndarray]:
    videos = dict.fromkeys([*ds.video_ids(train_subset), *test_ids])  # ordered, no repeats
    return {v: pool_video(ds.load_features(v)) for v in videos}


def _small_items(
    ds: TalDataset, cfg: RunConfig, subset: str, video_ids: list[str]
) -> list[VideoItem] | None:
    """Every item of ``video_ids``, or None as soon as their features pass MAX_ITEM_BYTES.

    Items of frames datasets (snippet clips for end-to-end training) are never kept: they are
    large, and the stored columns hold features only."""
    if getattr(ds, "provides", "features") != "features":
        return None
    lazy = build_items(ds, cfg.data, subset, video_ids, train=False)
    items, size = [], 0
    for i in range(len(lazy)):
        items.append(lazy[i])
        size += items[-1]["feats"].numel() * items[-1]["feats"].element_size()
        if size > MAX_ITEM_BYTES:
            return None
    return items


def shared_eval_inputs(
    ds: TalDataset, cfg: RunConfig, train_subset: str, test_subset: str, shared_dir: str | Path
) -> EvalInputs:
    """``EvalInputs`` from ``shared_dir`` where an earlier cell left its parts, else built and
    left there (the items and the pooled features each under their own key).

    Args:
        ds: the opened dataset of ``cfg``.
        cfg: the cell's resolved config.
        train_subset, test_subset: resolved subset names.
        shared_dir: the grid's shared directory (created if missing).
    """
    shared = Path(shared_dir)
    items_path = shared / f"items-{items_key(cfg)}.pt"
    pooled_path = shared / f"pooled-{pooled_key(cfg)}.pt"
    test = _shared(items_path, _read_items, _write_items, lambda: _test_part(ds, cfg, test_subset))
    pooled = _shared(pooled_path, _read_pooled, _write_pooled,
                     lambda: _pooled(ds, train_subset, test[1]))  # fmt: skip
    return EvalInputs(test[0], test[1], pooled)


def _test_part(ds: TalDataset, cfg: RunConfig, test_subset: str):
    test_ids = ds.video_ids(test_subset)
    return _small_items(ds, cfg, test_subset, test_ids), test_ids


def _shared(path: Path, read, write, build):
    """The part stored at ``path``, else built and stored (unwritable: this cell keeps it)."""
    with contextlib.suppress(OSError, RuntimeError, KeyError, EOFError):
        return read(path)
    data = build()
    with contextlib.suppress(OSError):
        _save(path, write(data))
    return data


ITEM_SCALARS = ("video_id", "duration_s", "t0_s", "step_s", "window_start")


def _write_items(part) -> dict:
    items, video_ids = part
    return {"items": None if items is None else _item_columns(items), "video_ids": video_ids}


def _write_pooled(pooled: dict[str, np.ndarray]) -> dict:
    ids = list(pooled)
    return {"pooled_ids": ids, "pooled": torch.from_numpy(np.stack([pooled[v] for v in ids]))}


def _save(path: Path, blob: dict) -> None:
    """Atomically: a crash leaves the old file or none, two writers leave one whole file.

    Each tensor field of the items is stored concatenated (a few large tensors load far faster
    than thousands of small ones under ``weights_only``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # readable like the run's other files (mkstemp makes it 0600)
        with os.fdopen(fd, "wb") as f:
            torch.save(blob, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _item_columns(items: list[VideoItem]) -> dict:
    return {
        "feats": torch.cat([it["feats"] for it in items], dim=1),  # (C, sum of T)
        "mask": torch.cat([it["mask"] for it in items]),  # (sum of T,)
        "segments": torch.cat([it["segments"] for it in items]),  # (sum of N, 2)
        "labels": torch.cat([it["labels"] for it in items]),  # (sum of N,)
        "steps": [int(it["feats"].shape[1]) for it in items],
        "counts": [int(it["labels"].shape[0]) for it in items],
        **{name: [it[name] for it in items] for name in ITEM_SCALARS},
    }


def _read_items(path: Path):
    blob = torch.load(path, weights_only=True)
    return (None if blob["items"] is None else _items(blob["items"])), blob["video_ids"]


def _read_pooled(path: Path) -> dict[str, np.ndarray]:
    blob = torch.load(path, weights_only=True)
    return dict(zip(blob["pooled_ids"], blob["pooled"].numpy(), strict=True))


def _items(columns: dict) -> list[VideoItem]:
    steps, counts = columns["steps"], columns["counts"]
    fields = zip(
        columns["feats"].split(steps, dim=1),
        columns["mask"].split(steps),
        columns["segments"].split(counts),
        columns["labels"].split(counts),
        *(columns[name] for name in ITEM_SCALARS),
        strict=True,
    )
    return [
        VideoItem(
            feats=feats.contiguous(),  # (C, T), as build_items makes it
            mask=mask,
            segments=segments,
            labels=labels,
            **dict(zip(ITEM_SCALARS, scalars, strict=True)),
        )
        for feats, mask, segments, labels, *scalars in fields
    ]
