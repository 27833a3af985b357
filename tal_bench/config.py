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
        # TOML has no null: a preset writes "none" for an optional number (no clipping)
        if type(None) in args and str not in args and str(value).lower() == "none":
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
        if value is None:  # --set parses none as null; a text field takes it as the word
            return "none"
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
    except OSError as exc:  # a folder, no permission, an I/O error
        raise TalBenchError(f"cannot read config file {path} ({exc.strerror or exc})") from None


def config_hash(data: Any, length: int = 12) -> str:
    """Stable short hash of a JSON-able value (sorted keys)."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


# --------------------------------------------------------------------------------------
# The run configuration shared by `train`, the grids and `profile`. Model hyperparameters
# live in each detector's own dataclass (ModelSpec.config_cls); presets in
# tal_bench/presets/<model>.toml hold only the differences from these defaults.
# --------------------------------------------------------------------------------------


AUTO = "auto"  # a config value meaning "the dataset's" / "the detector's", resolved per run
# ETAD's sampling strategies (DPS over the proposal map, EGS over the snippets), here so that the
# sampling-ratio grid checks its options without importing the models
SAMPLING_STRATEGIES = ("random", "grid", "block")


@dataclasses.dataclass
class DataConfig:
    # registered dataset name, or a folder in ActionFormer's layout (tal_bench.data.folder)
    dataset: str = "synthetic-thumos14"
    root: str | None = None  # dataset directory; None = the dataset's default / cache
    # feature geometry; None = the dataset's (a folder's dataset.toml, a registered default)
    fps: float | None = None  # frames per second (a video's own fps in the annotations wins)
    feat_stride: int | None = None  # frames between consecutive features
    clip_len: int | None = None  # frames per feature clip
    # "auto" = the dataset's protocol: "resize" for ActivityNet-style datasets, else the
    # detector's native choice ("window" sliding windows or "full" whole videos); or name one
    mode: str = AUTO
    window: int = 128  # window length in feature steps ("window" mode)
    window_stride: int = 64  # window stride in feature steps (overlap 0.5 at 128)
    test_window_stride: int | None = None  # stride of evaluation windows; None = window_stride
    window_min_inside: float = 0.9  # a GT segment is kept in a window when this much is inside
    resize_len: int = 128  # fixed length ("resize" mode)
    max_len: int = 2304  # random truncation length in feature steps ("full" mode)
    downsample: int = 1  # keep every k-th feature step (ActionFormer's downsample_rate)
    train_subset: str = AUTO  # "auto" = the dataset's (THUMOS trains on "val", ANet on "train")
    test_subset: str = AUTO  # "auto" = the dataset's (THUMOS "test", ANet "val")
    fraction: float = 100.0  # percent of training videos (1-100)
    slice: int = 0  # which random draw of that fraction
    # how the fraction is drawn (tal_bench.data.fractions): "uniform" (the study's: uniform,
    # re-drawn until every class appears) | "stratified" (each class's share kept)
    draw: str = "uniform"
    nested: bool = False  # True: the p % draw holds every smaller draw of the same slice
    num_workers: int = 0  # DataLoader workers

    def stride(self, train: bool) -> int:
        """Window stride of training (``window_stride``) or evaluation items."""
        if train or self.test_window_stride is None:
            return self.window_stride
        return self.test_window_stride


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 8
    # "epochs": train `epochs` passes over the drawn videos (the study's); "steps": train as many
    # optimizer steps as `epochs` passes over all training videos take, schedule included
    budget: str = "epochs"
    batch_size: int = 16
    optimizer: str = "adam"  # "adam" | "adamw" | "sgd"
    lr: float = 1e-4
    encoder_lr: float = 1e-6  # video encoder of end-to-end models (ETAD: 1e-6, detector 1e-3)
    weight_decay: float = 1e-4
    schedule: str = "multistep"  # "multistep" | "cosine" | "constant"
    milestones: tuple[int, ...] = (5,)  # epochs (multistep)
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    lr_min: float = 0.0  # floor of the cosine schedule (ActionFormer's eta_min 1e-8)
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
    tiou: str = AUTO  # "auto" = the dataset's | "thumos" | "anet" | comma list of thresholds
    dedup: bool = False  # ActionFormer GT de-duplication
    # video-level classifier of class-agnostic detectors: "internal" | path to a score file;
    # "none" for class-aware ones; "auto" = "internal" or "none" as the detector needs
    classifier: str = AUTO
    # videos the internal classifier trains on: "fraction" (the detector's draw) | "all" (every
    # training video: fixed external scores, as the ETAD paper's)
    classifier_data: str = "fraction"
    # The fields below default to the detector's declaration (ModelSpec.post); see
    # tal_bench.postprocess. None / "auto" / {} = "the detector's".
    top_k_classes: int | None = None  # classes fused per proposal (ETAD/BMN: top-2)
    max_dets_per_video: int | None = None  # cap per video after merging and fusion
    window_merge: str = AUTO  # rule merging a video's windows (window mode only); "none"
    merge_params: dict[str, Any] = dataclasses.field(default_factory=dict)  # that rule's


@dataclasses.dataclass
class RunConfig:
    model_name: str = "etad"
    preset: str = "cpu"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: Any = None  # the detector's own config dataclass (ModelSpec.config_cls)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
