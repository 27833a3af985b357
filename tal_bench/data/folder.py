"""Your own dataset: any folder in ActionFormer's layout, described by a small ``dataset.toml``.

ActionFormer (happyharrycn/actionformer_release, ``data/thumos``) ships a dataset as one
annotation JSON plus one feature file per video::

    DIR/
      dataset.toml               optional: the keys below
      annotations/<name>.json    any variant tal_bench.data.annotations reads
      <features>/<video>.npy     (T, C) per video, any width C (or .pt, or one .h5 file)

``--dataset DIR`` (``data.dataset = DIR``) trains on it. ``dataset.toml`` says what the files
cannot (unknown keys are errors)::

    fps = 30.0            # frames per second of the videos (a video's own "fps" in the JSON wins)
    feat_stride = 4       # frames between consecutive features
    clip_len = 16         # frames per feature clip; feature i is centred at i*stride + clip_len/2
    annotations = "annotations/thumos14.json"   # default: the only .json in annotations/ or DIR
    features = "i3d_features"                   # default: the only folder of .npy/.pt (or .h5)
    prefix = ""           # file name = prefix + video id (ActivityNet's TSP files: "v_")
    train_subset = "val"  # default: "train" if the file has it, else "val"
    test_subset = "test"  # default: "test" if it has annotated instances, else "val"
    tiou = "thumos"       # default: "thumos" (0.3:0.1:0.7) for native items, "anet" for resize
    items = "native"      # "native" (long videos at their length) or "resize" (ActivityNet)

``fps``, ``feat_stride`` and ``clip_len`` may also come from the run config (``--set data.fps=30
--set data.feat_stride=4 --set data.clip_len=16``), which wins; without them the folder is
refused, since a wrong time axis would score every detector wrongly without a word.
``talbench datasets synth --out DIR`` writes such a folder; ``talbench datasets check DIR``
validates one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tal_bench.config import from_dict, load_toml
from tal_bench.data.annotations import load_annotations
from tal_bench.data.features import FEATURE_SUFFIXES
from tal_bench.errors import TalBenchError
from tal_bench.types import Annotations

DATASET_TOML = "dataset.toml"
ITEMS = ("native", "resize")


@dataclass
class FolderSpec:
    """The keys of ``dataset.toml`` (see the module docstring); None = inferred."""

    fps: float | None = None
    feat_stride: int | None = None
    clip_len: int | None = None
    annotations: str | None = None
    features: str | None = None
    prefix: str = ""
    train_subset: str | None = None
    test_subset: str | None = None
    tiou: str | None = None
    items: str = "native"


def is_folder(name: str) -> bool:
    """Whether ``data.dataset`` names a folder (an existing directory) rather than a dataset."""
    return Path(name).expanduser().is_dir()


def read_spec(folder: Path) -> FolderSpec:
    """``folder/dataset.toml`` as a checked :class:`FolderSpec` (defaults when absent)."""
    path = folder / DATASET_TOML
    if not path.is_file():
        return FolderSpec()
    spec = from_dict(FolderSpec, load_toml(path), prefix=f"{path}: ")
    if spec.items not in ITEMS:
        raise TalBenchError(f"{path}: items must be 'native' or 'resize', got {spec.items!r}")
    for key in ("fps", "feat_stride", "clip_len"):
        value = getattr(spec, key)
        if value is not None and value <= 0:
            raise TalBenchError(f"{path}: {key} must be > 0, got {value}")
    return spec


def annotation_file(folder: Path, spec: FolderSpec) -> Path:
    """The annotation JSON: ``spec.annotations``, else the only ``.json`` in ``annotations/``
    (or in the folder itself)."""
    if spec.annotations is not None:
        path = folder / spec.annotations
        if not path.is_file():
            raise TalBenchError(f"{folder / DATASET_TOML}: annotations file {path} does not exist")
        return path
    for where in (folder / "annotations", folder):
        found = sorted(where.glob("*.json")) if where.is_dir() else []
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(p.name for p in found[:4])
            raise TalBenchError(
                f"{where} holds several JSON files ({names}); name the annotations in "
                f'{folder / DATASET_TOML}: annotations = "annotations/<file>.json"'
            )
    raise TalBenchError(
        f"{folder} has no annotation JSON (looked in annotations/ and the folder itself); add "
        "ActionFormer's annotations/<name>.json or name it in dataset.toml"
    )


def feature_path(folder: Path, spec: FolderSpec) -> Path:
    """The features: ``spec.features``, else the only sub-folder holding ``.npy``/``.pt`` files
    (or the only ``.h5`` file)."""
    if spec.features is not None:
        path = folder / spec.features
        if not path.exists():
            raise TalBenchError(f"{folder / DATASET_TOML}: features path {path} does not exist")
        return path
    candidates = [
        d
        for d in sorted(folder.iterdir())
        if d.is_dir() and any(next(d.glob(f"*{s}"), None) for s in (".npy", ".pt"))
    ]
    candidates += [p for p in sorted(folder.glob("*.h5")) + sorted(folder.glob("*.hdf5"))]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise TalBenchError(
            f"{folder} has no feature files (a sub-folder of <video>.npy or .pt files, or one "
            f".h5 file; {', '.join(FEATURE_SUFFIXES)}); add them or name them in dataset.toml"
        )
    names = ", ".join(p.name for p in candidates[:4])
    raise TalBenchError(
        f"{folder} has several feature folders/files ({names}); name one in "
        f'{folder / DATASET_TOML}: features = "<folder>"'
    )


@functools.lru_cache(maxsize=8)
def _annotations(path: str, mtime_ns: int) -> Annotations:
    return load_annotations(path)


def folder_annotations(folder: Path, spec: FolderSpec | None = None) -> Annotations:
    """The folder's parsed annotations (read once per process while the file is unchanged)."""
    path = annotation_file(folder, spec or read_spec(folder))
    return _annotations(str(path), path.stat().st_mtime_ns)


def infer_subsets(ann: Annotations, spec: FolderSpec, where: str) -> tuple[str, str]:
    """(train, test) subsets: dataset.toml's, else ``train`` (or ``val``) and ``test`` (or
    ``val`` when the test videos carry no instances, as ActivityNet's)."""
    from tal_bench.data.annotations import normalize_subset

    present = ann.subsets()
    labelled = {s for s in present if any(len(v.labels) for v in ann.subset(s))}
    train = normalize_subset(spec.train_subset) if spec.train_subset else None
    test = normalize_subset(spec.test_subset) if spec.test_subset else None
    if train is None:
        train = next((s for s in ("train", "val") if s in labelled), None)
    if test is None:
        test = next((s for s in ("test", "val") if s in labelled and s != train), None)
    for role, name in (("train_subset", train), ("test_subset", test)):
        if name is not None and name not in present:
            raise TalBenchError(
                f"{where}: {role} {name!r} of {DATASET_TOML} is not in the annotations (they "
                f"have {', '.join(present) or 'none'})"
            )
        if name is None:
            raise TalBenchError(
                f"{where}: cannot tell which subset to use as {role} (the annotations have "
                f"{', '.join(present) or 'none'}); set {role} in {DATASET_TOML}"
            )
    return train, test


def describe(folder: Path) -> dict[str, Any]:
    """Everything the folder's protocol needs, without reading a feature file."""
    from tal_bench.data.datasets import DatasetProtocol

    spec = read_spec(folder)
    ann = folder_annotations(folder, spec)
    train, test = infer_subsets(ann, spec, str(folder))
    tiou = spec.tiou or ("anet" if spec.items == "resize" else "thumos")
    protocol = DatasetProtocol(train, test, tiou, spec.items)  # type: ignore[arg-type]
    return {"spec": spec, "annotations": ann, "protocol": protocol}
