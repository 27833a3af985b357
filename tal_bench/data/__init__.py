"""Data layer: annotations, feature files, items, fraction draws and registered datasets.

Every name below is imported at its first use (PEP 562), and the registered datasets at the first
lookup in ``tal_bench.registry.DATASETS``: ``talbench --help`` imports no numpy, ``talbench
evaluate`` reads annotations without torch (``tal_bench.data.items``), and the synthetic
generator (``tal_bench.data.synthetic``) is imported only when a synthetic dataset is opened.
"""

from __future__ import annotations

import importlib
from typing import Any

from tal_bench.registry import DATASETS

_MODULES = {
    "annotations": ("load_annotations", "normalize_subset"),
    "datasets": (
        "DatasetProtocol",
        "DatasetSpec",
        "TalDataset",
        "annotation_stats",
        "array_dataset",
        "create_dataset",
        "dataset_info",
        "dataset_name",
        "dataset_protocol",
        "describe_datasets",
        "open_dataset",
        "open_folder_dataset",
    ),
    "features": ("ArrayStore", "FeatureMeta", "FeatureStore"),
    "fractions": ("FractionDraw", "sample_fraction"),
    "frames": ("FramesDataset",),
    "items": (
        "build_items",
        "collate_items",
        "grid_to_seconds",
        "resize_features",
        "seconds_to_grid",
        "stack_items",
    ),
}
_LAZY = {name: f"tal_bench.data.{module}" for module, names in _MODULES.items() for name in names}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _register_datasets() -> None:
    importlib.import_module("tal_bench.data.datasets")  # registers on import
    importlib.import_module("tal_bench.data.frames")  # the frames datasets


DATASETS.set_loader(_register_datasets)
