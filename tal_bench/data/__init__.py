"""Data layer: annotations, feature files, items, fraction draws and registered datasets.

Importing this package registers the datasets in ``tal_bench.registry.DATASETS``; the synthetic
generator itself (``tal_bench.data.synthetic``) is imported only when a synthetic dataset is
opened.
"""

from __future__ import annotations

from tal_bench.data.annotations import load_annotations, normalize_subset
from tal_bench.data.datasets import (
    DatasetProtocol,
    DatasetSpec,
    TalDataset,
    annotation_stats,
    array_dataset,
    create_dataset,
    dataset_info,
    dataset_protocol,
    describe_datasets,
    list_datasets,
)
from tal_bench.data.features import ArrayStore, FeatureMeta, FeatureStore, load_feature_file
from tal_bench.data.fractions import FractionDraw, sample_fraction
from tal_bench.data.items import (
    build_items,
    collate_items,
    grid_to_seconds,
    resize_features,
    seconds_to_grid,
    stack_items,
)

__all__ = [
    "ArrayStore",
    "DatasetProtocol",
    "DatasetSpec",
    "FeatureMeta",
    "FeatureStore",
    "FractionDraw",
    "TalDataset",
    "annotation_stats",
    "array_dataset",
    "build_items",
    "collate_items",
    "create_dataset",
    "dataset_info",
    "dataset_protocol",
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
