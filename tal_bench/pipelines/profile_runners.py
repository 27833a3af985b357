"""Profiling adapters: random inputs -> a detector's native items, and how to drive it.

* :func:`make_items` cuts ``[B, C, L]`` features into windows / resized / full items with the
  item builder of training and evaluation (``tal_bench.data.items.build_items``).
* :class:`Runner` times ``predict`` and, when the model has ``forward_dense(feats, mask)`` and
  ``postprocess(dense_out, mask)`` (ETAD does), the two halves separately.
* :func:`count_items` counts MACs of all items with both counters.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from torch import nn

from tal_bench.config import DataConfig
from tal_bench.data import array_dataset, build_items, stack_items
from tal_bench.profiling.counters import (
    MacCount,
    count_macs_fvcore,
    count_macs_primary,
    tensors_of,
)
from tal_bench.types import ItemDetections, VideoItem

# ---------------------------------------------------------------------------- items


def make_items(feats: torch.Tensor, data: DataConfig) -> tuple[list[VideoItem], int]:
    """Cut random ``[B, C, L]`` features into the detector's native items.

    The same ``build_items`` as training and evaluation cuts them (an in-memory dataset of B
    videos, ``tal_bench.data.array_dataset``), so profiled items are exactly the evaluated ones.

    Args:
        feats: (B, C, L) features.
        data: the resolved data config (``mode``, ``window``, the evaluation stride,
            ``resize_len``, ``max_len``, ``downsample``).

    Returns:
        (items, items per video): windows for ``window``, one item per video otherwise.
    """
    arrays = {f"video{b}": feats[b].T.numpy() for b in range(feats.shape[0])}  # (L, C) views
    ds = array_dataset(arrays, subset="test")
    built = build_items(ds, data, "test", list(arrays), train=False)
    items = [built[i] for i in range(len(built))]
    return items, len(items) // len(arrays)


# ---------------------------------------------------------------------------- runners


class Runner:
    """How the profiler drives a detector: ``predict`` whole, and the dense/post split if the
    model has ``forward_dense(feats, mask)`` and ``postprocess(dense_out, mask)``."""

    def __init__(self, model: nn.Module, device: str) -> None:
        self.model = model
        self.device = torch.device(device)
        self.split = hasattr(model, "forward_dense") and hasattr(model, "postprocess")
        self.note = "" if self.split else "no forward_dense/postprocess: predict timed whole"

    def fvcore_handles(self) -> dict[str, Any]:
        """Extra fvcore handles for the model's custom ops (none by default)."""
        return {}

    def stack(self, chunk: list[VideoItem]) -> tuple[torch.Tensor, torch.Tensor]:
        """Items -> (B, C, T) features and (B, T) mask on the device."""
        feats, mask = stack_items(chunk)
        return feats.to(self.device), mask.to(self.device)

    def predict(self, chunk: list[VideoItem]) -> list[ItemDetections]:
        """The detector's own ``predict`` on a batch of items."""
        return self.model.predict(chunk)

    @torch.no_grad()
    def dense(self, feats: torch.Tensor, mask: torch.Tensor) -> Any:
        """The dense network on (B, C, T) features and their (B, T) mask."""
        return self.model.forward_dense(feats, mask)

    @torch.no_grad()
    def post(self, out: Any, mask: torch.Tensor) -> list[ItemDetections]:
        """Post-processing of :meth:`dense`'s output: one ``ItemDetections`` per item."""
        return self.model.postprocess(out, mask)


def make_runner(name: str, model: nn.Module, device: str) -> Runner:
    """The runner of ``model``: its own dense/post split if it has one, else plain predict."""
    return Runner(model, device)


# ---------------------------------------------------------------------------- MACs


def _det_tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, list) and out and isinstance(out[0], ItemDetections):
        return [t for d in out for t in (d.segments, d.scores, d.labels)]
    return tensors_of(out)


class _PredictCall(nn.Module):
    """``predict`` as a traceable module of (feats, mask) -> flat tensors (for fvcore)."""

    def __init__(self, runner: Runner, template: list[VideoItem]) -> None:
        super().__init__()
        self.model, self.runner, self.template = runner.model, runner, template

    def forward(self, feats: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        items = [{**it, "feats": feats[b], "mask": mask[b]} for b, it in enumerate(self.template)]
        return tuple(_det_tensors(self.runner.predict(items)))


def _item_signature(item: VideoItem) -> tuple[int, int]:
    return int(item["feats"].shape[-1]), int(item["mask"].sum())


def count_items(
    runner: Runner, items: list[VideoItem], use_fvcore: bool
) -> tuple[MacCount, MacCount | None]:
    """Primary and fvcore MACs over all items, counted one item (batch of 1) at a time: each
    distinct (padded length, valid length) is counted once and multiplied by how often it
    occurs. Exact when items do not interact inside the network (true of every detector here:
    convs, LSTMs and heads run per batch element; a test checks it against batched counts).
    """
    groups = Counter(_item_signature(it) for it in items)
    first: dict[tuple[int, int], VideoItem] = {}
    for it in items:
        first.setdefault(_item_signature(it), it)
    primary: list[MacCount] = []
    cross: list[MacCount] = []
    for sig, times in groups.items():
        chunk = [first[sig]]
        feats, mask = runner.stack(chunk)
        if runner.split:
            call = lambda m, x: runner.dense(*x)  # noqa: E731 - runner holds the model
            inputs: Any = (feats, mask)
            module: nn.Module = _DenseCall(runner)
        else:
            call = lambda m, x: runner.predict(x)  # noqa: E731
            inputs, module = chunk, _PredictCall(runner, chunk)
        primary.append(count_macs_primary(call, runner.model, inputs).scaled(times))
        if use_fvcore:
            handles = runner.fvcore_handles()
            cross.append(count_macs_fvcore(module, (feats, mask), handles).scaled(times))
    return _merge(primary), (_merge(cross) if use_fvcore else None)


class _DenseCall(nn.Module):
    def __init__(self, runner: Runner) -> None:
        super().__init__()
        self.model, self.runner = runner.model, runner

    def forward(self, feats: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(tensors_of(self.runner.dense(feats, mask)))


def _merge(counts: list[MacCount]) -> MacCount:
    out = counts[0]
    for c in counts[1:]:
        out.macs = None if out.macs is None or c.macs is None else out.macs + c.macs
        out.zero_ops = sorted(set(out.zero_ops) | set(c.zero_ops))
        out.formula_ops = sorted(set(out.formula_ops) | set(c.formula_ops))
        for k, v in c.by_op.items():
            out.by_op[k] = out.by_op.get(k, 0) + v
        for k, v in c.by_module.items():
            out.by_module[k] = out.by_module.get(k, 0) + v
        out.error = out.error or c.error
    return out
