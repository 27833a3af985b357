"""Detectors: ``create_model`` builds any registered detector by name.

Built-in detectors register on import (one line below per detector file); detectors of other
installed packages come through the ``tal_bench.detectors`` entry-point group
(``tal_bench.models.plugins``), loaded at the first lookup.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from tal_bench.models.base import Detector, ModelSpec, PostDecl
from tal_bench.models.plugins import ENTRY_POINT_GROUP, load_entry_points, plugin_errors
from tal_bench.registry import MODELS

MODELS.set_loader(load_entry_points)  # outside detectors, at the first lookup

# Detector modules register themselves on import; new detectors add one line here.
from tal_bench.models import dummy as _dummy  # noqa: E402,F401  isort: skip
from tal_bench.models import etad as _etad  # noqa: E402,F401  isort: skip
from tal_bench.models import tadtr as _tadtr  # noqa: E402,F401  isort: skip
from tal_bench.models import bmn as _bmn  # noqa: E402,F401  isort: skip
from tal_bench.models import actionformer as _actionformer  # noqa: E402,F401  isort: skip
from tal_bench.models import tridet as _tridet  # noqa: E402,F401  isort: skip
from tal_bench.models import temporalmaxer as _temporalmaxer  # noqa: E402,F401  isort: skip


def get_spec(name: str) -> ModelSpec:
    """The registry entry for ``name`` (TalBenchError with suggestions if unknown)."""
    return MODELS.get(name)


def create_model(name: str, model_cfg: Any, input_dim: int, num_classes: int) -> nn.Module:
    """Build detector ``name`` from its config dataclass."""
    return get_spec(name).build(model_cfg, input_dim, num_classes)


def list_models() -> list[str]:
    return MODELS.names()


__all__ = [
    "ENTRY_POINT_GROUP",
    "Detector",
    "ModelSpec",
    "PostDecl",
    "create_model",
    "get_spec",
    "list_models",
    "plugin_errors",
]
