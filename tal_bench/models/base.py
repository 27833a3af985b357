"""The detector protocol and the model spec each detector file registers.

A detector is an ``nn.Module`` with two methods:
* ``training_step(items) -> dict[str, Tensor]`` with at least ``"loss"`` (scalar, to backprop);
  other entries are detached scalars for logging.
* ``predict(items) -> list[ItemDetections]``: one per item, in the item's grid coordinates.

The trainer, the grids and the profiler only ever talk to a detector through these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import nn

from tal_bench.types import ItemDetections, VideoItem


@runtime_checkable
class Detector(Protocol):
    """What every registered detector implements (structural; subclass nn.Module)."""

    def training_step(self, items: list[VideoItem]) -> dict[str, torch.Tensor]: ...

    def predict(self, items: list[VideoItem]) -> list[ItemDetections]: ...


@torch.no_grad()
def predict_split(
    model: nn.Module, feats: torch.Tensor, mask: torch.Tensor
) -> list[ItemDetections]:
    """``model.postprocess(model.forward_dense(feats, mask), mask)`` in eval mode, no gradients.

    The ``predict`` of a detector that splits its network from its post-processing; the
    model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        return model.postprocess(model.forward_dense(feats, mask), mask)
    finally:
        model.train(was_training)


@dataclass(frozen=True)
class PostDecl:
    """A detector's inference post-processing after its own per-item ``predict``.

    ``predict`` already does what the detector does per item (ETAD: boundary filter and
    soft-NMS per window; the ActionFormer family: its own multi-class NMS per video). What
    follows it runs once, in ``tal_bench.postprocess``: detections to seconds; in window mode
    only, ``window_merge`` merges the windows of one video (a rule registered in
    ``tal_bench.postprocess.WINDOW_MERGES``, with ``merge_params``); class-agnostic detectors
    then get ``top_k_classes`` classes per proposal from a video-level classifier; finally
    every video keeps its ``max_dets_per_video`` best detections. Each field is the default of
    the ``eval`` config field of the same name (``--set eval.merge_params.sigma=0.4`` wins).
    """

    window_merge: str = "soft_nms"
    merge_params: dict[str, Any] = field(default_factory=dict)
    top_k_classes: int = 2  # class-agnostic detectors only (ETAD / BMN: top-2)
    max_dets_per_video: int = 200


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: how to build a detector and what it needs from the data.

    A detector living outside tal_bench registers the same object through the
    ``tal_bench.detectors`` entry-point group (``docs/ADDING_A_DETECTOR.md``).
    """

    name: str
    config_cls: type  # dataclass of the model's hyperparameters
    build: Callable[[Any, int, int], nn.Module]  # (model_cfg, input_dim, num_classes) -> Detector
    description: str
    class_agnostic: bool = False  # True: outputs labels -1, needs a video-level classifier
    # How it reads a dataset whose protocol keeps videos at native length (THUMOS): "window"
    # (sliding windows: ETAD, BMN, TadTR) or "full" (whole videos, random truncation in
    # training: the ActionFormer family). ActivityNet-style datasets resize for everyone.
    native_mode: Literal["window", "full"] = "window"
    post: PostDecl = field(default_factory=PostDecl)
    # The preset tables (TOML, see tal_bench.pipelines.resolve): None = tal_bench's own
    # presets/<name>.toml; an outside package passes its file, e.g.
    # importlib.resources.files("my_pkg") / "presets.toml".
    presets: Any = None
    # (RunConfig) -> None: raises TalBenchError for settings the detector cannot run with
    # (e.g. BMN's fixed window length); called when a run config is resolved.
    check_config: Callable[[Any], None] | None = None

    def __post_init__(self) -> None:
        if self.native_mode not in ("window", "full"):
            raise ValueError(f"{self.name}: native_mode must be 'window' or 'full'")
