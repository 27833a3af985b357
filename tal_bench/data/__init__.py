"""Data layer: annotations, feature files, items, fraction draws and registered datasets.

Importing this package registers the datasets in ``tal_bench.registry.DATASETS``; the synthetic
generator itself (``tal_bench.data.synthetic``) is imported only when a synthetic dataset is
opened.
"""

from __future__ import annotations

from tal_bench.data.annotations import load_annotations, normalize_subset
from tal_bench.data.datasets import (
    DatasetSpec,
    TalDataset,
    annotation_stats,
    create_dataset,
    dataset_info,
    describe_datasets,
    list_datasets,
)
from tal_bench.data.features import FeatureMeta, FeatureStore, load_feature_file
from tal_bench.data.fractions import FractionDraw, sample_fraction
from tal_bench.data.frames import FramesDataset
from tal_bench.data.items import (
    build_items,
    collate_items,
    grid_to_seconds,
    resize_features,
    seconds_to_grid,
    stack_items,
)

__all__ = [
    "DatasetSpec",
    "FeatureMeta",
    "FeatureStore",
    "FractionDraw",
    "FramesDataset",
    "TalDataset",
    "annotation_stats",
    "build_items",
    "collate_items",
    "create_dataset",
    "dataset_info",
    "describe_datasets",
    "grid_to_seconds",
    "list_datasets",
    "load_annotations",
    "load_feature_file",
    "normalize_subset",
    "resize_features",
    "sample_fraction",
    "seconds_to_grid",
    "stack_items",
]
