"""``TalDataset`` (annotations + features) and the registered datasets.

Registered names (``DATASETS``): ``synthetic-thumos14`` and ``synthetic-thumos14-tiny`` (generated
on first use into the cache, see ``tal_bench.data.synthetic``), ``thumos14`` (ActionFormer's
release layout under ``root``) and ``anet13`` (ActionFormer's ActivityNet-1.3 TSP layout, resize
mode). A real root and a folder written by ``talbench datasets synth`` share one loader.

Every dataset owns its protocol (:class:`DatasetProtocol`): the subsets it trains and tests on,
its tIoU thresholds and how its videos become items. The run config's ``"auto"`` values resolve
to it (``tal_bench.pipelines.resolve``), so ``--dataset anet13`` trains on ActivityNet's training
videos, resized, and scores at 0.5:0.05:0.95 without any ``--set``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tal_bench.data import folder as folders
from tal_bench.data.annotations import load_annotations, normalize_subset
from tal_bench.data.checks import check_segments
from tal_bench.data.features import ArrayStore, FeatureMeta, FeatureStore
from tal_bench.errors import TalBenchError
from tal_bench.registry import DATASETS
from tal_bench.types import Annotations, VideoRecord


def _background_fraction(rec: VideoRecord) -> float:
    """Share of the video covered by no instance (union of segments, clipped to the video)."""
    segs = np.clip(
        np.sort(rec.segments_s, axis=0) if len(rec.segments_s) else rec.segments_s,
        0.0,
        rec.duration_s,
    )
    covered, end = 0.0, 0.0
    for s, e in sorted(map(tuple, segs)):
        s = max(s, end)
        if e > s:
            covered, end = covered + (e - s), e
    return 1.0 - covered / rec.duration_s if rec.duration_s > 0 else 0.0


def annotation_stats(ann: Annotations) -> dict[str, Any]:
    """Per-subset statistics: videos, instances, median action / video length, background.

    Returns:
        {"classes": K, "subsets": {name: {...}}}; ``background_fraction`` is duration-weighted.
    """
    out: dict[str, Any] = {"classes": len(ann.classes), "subsets": {}}
    for sub in ann.subsets():
        recs = ann.subset(sub)
        lens = np.concatenate([r.segments_s[:, 1] - r.segments_s[:, 0] for r in recs])
        durs = np.array([r.duration_s for r in recs])
        bg = np.array([_background_fraction(r) for r in recs])
        counts = np.array([len(r.labels) for r in recs])
        out["subsets"][sub] = {
            "videos": len(recs),
            "instances": int(counts.sum()),
            "instances_per_video_median": float(np.median(counts)),
            "instances_per_video_mean": round(float(counts.mean()), 2),
            "median_action_s": round(float(np.median(lens)), 2) if len(lens) else 0.0,
            "median_duration_s": round(float(np.median(durs)), 1),
            "background_fraction": round(float((bg * durs).sum() / durs.sum()), 3),
            "classes_present": len({lab for r in recs for lab in r.labels}),
        }
    return out


@dataclass(frozen=True)
class DatasetProtocol:
    """How a dataset is trained and scored unless a ``--set`` says otherwise.

    ``items`` says how its videos become items: ``"resize"`` (ActivityNet: every detector sees
    each video resampled to a fixed length, one item per video) or ``"native"`` (THUMOS: long
    untrimmed videos at their own length, cut the detector's way, ``ModelSpec.native_mode``:
    sliding windows for ETAD / BMN / TadTR, whole videos with random truncation for the
    ActionFormer family).
    """

    train_subset: str  # normalised subset name the detectors train on
    test_subset: str  # normalised subset name they are scored on
    tiou: str  # tIoU preset name (tal_bench.evaluation.tiou_preset): "thumos" | "anet"
    items: Literal["native", "resize"]

    def item_mode(self, native_mode: str) -> str:
        """The ``data.mode`` a detector whose native mode is ``native_mode`` gets here."""
        return "resize" if self.items == "resize" else native_mode


# THUMOS-14 (ActionFormer / OpenTAD): train on the 200 validation videos, test on the test
# videos, tIoU 0.3:0.1:0.7. ActivityNet-1.3: train on training, score on validation (its test
# labels are withheld), tIoU 0.5:0.05:0.95, every video resized.
THUMOS_PROTOCOL = DatasetProtocol("val", "test", "thumos", "native")
ANET_PROTOCOL = DatasetProtocol("train", "val", "anet", "resize")


class TalDataset:
    """One annotation file plus its per-video features.

    Args:
        name: registered name (or a description of where it came from).
        annotations: the parsed annotation file.
        store: where the features live (a ``FeatureStore`` or an ``ArrayStore``).
        feature_meta: extraction geometry; ``input_dim`` is replaced by the features' own width.
        protocol: how the dataset is trained and scored by default.

    Reversed segments are refused here (``tal_bench.data.checks.check_segments``); ``notes``
    says what else the annotations hold that a user should know.
    """

    def __init__(
        self,
        name: str,
        annotations: Annotations,
        store: FeatureStore | ArrayStore,
        feature_meta: FeatureMeta,
        protocol: DatasetProtocol = THUMOS_PROTOCOL,
    ) -> None:
        self.name = name
        self.notes = check_segments(annotations, annotations.path or name)
        self.annotations = annotations
        self.store = store
        self.protocol = protocol
        first = next((v for v in sorted(annotations.videos) if store.has(v)), None)
        dim = store.shape(first)[1] if first is not None else feature_meta.input_dim
        self.feature_meta = dataclasses.replace(feature_meta, input_dim=dim)

    @property
    def classes(self) -> list[str]:
        """Class names; index = integer class id."""
        return self.annotations.classes

    def subsets(self) -> list[str]:
        """Normalised subset names present in the annotations."""
        return self.annotations.subsets()

    def resolve_subset(self, subset: str) -> str:
        """Normalise ``subset`` ("Validation" -> "val") and check that it exists."""
        name = normalize_subset(subset)
        if name not in self.subsets():
            raise TalBenchError(
                f"unknown subset {subset!r} in dataset {self.name!r}; "
                f"available: {', '.join(self.subsets())}"
            )
        return name

    def video_ids(self, subset: str) -> list[str]:
        """Sorted ids of the videos in ``subset`` (TalBenchError if unknown or empty)."""
        name = self.resolve_subset(subset)
        ids = sorted(v.video_id for v in self.annotations.subset(name))
        if not ids:
            raise TalBenchError(f"subset {subset!r} of dataset {self.name!r} has no videos")
        return ids

    def num_features(self, video_id: str) -> int:
        """T of one video (before any downsampling), read from the file header."""
        return self.store.shape(video_id)[0]

    def load_features(self, video_id: str) -> np.ndarray:
        """All features of one video: (T, C) float32, finite."""
        return self.store.load(video_id)

    def load_feature_range(self, video_id: str, start: int, stop: int, step: int = 1):
        """Features ``[start:stop:step]`` of one video: (T', C) float32, finite."""
        return self.store.load(video_id, start, stop, step)

    def validate_ids(self, video_ids: list[str]) -> None:
        """Every id has a feature file, all of the same width (cheap: headers only)."""
        missing = [v for v in video_ids if not self.store.has(v)]
        if missing:
            raise TalBenchError(
                f"{len(missing)} of {len(video_ids)} videos have no feature file in "
                f"{self.store.path} (first: {', '.join(missing[:3])}); add them or drop them "
                "from the annotations"
            )
        dims: dict[int, str] = {}
        for vid in video_ids:
            dims.setdefault(self.store.shape(vid)[1], vid)
        if len(dims) > 1:
            seen = ", ".join(f"{d} ({v})" for d, v in sorted(dims.items()))
            raise TalBenchError(
                f"feature dimension mismatch in {self.store.path}: {seen}; "
                "all videos need features of the same width"
            )

    def validate(self, subset: str) -> dict[str, Any]:
        """Check a subset (known, non-empty, features present and consistent).

        Returns:
            {"subset", "videos", "feature_steps", "input_dim"}.
        """
        ids = self.video_ids(subset)
        self.validate_ids(ids)
        steps = sum(self.num_features(v) for v in ids)
        dim = self.store.shape(ids[0])[1]
        return {
            "subset": self.resolve_subset(subset),
            "videos": len(ids),
            "feature_steps": steps,
            "input_dim": dim,
        }


@dataclass(frozen=True)
class DatasetSpec:
    """A registry entry: how to open one dataset, and its protocol."""

    name: str
    description: str
    protocol: DatasetProtocol
    input_dim: int | None  # None: set by the options / the feature files
    needs_root: bool
    factory: Callable[..., TalDataset]  # (root: Path | None, **options) -> TalDataset


def _check_options(name: str, options: dict[str, Any], valid: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TalBenchError(
            f"unknown option(s) {', '.join(unknown)} for dataset {name!r}; "
            f"valid: {', '.join(sorted(valid)) or 'none'}"
        )
    return {**valid, **{k: v for k, v in options.items() if v is not None}}


def open_feature_dataset(
    name: str,
    annotations_path: Path,
    features_path: Path,
    meta: FeatureMeta,
    protocol: DatasetProtocol = THUMOS_PROTOCOL,
    prefix: str = "",
) -> TalDataset:
    """Open an annotation file + a feature folder / .h5 file as a ``TalDataset``."""
    if not Path(annotations_path).is_file():
        raise TalBenchError(f"annotation file {annotations_path} does not exist")
    ann = load_annotations(annotations_path)
    store = FeatureStore(features_path, prefix=prefix)
    return TalDataset(name, ann, store, meta, protocol)


def _real_factory(
    name: str, defaults: dict[str, Any], protocol: DatasetProtocol
) -> Callable[..., TalDataset]:
    def factory(root: Path | None, **options: Any) -> TalDataset:
        opts = _check_options(name, options, defaults)
        meta = FeatureMeta(
            fps=float(opts["fps"]),
            feat_stride=int(opts["feat_stride"]),
            clip_len=int(opts["clip_len"]),
            offset_frames=int(opts["clip_len"]) / 2,
        )
        assert root is not None
        return open_feature_dataset(
            name,
            root / opts["annotations"],
            root / opts["features"],
            meta,
            protocol,
            opts["prefix"],
        )

    return factory


def array_dataset(arrays: dict[str, np.ndarray], subset: str = "test") -> TalDataset:
    """In-memory ``(T, C)`` features as an unannotated dataset of one subset.

    One feature per second (``fps`` 1, stride 1, feature i centred at i s), so a video of T
    features lasts T seconds. The profiler cuts its random inputs into items through this, with
    the same ``build_items`` as training and evaluation.
    """
    videos = {
        vid: VideoRecord(
            video_id=vid,
            subset=subset,
            subset_raw=subset,
            duration_s=float(len(arr)),
            fps=1.0,
            segments_s=np.zeros((0, 2)),
            labels=[],
        )
        for vid, arr in arrays.items()
    }
    ann = Annotations(videos=videos, classes=[], source_format="memory")
    meta = FeatureMeta(fps=1.0, feat_stride=1, clip_len=1, offset_frames=0.0)
    return TalDataset("in-memory", ann, ArrayStore(arrays), meta)


def _register(spec: DatasetSpec) -> None:
    DATASETS.register(spec.name)(spec)


_register(
    DatasetSpec(
        "thumos14",
        "THUMOS-14, ActionFormer layout: <root>/annotations/thumos14.json + "
        "<root>/i3d_features/<video>.npy (2048-d I3D, 30 fps, stride 4, 16-frame clips)",
        THUMOS_PROTOCOL,
        2048,
        True,
        _real_factory(
            "thumos14",
            {
                "annotations": "annotations/thumos14.json",
                "features": "i3d_features",
                "prefix": "",
                "fps": 30.0,
                "feat_stride": 4,
                "clip_len": 16,
            },
            THUMOS_PROTOCOL,
        ),
    )
)
_register(
    DatasetSpec(
        "anet13",
        "ActivityNet-1.3, ActionFormer layout: <root>/annotations/anet1.3_tsp_filtered.json + "
        "<root>/tsp_features/v_<id>.npy (512-d TSP, 15 fps, stride 16); resized videos",
        ANET_PROTOCOL,
        512,
        True,
        _real_factory(
            "anet13",
            {
                "annotations": "annotations/anet1.3_tsp_filtered.json",
                "features": "tsp_features",
                "prefix": "v_",
                "fps": 15.0,
                "feat_stride": 16,
                "clip_len": 16,
            },
            ANET_PROTOCOL,
        ),
    )
)


def _synthetic_factory(name: str, tiny: bool) -> Callable[..., TalDataset]:
    # imported lazily: tal_bench.data.synthetic imports this module
    def factory(root: Path | None, **options: Any) -> TalDataset:
        from tal_bench.data import synthetic

        base = synthetic.TINY_PARAMS if tiny else synthetic.SynthParams()
        opts = _check_options(name, options, dataclasses.asdict(base))
        if root is not None:
            if options:
                raise TalBenchError(
                    f"options {', '.join(sorted(options))} only apply when {name!r} is generated "
                    f"into the cache; {root} was already written with its own parameters"
                )
            return synthetic.open_synthetic(root, name)
        params = synthetic.SynthParams(**opts)
        return synthetic.open_synthetic(synthetic.ensure_synthetic(params, name), name)

    return factory


_register(
    DatasetSpec(
        "synthetic-thumos14",
        "embedded THUMOS-14-like dataset (200 train / 212 test videos, 20 classes, 64-d "
        "features at 30 fps / stride 4); generated into the cache on first use (~20 s)",
        THUMOS_PROTOCOL,
        64,
        False,
        _synthetic_factory("synthetic-thumos14", tiny=False),
    )
)
_register(
    DatasetSpec(
        "synthetic-thumos14-tiny",
        "tiny synthetic THUMOS-like dataset for tests and smoke runs (12 train / 13 test "
        "videos of ~40 s, 5 classes, 32-d features)",
        THUMOS_PROTOCOL,
        32,
        False,
        _synthetic_factory("synthetic-thumos14-tiny", tiny=True),
    )
)


def open_folder_dataset(
    folder: str | Path,
    fps: float | None = None,
    feat_stride: int | None = None,
    clip_len: int | None = None,
) -> TalDataset:
    """A folder in ActionFormer's layout (``tal_bench.data.folder``) as a ``TalDataset``.

    ``fps`` / ``feat_stride`` / ``clip_len`` given here win over the folder's dataset.toml.
    """
    folder = Path(folder).expanduser().resolve()
    info = folders.describe(folder)
    spec: folders.FolderSpec = info["spec"]
    ann: Annotations = info["annotations"]
    geometry = {
        "fps": fps if fps is not None else spec.fps,
        "feat_stride": feat_stride if feat_stride is not None else spec.feat_stride,
        "clip_len": clip_len if clip_len is not None else spec.clip_len,
    }
    if geometry["fps"] is None and all(v.fps for v in ann.videos.values()):
        geometry["fps"] = next(iter(ann.videos.values())).fps  # every video has its own
    missing = [k for k, v in geometry.items() if v is None]
    if missing:
        raise TalBenchError(
            f"{folder} does not say its features' {', '.join(missing)}: add "
            + ", ".join(f"{k} = ..." for k in missing)
            + f" to {folder / folders.DATASET_TOML} (ActionFormer's I3D: fps = 30.0, "
            "feat_stride = 4, clip_len = 16) or pass --set data.<key>=VALUE"
        )
    for key, value in geometry.items():
        if value <= 0:
            raise TalBenchError(f"data.{key} must be > 0, got {value}")
    meta = FeatureMeta(
        fps=float(geometry["fps"]),
        feat_stride=int(geometry["feat_stride"]),
        clip_len=int(geometry["clip_len"]),
        offset_frames=int(geometry["clip_len"]) / 2,
    )
    store = FeatureStore(folders.feature_path(folder, spec), prefix=spec.prefix)
    return TalDataset(str(folder), ann, store, meta, info["protocol"])


def _spec(name: str) -> DatasetSpec:
    """The registry entry of ``name``; unknown names also say that a folder works."""
    try:
        return DATASETS.get(name)
    except TalBenchError as exc:
        raise TalBenchError(
            f"{exc}; or pass a folder in ActionFormer's layout (no folder {name!r} exists)"
        ) from None


def create_dataset(name: str, root: str | None = None, **options: Any) -> TalDataset:
    """Open a registered dataset, or a folder in ActionFormer's layout.

    Args:
        name: registered name (``talbench ls datasets``; unknown names suggest close ones) or
            a folder (``tal_bench.data.folder``).
        root: dataset folder; required by real datasets, optional for synthetic ones (a folder
            written by ``talbench datasets synth``; default: generate into the cache).
        **options: dataset-specific options (``None`` values are ignored).

    Returns:
        The opened ``TalDataset``.
    """
    options = {k: v for k, v in options.items() if v is not None}
    if name not in DATASETS and folders.is_folder(name):
        if root is not None:
            raise TalBenchError(
                f"data.root applies to registered datasets; the folder {name} is its own root"
            )
        return open_folder_dataset(name, **options)
    spec = _spec(name)
    if spec.needs_root and root is None:
        raise TalBenchError(
            f"dataset {name!r} needs its folder: set data.root=DIR ({spec.description})"
        )
    if root is not None and not Path(root).is_dir():
        raise TalBenchError(f"dataset root {root} is not a folder")
    return spec.factory(Path(root) if root is not None else None, **options)


def dataset_name(name: str) -> str:
    """``name`` as run records hold it: a registered name as is, a folder as an absolute path."""
    if name not in DATASETS and folders.is_folder(name):
        return str(Path(name).expanduser().resolve())
    return name


def open_dataset(data: Any) -> TalDataset:
    """The dataset of a ``DataConfig`` (name or folder, root, feature geometry overrides)."""
    geometry = {"fps": data.fps, "feat_stride": data.feat_stride, "clip_len": data.clip_len}
    return create_dataset(data.dataset, data.root, **geometry)


def dataset_protocol(name: str) -> DatasetProtocol:
    """The protocol of registered dataset ``name`` (without opening it), or of a folder (read
    from its dataset.toml and annotation file)."""
    if name not in DATASETS and folders.is_folder(name):
        return folders.describe(Path(name).expanduser().resolve())["protocol"]
    return _spec(name).protocol


def describe_datasets() -> list[dict[str, Any]]:
    """One dict per registered dataset (for ``talbench ls datasets``)."""
    rows = []
    for name in DATASETS.names():
        spec: DatasetSpec = DATASETS.get(name)
        rows.append(
            {
                "name": name,
                "description": spec.description,
                "protocol": dataclasses.asdict(spec.protocol),
                "input_dim": spec.input_dim,
                "needs_root": spec.needs_root,
            }
        )
    return rows


def dataset_info(name: str, root: str | None = None, **options: Any) -> dict[str, Any]:
    """Statistics of a dataset (for ``talbench datasets info``).

    Returns:
        {"name", "description", "root", "protocol", "classes", "feature_meta",
        "subsets": {subset: {videos, instances, median_action_s, background_fraction, ...,
        feature_steps}}, "notes": what the annotations hold that a user should know}.
    """
    ds = create_dataset(name, root, **options)
    stats = annotation_stats(ds.annotations)
    for sub, row in stats["subsets"].items():
        checked = ds.validate(sub)
        row["feature_steps"] = checked["feature_steps"]
        if "clip_shape" in checked:  # frames datasets: (3, t, H, W) per snippet
            row["clip_shape"] = checked["clip_shape"]
    description = DATASETS.get(name).description if name in DATASETS else f"folder {ds.name}"
    return {
        "name": name,
        "description": description,
        "root": str(ds.store.path.parent),
        "protocol": dataclasses.asdict(ds.protocol),
        "classes": ds.classes,
        "feature_meta": dataclasses.asdict(ds.feature_meta),
        "subsets": stats["subsets"],
        "notes": list(ds.notes),
    }
