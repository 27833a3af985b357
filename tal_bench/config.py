"""Typed dataclass configs: strict construction from dicts/TOML, dotted overrides, hashing.

Unknown keys are errors (a typo in a preset or a ``--set`` must never be silently ignored),
and override values are parsed against the declared field type.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from tal_bench.errors import TalBenchError

C = TypeVar("C")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _unknown_key(key: str, known: list[str], where: str) -> TalBenchError:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return TalBenchError(
        f"unknown config key {(where + key)!r}{hint}; valid keys: {', '.join(sorted(known))}"
    )


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert ``value`` to the annotated type ``tp`` (JSON/TOML-like values)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except TalBenchError as exc:
                errors.append(str(exc))
        raise TalBenchError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise TalBenchError(f"{where}: expected a table of keys, got {value!r}")
        return from_dict(tp, value, prefix=f"{where}.")
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise TalBenchError(f"{where}: expected a list, got {value!r}")
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise TalBenchError(f"{where}: expected a table, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        if value not in args:
            raise TalBenchError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TalBenchError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TalBenchError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise TalBenchError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise TalBenchError(f"{where}: expected a string, got {value!r}")
    return value


def from_dict(cls: type[C], data: dict[str, Any], prefix: str = "") -> C:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise TalBenchError."""
    ftypes = _field_types(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in ftypes:
            raise _unknown_key(key, list(ftypes), prefix)
        kwargs[key] = _coerce(value, ftypes[key], f"{prefix}{key}")
    return cls(**kwargs)


def merge(base: dict[str, Any], diff: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: ``diff`` wins; nested tables are merged, not replaced."""
    out = dict(base)
    for key, value in diff.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_value(text: str) -> Any:
    """Parse an override value: JSON/TOML literals when they parse, else the raw string."""
    lowered = text.strip()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none", "None"):
        return None
    try:
        return json.loads(lowered)
    except json.JSONDecodeError:
        return text


def overrides_to_dict(overrides: list[str]) -> dict[str, Any]:
    """``["model.hidden=128", "train.lr=1e-3"]`` -> nested dict."""
    out: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise TalBenchError(f"bad override {item!r}: write KEY=VALUE, e.g. model.hidden=128")
        key, _, raw = item.partition("=")
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise TalBenchError(f"bad override {item!r}: the key is empty")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise TalBenchError(f"override {item!r} conflicts with another override")
        node[parts[-1]] = parse_value(raw)
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass -> plain JSON-able dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=list))


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file with a one-line error on failure."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise TalBenchError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise TalBenchError(f"config file {path} is not valid TOML: {exc}") from None


def config_hash(data: Any, length: int = 12) -> str:
    """Stable short hash of a JSON-able value (sorted keys)."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


# --------------------------------------------------------------------------------------
# The run configuration shared by `train`, the grids and `profile`. Model hyperparameters
# live in each detector's own dataclass (ModelSpec.config_cls); presets in
# tal_bench/presets/<model>.toml hold only the differences from these defaults.
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class DataConfig:
    dataset: str = "synthetic-thumos14"  # registered dataset name
    root: str | None = None  # dataset directory; None = the dataset's default / cache
    mode: str = "window"  # "window" (THUMOS sliding windows) | "resize" (ANet) | "full"
    window: int = 128  # window length in feature steps ("window" mode)
    window_stride: int = 64  # window stride in feature steps (overlap 0.5 at 128)
    resize_len: int = 128  # fixed length ("resize" mode)
    max_len: int = 2304  # random truncation length in feature steps ("full" mode)
    downsample: int = 1  # keep every k-th feature step (ActionFormer's downsample_rate)
    train_subset: str = "val"  # THUMOS trains on the validation videos
    test_subset: str = "test"
    fraction: float = 100.0  # percent of training videos (1-100)
    slice: int = 0  # which random draw of that fraction
    num_workers: int = 0  # DataLoader workers


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 8
    batch_size: int = 16
    optimizer: str = "adam"  # "adam" | "adamw" | "sgd"
    lr: float = 1e-4
    encoder_lr: float = 1e-6  # video encoder of end-to-end models (ETAD: 1e-6, detector 1e-3)
    weight_decay: float = 1e-4
    schedule: str = "multistep"  # "multistep" | "cosine" | "constant"
    milestones: tuple[int, ...] = (5,)  # epochs (multistep)
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    clip_grad_norm: float | None = 1.0  # None = no clipping
    ema: bool = False
    ema_decay: float = 0.999
    seed: int = 0
    device: str = "cpu"  # "cpu" | "cuda"
    threads: int | None = None  # torch intra-op threads; None = torch default
    deterministic: bool = True  # torch.use_deterministic_algorithms on CPU runs
    mem_probe: bool = False  # CPU: tensor peak of one extra step on a copy (train.loop)


@dataclasses.dataclass
class EvalConfig:
    tiou: str = "thumos"  # "thumos" | "anet" | comma list of thresholds
    dedup: bool = False  # ActionFormer GT de-duplication
    classifier: str = "auto"  # "auto" (internal if needed) | "internal" | path to score file
    top_k_classes: int = 2  # classes fused per proposal (ETAD/BMN: top-2)
    max_dets_per_video: int = 200
    nms_sigma: float = 0.3  # Gaussian soft-NMS sigma for the video-level merge


@dataclasses.dataclass
class RunConfig:
    model_name: str = "etad"
    preset: str = "cpu"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: Any = None  # the detector's own config dataclass (ModelSpec.config_cls)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
