"""Pipelines: the only place that wires the stages together (data -> model -> train -> eval ->
records). The CLI calls one function from here per command."""

from __future__ import annotations

from tal_bench.pipelines.resolve import apply_protocol, available_presets, resolve_run_config
from tal_bench.pipelines.train import run_train, train_and_evaluate

__all__ = [
    "apply_protocol",
    "available_presets",
    "resolve_run_config",
    "run_train",
    "train_and_evaluate",
]
