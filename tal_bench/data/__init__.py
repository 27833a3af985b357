"""Data layer: annotations, feature files, items, fraction draws and registered datasets.

Importing this package registers the datasets in ``tal_bench.registry.DATASETS``.
"""

from __future__ import annotations

from tal_bench.data.datasets import (
    DatasetSpec,
    TalDataset,
    create_dataset,
    describe_datasets,
    list_datasets,
)
from tal_bench.data.features import FeatureMeta, FeatureStore, load_feature_file
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
    "TalDataset",
    "build_items",
    "collate_items",
    "create_dataset",
    "describe_datasets",
    "grid_to_seconds",
    "list_datasets",
    "load_feature_file",
    "resize_features",
    "seconds_to_grid",
    "stack_items",
]
