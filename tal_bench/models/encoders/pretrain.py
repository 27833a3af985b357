"""Snippet-classification pretraining of a video encoder, cached like the datasets.

ETAD starts end-to-end training from an encoder pretrained for action classification (TSM-R50
on Kinetics; R(2+1)D-34 with TSP on ActivityNet's training videos, HumamAlwassel/TSP); its
"ratio 0" baseline is that encoder frozen, i.e. pre-extracted features. There are no such
weights for the embedded dataset's frames, so tal-bench makes them the TSP way: the encoder
plus a linear head learns which classes are present at the centre of every snippet of the
training videos (multi-label BCE, background = no class), with BatchNorm in train mode and
nothing frozen. The detector's boundary-sensitive needs are not part of this task, which is
what end-to-end training (EGS) can then add.

The weights are cached under ``<cache>/encoders/<key>.pt`` (``$TALBENCH_CACHE``, as the
datasets), keyed by the encoder architecture, the clips folder (itself keyed by the dataset's
parameters), the subset and ``PretrainConfig``; written atomically and read with
``weights_only=True``. Training runs on one thread with a fixed seed, so the file does not
depend on the machine's core count.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tal_bench.errors import TalBenchError
from tal_bench.models.encoders.resnet import EncoderConfig, VideoEncoder

if TYPE_CHECKING:
    from tal_bench.data.frames import FramesDataset

log = logging.getLogger(__name__)
PRETRAIN_VERSION = 1  # bump when the procedure changes (it keys the cache)


@dataclass(frozen=True)
class PretrainConfig:
    epochs: int = 3  # the test snippets' classes: 63 % top-1, fg/bg AUC 0.94 (embedded data)
    batch_size: int = 64  # snippets per step
    lr: float = 1e-3  # Adam
    weight_decay: float = 1e-4
    seed: int = 0


def snippet_targets(ds: FramesDataset, video_id: str) -> np.ndarray:
    """(N, K) multi-hot: the classes whose instances cover each snippet's centre time."""
    rec = ds.annotations.videos[video_id]
    meta = ds.feature_meta
    fps = rec.fps or meta.fps
    n = ds.num_features(video_id)
    centre_s = (np.arange(n) * meta.feat_stride + meta.offset_frames) / fps  # (N,)
    index = {c: i for i, c in enumerate(ds.classes)}
    out = np.zeros((n, len(ds.classes)), dtype=np.float32)
    for (s, e), label in zip(rec.segments_s.tolist(), rec.labels, strict=True):
        out[(centre_s >= s) & (centre_s <= e), index[label]] = 1.0
    return out


def _training_set(ds: FramesDataset, subset: str) -> tuple[torch.Tensor, torch.Tensor]:
    clips, targets = [], []
    for vid in ds.video_ids(subset):
        clips.append(torch.from_numpy(ds.load_feature_range(vid, 0, ds.num_features(vid))))
        targets.append(torch.from_numpy(snippet_targets(ds, vid)))
    return torch.cat(clips), torch.cat(targets)  # (N, 3, t, H, W) uint8, (N, K)


def pretrain(
    enc_cfg: EncoderConfig, ds: FramesDataset, subset: str, cfg: PretrainConfig
) -> dict[str, Any]:
    """Train a fresh encoder on snippet classification (one thread, fixed seed).

    Returns:
        ``state_dict`` (the encoder's), ``head`` (the linear classifier), ``epoch_losses``,
        ``snippets``.
    """
    clips, targets = _training_set(ds, subset)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    # the global RNG is forked: a first run (which pretrains) trains like any later one
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            encoder = VideoEncoder(dataclasses.replace(enc_cfg, frozen_stages=-1))
            head = nn.Linear(encoder.out_dim, targets.shape[1])
            losses = _fit_classifier(encoder, head, clips, targets, cfg)
    finally:
        torch.set_num_threads(threads)
    return {"state_dict": encoder.state_dict(), "head": head, "epoch_losses": losses,
            "snippets": len(clips)}  # fmt: skip


def _fit_classifier(
    encoder: VideoEncoder, head: nn.Linear, clips: torch.Tensor, targets: torch.Tensor,
    cfg: PretrainConfig,
) -> list[float]:  # fmt: skip
    """Adam on multi-label BCE, BatchNorm in train mode; returns the mean loss per epoch."""
    encoder.norm_eval = False
    params = [*encoder.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    encoder.train()
    losses = []
    for _ in range(cfg.epochs):
        order = torch.randperm(len(clips), generator=gen)
        total = 0.0
        for lo in range(0, len(order), cfg.batch_size):
            idx = order[lo : lo + cfg.batch_size]
            logits = head(encoder(clips[idx]))  # (b, K)
            loss = F.binary_cross_entropy_with_logits(logits, targets[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(clips))
    encoder.norm_eval = True
    return losses


def cache_key(enc_cfg: EncoderConfig, ds: FramesDataset, subset: str, cfg: PretrainConfig) -> str:
    """Hash of what the pretrained weights depend on (module docstring)."""
    arch = {k: getattr(enc_cfg, k) for k in ("kind", "depth", "width", "stem_stride")}
    blob = json.dumps(
        {"v": PRETRAIN_VERSION, "arch": arch, "clips": str(Path(ds.clips.path).resolve()),
         "subset": subset, "cfg": dataclasses.asdict(cfg)},
        sort_keys=True,
    )  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def ensure_pretrained(
    enc_cfg: EncoderConfig, ds: FramesDataset, subset: str, cfg: PretrainConfig | None = None
) -> Path:
    """The cached pretrained weights for (encoder, dataset, subset), trained on first use."""
    from tal_bench.data.synthetic import cache_root

    cfg = cfg or PretrainConfig()
    path = cache_root() / "encoders" / f"{enc_cfg.kind}-{cache_key(enc_cfg, ds, subset, cfg)}.pt"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("pretraining the %s encoder on %s/%s (first use)", enc_cfg.kind, ds.name, subset)
    start = time.perf_counter()
    out = pretrain(enc_cfg, ds, subset, cfg)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
    torch.save(out["state_dict"], tmp)
    os.replace(tmp, path)  # atomic: a concurrent reader sees the old or the finished file
    info = {
        "dataset": ds.name,
        "subset": subset,
        "encoder": dataclasses.asdict(enc_cfg),
        "pretrain": dataclasses.asdict(cfg),
        "epoch_losses": out["epoch_losses"],
        "snippets": out["snippets"],
        "train_s": round(time.perf_counter() - start, 1),
    }
    path.with_suffix(".json").write_text(json.dumps(info, indent=2, sort_keys=True))
    return path


def load_weights(encoder: VideoEncoder, path: str | Path) -> None:
    """Load a state dict saved by :func:`ensure_pretrained` (or any matching one) into
    ``encoder``; a missing or mismatching file is a TalBenchError."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        encoder.load_state_dict(state)
    except (OSError, RuntimeError) as exc:
        first = str(exc).splitlines()[0]
        raise TalBenchError(
            f"cannot load encoder weights from {path}: {first}; set model.encoder.pretrained "
            "to auto, none or a matching state dict"
        ) from None
