"""Self-describing checkpoints: weights + resolved config + epoch + library versions.

Everything in the file is a tensor or a plain JSON-like value, so it loads with
``torch.load(weights_only=True)``: opening a checkpoint never runs pickled code.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tal_bench.errors import TalBenchError

CHECKPOINT_VERSION = 1


def _versions() -> dict[str, str]:
    from tal_bench import __version__ as tal_bench_version

    return {
        "tal_bench": str(tal_bench_version),
        "torch": str(torch.__version__),
        "numpy": str(np.__version__),
        "python": platform.python_version(),
    }


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    config: dict[str, Any],
    epoch: int,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model``'s state dict with everything needed to rebuild and trust it.

    Args:
        path: output file (``.pt``); parent folders are created.
        model: the trained model (its ``state_dict`` is stored on CPU).
        config: the resolved run config as a JSON-able dict (``tal_bench.config.to_dict``).
        epoch: number of completed epochs.
        extra: more JSON-able metadata (e.g. ``input_dim``, ``num_classes``, ``model_name``).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    # A JSON round trip turns tuples into lists and fails loudly on non-plain values.
    meta = json.loads(json.dumps({"config": config, "extra": extra or {}}))
    payload = {
        "checkpoint_version": CHECKPOINT_VERSION,
        "state_dict": state,
        "config": meta["config"],
        "epoch": int(epoch),
        "versions": _versions(),
        **meta["extra"],
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Raises:
        TalBenchError: the file is missing, is not a checkpoint, or has another version.
    """
    path = Path(path)
    if not path.is_file():
        raise TalBenchError(f"checkpoint {path} does not exist; pass the checkpoint.pt of a run")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not our checkpoint"
        raise TalBenchError(f"{path} is not a readable tal-bench checkpoint ({exc})") from None
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise TalBenchError(f"{path} is not a tal-bench checkpoint (no state_dict)")
    version = payload.get("checkpoint_version")
    if version != CHECKPOINT_VERSION:
        raise TalBenchError(
            f"{path} has checkpoint version {version}, this tal-bench reads "
            f"{CHECKPOINT_VERSION}; retrain or use the matching tal-bench version"
        )
    return payload
