"""Presets + ``--set`` overrides -> one ``RunConfig``.

Resolution order (later wins): the dataclass defaults (``DataConfig``, the detector's own
config class, ``TrainConfig``, ``EvalConfig``), then the preset tables of
``tal_bench/presets/<model>.toml`` (``[<preset>.data]``, ``[<preset>.model]``,
``[<preset>.train]``, ``[<preset>.eval]``; they hold only differences from the defaults),
then dotted overrides such as ``model.hidden=128`` or ``train.epochs=3``. Unknown keys and
wrongly typed values raise a one-line ``TalBenchError`` (``tal_bench.config.from_dict``).

Values left at ``"auto"`` (or ``None`` / ``{}`` for the post-processing fields) then take the
dataset's protocol (``data.mode``, ``data.train_subset``, ``data.test_subset``, ``eval.tiou``;
``tal_bench.data.DatasetProtocol``) and the detector's post-processing declaration (``eval.*``;
``tal_bench.models.base.PostDecl``), see :func:`apply_protocol`. The returned config holds only
resolved values, so run records and grid run keys say exactly what ran.

A detector's preset file is ``tal_bench/presets/<model>.toml``, or the file its ``ModelSpec``
names (``presets``), as an outside package does.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from tal_bench.config import (
    AUTO,
    DataConfig,
    EvalConfig,
    RunConfig,
    TrainConfig,
    from_dict,
    merge,
    overrides_to_dict,
)
from tal_bench.data import dataset_name, dataset_protocol
from tal_bench.errors import TalBenchError
from tal_bench.evaluation import tiou_preset
from tal_bench.models import get_spec
from tal_bench.postprocess import resolve_post

SECTIONS = ("data", "model", "train", "eval")
MODES = ("window", "resize", "full")
# A preset's optional hint beside its sections: seconds of one-thread full-data training on the
# embedded dataset. Grids order their cells by it (pipelines.data_scaling.cell_cost); no config.
COST_KEY = "full_train_s"


def load_presets(model: str) -> dict[str, dict[str, Any]]:
    """All preset tables of ``model`` (``{preset: {section: {key: value}}}``).

    Returns an empty dict when the model ships no preset file (a file its ``ModelSpec`` names
    must exist).
    """
    source = get_spec(model).presets
    if source is None:
        path: Any = resources.files("tal_bench") / "presets" / f"{model}.toml"
        if not path.is_file():
            return {}
    else:
        path = Path(source) if isinstance(source, str) else source
        if not path.is_file():
            raise TalBenchError(f"preset file {path} of model {model!r} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise TalBenchError(f"preset file {path} of {model!r} is not valid TOML: {exc}") from None


def available_presets(model: str) -> list[str]:
    """Names of the presets of ``model`` (sorted)."""
    return sorted(load_presets(model))


def _check_sections(table: dict[str, Any], where: str) -> None:
    for key, value in table.items():
        if key not in SECTIONS:
            raise TalBenchError(
                f"unknown config section {where}{key!r}; use one of {', '.join(SECTIONS)} "
                f"(e.g. train.epochs=3)"
            )
        if not isinstance(value, dict):
            raise TalBenchError(f"{where}{key} must be a table of keys, e.g. {key}.KEY=VALUE")


def preset_table(model: str, preset: str) -> dict[str, Any]:
    """The diff table of ``preset`` for ``model``; unknown presets list the available ones.

    A preset with ``extends = "<other preset>"`` starts from that preset's table (its own keys
    win), so a variant holds only what differs from its base.
    """
    presets = load_presets(model)
    if preset not in presets:
        known = ", ".join(sorted(presets)) or "none (the model ships no presets file)"
        raise TalBenchError(f"unknown preset {preset!r} for model {model!r}; available: {known}")
    table = dict(presets[preset])
    base = table.pop("extends", None)
    table.pop(COST_KEY, None)
    _check_sections(table, f"preset {model}.{preset}: ")
    if base is not None:
        if base == preset or presets.get(base, {}).get("extends") is not None:
            raise TalBenchError(f"preset {model}.{preset}: extends must name a base preset")
        table = merge(preset_table(model, base), table)
    return table


def resolve_run_config(
    model: str, preset: str = "cpu", overrides: list[str] | dict[str, Any] | None = None
) -> RunConfig:
    """Build the run config of ``model`` from its preset and the overrides.

    Args:
        model: registered detector name (did-you-mean error if unknown).
        preset: preset name in ``presets/<model>.toml`` (``cpu``, ``paper``, ...).
        overrides: ``["train.epochs=3", "model.hidden=128"]`` or the equivalent nested dict.

    Returns:
        The resolved ``RunConfig`` (``model`` holds the detector's config dataclass).

    Example:
        >>> cfg = resolve_run_config("dummy", "cpu", ["train.epochs=2"])
        >>> cfg.train.epochs
        2
    """
    spec = get_spec(model)
    diff = preset_table(model, preset)
    if overrides is None:
        overrides = {}
    if isinstance(overrides, list | tuple):
        overrides = overrides_to_dict(list(overrides))
    _check_sections(overrides, "")
    merged = merge(diff, overrides)
    cfg = RunConfig(
        model_name=model,
        preset=preset,
        data=from_dict(DataConfig, merged.get("data", {}), prefix="data."),
        model=from_dict(spec.config_cls, merged.get("model", {}), prefix="model."),
        train=from_dict(TrainConfig, merged.get("train", {}), prefix="train."),
        eval=from_dict(EvalConfig, merged.get("eval", {}), prefix="eval."),
    )
    return apply_protocol(cfg)


def apply_protocol(cfg: RunConfig) -> RunConfig:
    """Resolve the "auto" values of ``cfg`` (idempotent; explicit values are kept).

    * ``data.mode``: "resize" on a dataset whose protocol resizes (ActivityNet), else the
      detector's ``native_mode`` ("window" or "full");
    * ``data.train_subset`` / ``data.test_subset`` / ``eval.tiou``: the dataset's;
    * ``eval.window_merge``, ``merge_params``, ``top_k_classes``, ``max_dets_per_video``,
      ``classifier``: the detector's declaration (``tal_bench.postprocess.resolve_post``);

    then the detector's ``ModelSpec.check_config`` sees the resolved config.

    Raises:
        TalBenchError: unknown dataset or mode, bad tIoU, a post-processing value that does
            not fit the detector.
    """
    spec = get_spec(cfg.model_name)
    data = dataclasses.replace(cfg.data, dataset=dataset_name(cfg.data.dataset))
    proto = dataset_protocol(data.dataset)
    mode = proto.item_mode(spec.native_mode) if data.mode == AUTO else data.mode
    if mode not in MODES:
        raise TalBenchError(
            f"unknown data.mode {mode!r}; use 'window', 'resize', 'full' or 'auto' (the dataset's)"
        )
    data = dataclasses.replace(
        data,
        mode=mode,
        train_subset=proto.train_subset if data.train_subset == AUTO else data.train_subset,
        test_subset=proto.test_subset if data.test_subset == AUTO else data.test_subset,
    )
    ev = cfg.eval
    ev = dataclasses.replace(ev, tiou=proto.tiou if ev.tiou == AUTO else ev.tiou)
    tiou_preset(ev.tiou)  # a bad value fails here, before any training
    ev = resolve_post(ev, spec, mode)
    cfg = dataclasses.replace(cfg, data=data, eval=ev)
    if spec.check_config is not None:
        spec.check_config(cfg)
    return cfg


ALL_MODELS = "all"
NOT_IN_ALL = ("dummy",)  # the test detector: registered, but not a detector to compare


def parse_models(spec: str | Sequence[str], allow_all: bool = False) -> list[str]:
    """``"etad,actionformer"`` (or a list) -> registered model names, in the given order.

    With ``allow_all`` (``talbench profile``), ``all`` stands for every registered detector but
    ``dummy`` (those of installed plugins included) and a name given again is dropped, since
    ``all`` may overlap the names beside it. Without it (a grid), a repeated name is refused: it
    would train every cell twice.

    Raises:
        TalBenchError: an empty name, a repeated one (grids) or an unknown one (with the
            registry's suggestions).
    """
    from tal_bench.models import get_spec, list_models

    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else list(spec)
    if allow_all:
        names = [n for n in names if n]
        if not names:
            raise TalBenchError(
                f"bad --model {spec!r}: name a detector (talbench ls models), a comma list or all"
            )
    elif not names or any(not n for n in names):
        raise TalBenchError(f"bad --model {spec!r}: empty name; write e.g. etad,actionformer")
    elif len(set(names)) != len(names):
        raise TalBenchError(f"bad --model {spec!r}: a model is given twice; list each once")
    out: list[str] = []
    for name in names:
        if allow_all and name == ALL_MODELS:
            found = [m for m in list_models() if m not in NOT_IN_ALL]
        else:
            found = [get_spec(name).name]  # unknown: one line naming the registered models
        out += [m for m in found if m not in out]
    return out
