"""Presets + ``--set`` overrides -> one ``RunConfig``.

Resolution order (later wins): the dataclass defaults (``DataConfig``, the detector's own
config class, ``TrainConfig``, ``EvalConfig``), then the preset tables of
``tal_bench/presets/<model>.toml`` (``[<preset>.data]``, ``[<preset>.model]``,
``[<preset>.train]``, ``[<preset>.eval]``; they hold only differences from the defaults),
then dotted overrides such as ``model.hidden=128`` or ``train.epochs=3``. Unknown keys and
wrongly typed values raise a one-line ``TalBenchError`` (``tal_bench.config.from_dict``).
"""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

from tal_bench.config import (
    DataConfig,
    EvalConfig,
    RunConfig,
    TrainConfig,
    from_dict,
    merge,
    overrides_to_dict,
)
from tal_bench.errors import TalBenchError
from tal_bench.models import get_spec

SECTIONS = ("data", "model", "train", "eval")


def load_presets(model: str) -> dict[str, dict[str, Any]]:
    """All preset tables of ``model`` (``{preset: {section: {key: value}}}``).

    Returns an empty dict when the model ships no preset file.
    """
    path = resources.files("tal_bench") / "presets" / f"{model}.toml"
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise TalBenchError(f"preset file presets/{model}.toml is not valid TOML: {exc}") from None


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
    return RunConfig(
        model_name=model,
        preset=preset,
        data=from_dict(DataConfig, merged.get("data", {}), prefix="data."),
        model=from_dict(spec.config_cls, merged.get("model", {}), prefix="model."),
        train=from_dict(TrainConfig, merged.get("train", {}), prefix="train."),
        eval=from_dict(EvalConfig, merged.get("eval", {}), prefix="eval."),
    )
