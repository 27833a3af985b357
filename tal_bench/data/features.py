"""Snippet-feature files: per-video ``.npy`` / ``.pt`` files in a folder, or one ``.h5`` file.

Every store yields ``(T, C)`` float32 arrays (time x channels), the layout ActionFormer ships its
THUMOS-14 I3D features in (one ``<video_id>.npy`` per video). Feature i is the clip of
``clip_len`` frames starting at frame ``i * feat_stride``, so its centre sits at frame
``i * feat_stride + offset_frames`` with ``offset_frames = clip_len / 2`` (8 for 16-frame clips);
``tal_bench.data.items`` turns that into each item's ``t0_s`` / ``step_s``.

Shapes are checked cheaply (``np.load(mmap_mode="r")``, h5 dataset shapes); values are checked
for NaN/inf when a feature range is actually loaded. A file that cannot be read (truncated,
corrupt, a pickle, not numbers) is one ``TalBenchError`` naming the file, never a traceback.
``h5py`` and ``torch`` are imported only when an ``.h5`` / ``.pt`` file is read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tal_bench.errors import TalBenchError

FEATURE_SUFFIXES = (".npy", ".pt", ".h5", ".hdf5")


@dataclass(frozen=True)
class FeatureMeta:
    """How the snippet features of a dataset were extracted.

    Attributes:
        fps: default frames per second (a video's own fps from the annotations wins).
        feat_stride: frames between consecutive features (4 for ActionFormer's I3D).
        clip_len: frames per clip (16 for I3D).
        offset_frames: frame of feature 0's centre (clip_len / 2).
        input_dim: channels C of every feature vector.
    """

    fps: float = 30.0
    feat_stride: int = 4
    clip_len: int = 16
    offset_frames: float = 8.0
    input_dim: int = 2048

    def step_s(self, fps: float | None = None, downsample: int = 1) -> float:
        """Seconds between consecutive (kept) features at ``fps`` (default: ``self.fps``)."""
        return self.feat_stride * downsample / (fps or self.fps)

    def num_features(self, duration_s: float, fps: float | None = None) -> int:
        """Features a video of ``duration_s`` seconds yields (clips that fit entirely, >= 1)."""
        frames = int(round(duration_s * (fps or self.fps)))
        return max(1, (frames - self.clip_len) // self.feat_stride + 1)


def _check_finite(arr: np.ndarray, where: str) -> None:
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise TalBenchError(
            f"{where} contains {bad} NaN/inf values; re-extract or repair that feature file"
        )


def _as_2d(arr: Any, where: str, nonempty: bool = True) -> Any:
    """``arr`` if it is a (T, C) array of numbers (T, C >= 1 unless a slice: ``nonempty``
    False), else a one-line TalBenchError."""
    shape = tuple(arr.shape)
    if len(shape) != 2 or (nonempty and min(shape) < 1):
        raise TalBenchError(
            f"{where} has shape {shape}; expected a 2-D (T, C) feature array with T, C >= 1 "
            "(one row per time step)"
        )
    dtype = np.dtype(getattr(arr, "dtype", np.float32))
    if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        raise TalBenchError(f"{where} holds {dtype} values; expected float (T, C) features")
    return arr


def _unreadable(path: Path, exc: BaseException, what: str = "feature file") -> TalBenchError:
    reason = (str(exc).splitlines() or [""])[0] or type(exc).__name__
    return TalBenchError(f"cannot read {what} {path} ({reason}); re-extract or replace it")


def read_npy(path: str | Path, mmap: bool = True) -> np.ndarray:
    """Open a ``.npy`` file (memory-mapped by default, never unpickling), errors as one line."""
    path = Path(path)
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:  # truncated, corrupt, a pickle, a directory
        raise _unreadable(path, exc) from None


@contextlib.contextmanager
def open_h5(path: str | Path) -> Iterator[Any]:
    """``h5py.File(path, "r")``; a file that is not HDF5 is one line naming it."""
    import h5py  # only .h5 features need it

    path = Path(path)
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise _unreadable(path, exc) from None
    with fh:
        yield fh


def _load_pt(path: Path) -> np.ndarray:
    """A ``.pt`` file holding one tensor (never unpickles arbitrary objects)."""
    import torch  # only .pt features need it

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt / unsafe files
        raise _unreadable(path, exc, "tensor file") from None
    if isinstance(obj, torch.Tensor):
        return obj.detach().to(torch.float32).numpy()
    raise TalBenchError(f"{path} holds a {type(obj).__name__}; expected one (T, C) tensor")


class FeatureStore:
    """Per-video features: a folder of ``<prefix><video_id>.npy|.pt`` or one ``.h5`` file.

    Args:
        path: the folder or the ``.h5`` file.
        prefix: file-name prefix before the video id (ANet's TSP files are ``v_<id>.npy``).
    """

    def __init__(self, path: str | Path, prefix: str = "") -> None:
        self.path = Path(path)
        self.prefix = prefix
        if not self.path.exists():
            raise TalBenchError(f"feature path {self.path} does not exist; pass the right root")
        self.kind = self._detect_kind()
        self._shapes: dict[str, tuple[int, int]] = {}

    def _detect_kind(self) -> str:
        if self.path.is_file():
            if self.path.suffix.lower() in (".h5", ".hdf5"):
                return "h5"
            raise TalBenchError(f"{self.path} is a file but not .h5; pass a folder of .npy/.pt")
        for kind in ("npy", "pt"):
            if next(self.path.glob(f"*.{kind}"), None) is not None:
                return kind
        raise TalBenchError(f"feature folder {self.path} holds no .npy or .pt files")

    def _file(self, video_id: str) -> Path:
        return self.path / f"{self.prefix}{video_id}.{self.kind}"

    def available(self) -> set[str]:
        """Video ids that have features in this store."""
        if self.kind == "h5":
            with open_h5(self.path) as fh:
                return {k[len(self.prefix) :] for k in fh if k.startswith(self.prefix)}
        n = len(self.prefix)
        return {p.stem[n:] for p in self.path.glob(f"{self.prefix}*.{self.kind}")}

    def has(self, video_id: str) -> bool:
        """Whether this store holds features for ``video_id``."""
        if self.kind == "h5":
            with open_h5(self.path) as fh:
                return (self.prefix + video_id) in fh
        return self._file(video_id).is_file()

    def shape(self, video_id: str) -> tuple[int, int]:
        """``(T, C)`` of one video, read without loading the values where possible."""
        if video_id not in self._shapes:
            if not self.has(video_id):
                raise TalBenchError(f"no features for video {video_id!r} in {self.path}")
            self._shapes[video_id] = self._read_shape(video_id)
        return self._shapes[video_id]

    def _read_shape(self, video_id: str) -> tuple[int, int]:
        where = f"feature file {self.where(video_id)}"
        if self.kind == "h5":
            with open_h5(self.path) as fh:
                shape = _as_2d(fh[self.prefix + video_id], where).shape
        elif self.kind == "npy":
            shape = _as_2d(read_npy(self._file(video_id)), where).shape
        else:
            shape = _as_2d(_load_pt(self._file(video_id)), where).shape
        return int(shape[0]), int(shape[1])

    def where(self, video_id: str) -> str:
        """The file (or ``file.h5:dataset``) holding ``video_id``'s features, for messages."""
        if self.kind == "h5":
            return f"{self.path}:{self.prefix}{video_id}"
        return str(self._file(video_id))

    def load(self, video_id: str, start: int = 0, stop: int | None = None, step: int = 1):
        """Features ``[start:stop:step]`` of one video as a ``(T', C)`` float32 array."""
        where = f"feature file {self.where(video_id)}"
        if self.kind == "h5":
            with open_h5(self.path) as fh:
                arr = np.asarray(fh[self.prefix + video_id][start:stop:step])
        elif self.kind == "npy":
            arr = np.asarray(read_npy(self._file(video_id))[start:stop:step])
        else:
            arr = _load_pt(self._file(video_id))[start:stop:step]
        arr = _as_2d(np.array(arr, dtype=np.float32, order="C"), where, nonempty=False)  # a copy
        _check_finite(arr, where)
        return arr


class ArrayStore:
    """Per-video features held in memory (``{video_id: (T, C) array}``), with
    :class:`FeatureStore`'s interface: the item builder then cuts in-memory features (the
    profiler's random inputs) with the same code as files on disk.
    """

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.path = Path("<memory>")
        self.kind = "memory"
        self.arrays = {v: _as_2d(np.asarray(a), f"features of {v!r}") for v, a in arrays.items()}

    def available(self) -> set[str]:
        """Video ids that have features in this store."""
        return set(self.arrays)

    def where(self, video_id: str) -> str:
        """How messages name ``video_id``'s features."""
        return f"in-memory features of {video_id!r}"

    def has(self, video_id: str) -> bool:
        """Whether this store holds features for ``video_id``."""
        return video_id in self.arrays

    def shape(self, video_id: str) -> tuple[int, int]:
        """``(T, C)`` of one video."""
        if video_id not in self.arrays:
            raise TalBenchError(f"no features for video {video_id!r} in memory")
        rows, cols = self.arrays[video_id].shape
        return int(rows), int(cols)

    def load(self, video_id: str, start: int = 0, stop: int | None = None, step: int = 1):
        """Features ``[start:stop:step]`` of one video as a ``(T', C)`` float32 array."""
        self.shape(video_id)
        arr = np.array(self.arrays[video_id][start:stop:step], dtype=np.float32, order="C")
        _check_finite(arr, f"features of {video_id!r}")
        return arr


def save_npy_features(path: str | Path, feats: np.ndarray) -> None:
    """Write one ``(T, C)`` float32 array as ActionFormer does (plain ``.npy``, no pickle)."""
    arr = np.ascontiguousarray(feats, dtype=np.float32)  # (T, C)
    assert arr.ndim == 2, f"expected (T, C), got {arr.shape}"
    with open(path, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)
