"""Video-level class scores for class-agnostic detectors, and their fusion with proposals.

ETAD (like BMN and G-TAD) outputs class-agnostic proposals; the paper labels them with an
external video-level classifier (UntrimmedNet on THUMOS-14, the CUHK classifier on
ActivityNet): every proposal becomes ``top_k`` detections, one per top-scoring class of its
video, scored ``proposal_score x class_score``. Two sources of class scores are supported:

* **A score file** the user already has (``eval.classifier = PATH``), one of:

  - CUHK JSON: ``{"class": [K names], "results": {video_id: [K scores]}}``
    (``cuhk_val_simp_7.json``); ids match with or without ActivityNet's ``v_`` prefix.
  - plain JSON: ``{video_id: {class_name: score}}``; classes absent from a video score 0.
  - NumPy: ``scores.npy`` holding a ``(V, K_file)`` float array plus a sidecar ``scores.json``
    with the rows (``"video_ids": [V ids]``, or ``"index": "suffix"`` meaning row = the id's
    trailing number - 1, as UntrimmedNet's ``uNet_test.npy``) and the columns
    (``"classes": [K_file names]``, or ``"columns": {class_name: column}``).

* **An internal classifier** trained inside the harness when no file is given
  (``"internal-mlp"``): each video's features are pooled over time (max, mean and standard
  deviation, concatenated), standardised with the training statistics, and fed to a 2-layer
  MLP trained with multi-label BCE on the classes present in each training video. It sees
  exactly the training videos the detector sees (same subset, fraction and slice).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tal_bench.errors import TalBenchError
from tal_bench.types import Detections

INTERNAL = "internal-mlp"
NONE_CLASS_AWARE = "none (class-aware model)"


@dataclass
class VideoClassifierConfig:
    # Chosen on synthetic-thumos14 (train on val, top-1 / top-2 accuracy of the main test class):
    # max+mean pooling, 256 wide, 100 epochs: 0.59 / 0.77; adding the std and these values:
    # 0.68 / 0.83.
    hidden: int = 512  # MLP hidden width
    dropout: float = 0.5  # dropout on the hidden layer
    epochs: int = 200  # full passes over the training videos
    batch_size: int = 64  # videos per step
    lr: float = 1e-3  # Adam learning rate
    weight_decay: float = 1e-3


# ---------------------------------------------------------------------- internal classifier


def pool_video(feats: np.ndarray) -> np.ndarray:
    """(T, C) snippet features -> (3C,) [max, mean, standard deviation over time]."""
    feats = np.asarray(feats, dtype=np.float32)
    return np.concatenate([feats.max(axis=0), feats.mean(axis=0), feats.std(axis=0)])


class VideoClassifier(nn.Module):
    """Standardise -> Linear -> ReLU -> Dropout -> Linear: (B, 3C) -> (B, K) logits."""

    def __init__(self, in_dim: int, num_classes: int, cfg: VideoClassifierConfig) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.net = nn.Sequential(
            nn.Linear(in_dim, cfg.hidden),
            nn.ReLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden, num_classes),
        )

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net((pooled - self.mean) / self.std)  # (B, K)


def train_video_classifier(
    pooled: np.ndarray,
    targets: np.ndarray,
    cfg: VideoClassifierConfig,
    seed: int = 0,
) -> VideoClassifier:
    """Fit the MLP on pooled features.

    Args:
        pooled: (V, 3C) pooled training-video features.
        targets: (V, K) multi-hot class presence (1 = the class occurs in the video).
        cfg: classifier hyperparameters.
        seed: seeds the initialisation and the batch order (global RNG untouched).

    Returns:
        The trained classifier, in eval mode, on CPU.
    """
    x = torch.as_tensor(pooled, dtype=torch.float32)  # (V, 3C)
    y = torch.as_tensor(targets, dtype=torch.float32)  # (V, K)
    threads = torch.get_num_threads()
    # The MLP is tiny: extra intra-op threads only add synchronisation (10x slower on a busy
    # 2-core machine), so it always trains on one thread.
    torch.set_num_threads(1)
    try:
        return _fit_mlp(x, y, cfg, seed)
    finally:
        torch.set_num_threads(threads)


def _fit_mlp(
    x: torch.Tensor, y: torch.Tensor, cfg: VideoClassifierConfig, seed: int
) -> VideoClassifier:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VideoClassifier(x.shape[1], y.shape[1], cfg)
        model.mean.copy_(x.mean(dim=0))
        model.std.copy_(x.std(dim=0, unbiased=False).clamp(min=1e-6))
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        model.train()
        for _ in range(cfg.epochs):
            for idx in torch.randperm(len(x)).split(cfg.batch_size):
                loss = F.binary_cross_entropy_with_logits(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return model.eval()


def internal_class_scores(
    load_features: Callable[[str], np.ndarray],
    train_ids: list[str],
    train_labels: list[list[int]],
    test_ids: list[str],
    num_classes: int,
    cfg: VideoClassifierConfig | None = None,
    seed: int = 0,
    pooled: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Train the internal classifier on ``train_ids`` and score ``test_ids``.

    Args:
        load_features: video id -> (T, C) features.
        train_ids: training videos (the detector's training subset).
        train_labels: class ids present in each training video.
        test_ids: videos to score.
        num_classes: K.
        cfg: classifier hyperparameters (defaults when None).
        seed: training seed.
        pooled: video id -> ``pool_video`` of its features, for videos already pooled (a grid
            pools each video once); the others are loaded and pooled here.

    Returns:
        ``{video_id: (K,) sigmoid scores}`` for every test video.
    """
    if not train_ids:
        raise TalBenchError("the internal video classifier needs at least one training video")
    cfg = cfg or VideoClassifierConfig()
    done = pooled or {}

    def pool(video_id: str) -> np.ndarray:
        return done[video_id] if video_id in done else pool_video(load_features(video_id))

    train_pooled = np.stack([pool(v) for v in train_ids])  # (V, 3C)
    targets = np.zeros((len(train_ids), num_classes), dtype=np.float32)  # (V, K)
    for row, labels in enumerate(train_labels):
        targets[row, list(labels)] = 1.0
    model = train_video_classifier(train_pooled, targets, cfg, seed)
    test_pooled = torch.as_tensor(np.stack([pool(v) for v in test_ids]))
    with torch.no_grad():
        probs = torch.sigmoid(model(test_pooled)).numpy().astype(np.float64)  # (V_test, K)
    return dict(zip(test_ids, probs, strict=True))


# ---------------------------------------------------------------------- score files


def _match_id(video_id: str, available: dict[str, int]) -> int | None:
    for candidate in (video_id, f"v_{video_id}", video_id.removeprefix("v_")):
        if candidate in available:
            return available[candidate]
    return None


def _columns(names: list[str], classes: list[str], path: Path) -> list[int]:
    index = {name: i for i, name in enumerate(names)}
    missing = [c for c in classes if c not in index]
    if missing:
        raise TalBenchError(
            f"classifier file {path} has no scores for class(es) {', '.join(missing[:5])}; "
            "its class names must match the dataset's"
        )
    return [index[c] for c in classes]


def _select(
    matrix: np.ndarray, rows: dict[str, int], cols: list[int], video_ids: list[str], path: Path
) -> dict[str, np.ndarray]:
    out, missing = {}, []
    for vid in video_ids:
        row = _match_id(vid, rows)
        if row is None or row >= len(matrix):
            missing.append(vid)
        else:
            out[vid] = np.asarray(matrix[row], dtype=np.float64)[cols]
    if missing:
        raise TalBenchError(
            f"classifier file {path} has no scores for {len(missing)} of {len(video_ids)} test "
            f"videos (e.g. {missing[0]!r}); use the score file of this dataset's test split"
        )
    return out


def _load_json_scores(path: Path, classes: list[str], video_ids: list[str]) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TalBenchError(f"classifier file {path} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and "results" in data and "class" in data:  # CUHK
        names, results = list(data["class"]), data["results"]
        cols = _columns(names, classes, path)
        rows = {vid: i for i, vid in enumerate(results)}
        matrix = [np.asarray(v, dtype=np.float64) for v in results.values()]
        return _select(np.asarray(matrix), rows, cols, video_ids, path)
    if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()):
        rows = {vid: i for i, vid in enumerate(data)}
        matrix = np.array([[float(d.get(c, 0.0)) for c in classes] for d in data.values()])
        return _select(matrix, rows, list(range(len(classes))), video_ids, path)
    raise TalBenchError(
        f"classifier file {path}: expected CUHK JSON {{'class': [...], 'results': {{...}}}} or "
        "{video_id: {class: score}}"
    )


def _suffix_rows(video_ids: list[str]) -> dict[str, int]:
    rows = {}
    for vid in video_ids:
        match = re.search(r"(\d+)$", vid)
        if match:
            rows[vid] = int(match.group(1)) - 1
    return rows


def _load_npy_scores(path: Path, classes: list[str], video_ids: list[str]) -> dict:
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        raise TalBenchError(
            f"classifier file {path} needs a sidecar {sidecar.name} with 'video_ids' (or "
            "'index': 'suffix') and 'classes' (or 'columns': {class: column})"
        )
    meta = json.loads(sidecar.read_text(encoding="utf-8"))
    matrix = np.load(path, allow_pickle=False)  # (V, K_file)
    if matrix.ndim != 2:
        raise TalBenchError(f"classifier file {path} must hold a 2-D (videos, classes) array")
    if "columns" in meta:
        _columns(list(meta["columns"]), classes, path)  # every class needs a column
        cols = [int(meta["columns"][c]) for c in classes]
    elif "classes" in meta:
        cols = _columns(list(meta["classes"]), classes, path)
    else:
        raise TalBenchError(f"{sidecar} needs 'classes' or 'columns'")
    if meta.get("index") == "suffix":
        rows = _suffix_rows(video_ids)
    elif "video_ids" in meta:
        rows = {vid: i for i, vid in enumerate(meta["video_ids"])}
    else:
        raise TalBenchError(f"{sidecar} needs 'video_ids' or 'index': 'suffix'")
    return _select(matrix, rows, cols, video_ids, path)


def load_class_scores(
    path: str | Path, classes: list[str], video_ids: list[str]
) -> dict[str, np.ndarray]:
    """Read a video-level score file (formats in the module docstring).

    Args:
        path: the score file (``.json`` or ``.npy`` with its ``.json`` sidecar).
        classes: the dataset's class names; the result's columns follow this order.
        video_ids: the videos that need scores (every one must be in the file).

    Returns:
        ``{video_id: (K,) scores}`` in the order of ``classes``.
    """
    path = Path(path)
    if not path.is_file():
        raise TalBenchError(
            f"classifier file {path} does not exist; set eval.classifier to a score file, "
            "'internal' or 'auto'"
        )
    if path.suffix == ".npy":
        return _load_npy_scores(path, classes, video_ids)
    return _load_json_scores(path, classes, video_ids)


# ---------------------------------------------------------------------- fusion


def fuse_classes(
    proposals: Detections,
    class_scores: dict[str, np.ndarray],
    classes: list[str],
    top_k: int,
) -> Detections:
    """Give class-agnostic proposals the top-k classes of their video.

    Each proposal of video v becomes ``min(top_k, K)`` detections, one per class c among the
    top-k of ``class_scores[v]``, scored ``proposal_score x class_scores[v][c]``.

    Args:
        proposals: detections in seconds; their labels are ignored.
        class_scores: ``{video_id: (K,) scores}`` covering every video of ``proposals``.
        classes: class names (index = column of the score vectors).
        top_k: classes per proposal (ETAD/BMN: 2).

    Returns:
        The class-aware detections (``len(proposals) x min(top_k, K)`` rows).
    """
    if top_k < 1:
        raise TalBenchError(f"eval.top_k_classes must be >= 1, got {top_k}")
    k = min(top_k, len(classes))
    none_i, none_f = np.zeros(0, dtype=np.int64), np.zeros(0)  # so that no proposals give none
    parts: list[tuple[np.ndarray, ...]] = [(none_i, none_f, none_f, none_i, none_f)]
    for v in np.unique(proposals.video_idx):
        sel = np.flatnonzero(proposals.video_idx == v)  # (P,)
        cls = np.asarray(class_scores[proposals.video_ids[v]], dtype=np.float64)  # (K,)
        top = np.argsort(-cls, kind="stable")[:k]  # (k,)
        scores = proposals.scores[sel][:, None] * cls[top][None, :]  # (P, k)
        parts.append(
            (
                np.full(scores.size, v, dtype=np.int64),
                np.repeat(proposals.t_start_s[sel], k),
                np.repeat(proposals.t_end_s[sel], k),
                np.tile(top, len(sel)),
                scores.reshape(-1),
            )
        )
    cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
    return Detections(*cols, video_ids=proposals.video_ids, classes=list(classes))
