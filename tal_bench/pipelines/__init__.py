"""Pipelines: the only place that wires the stages together (data -> model -> train -> eval ->
records). The CLI calls one function from here per command.

The names below are imported at first access (PEP 562): a command that needs only one pipeline
(``talbench data-scaling`` builds its grid before any training) does not import torch and every
detector just by importing this package.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "apply_protocol": "tal_bench.pipelines.resolve",
    "available_presets": "tal_bench.pipelines.resolve",
    "resolve_run_config": "tal_bench.pipelines.resolve",
    "run_train": "tal_bench.pipelines.train",
    "train_and_evaluate": "tal_bench.pipelines.train",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
