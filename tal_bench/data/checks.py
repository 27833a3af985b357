"""What a dataset must satisfy before anything trains on it, and the folder check.

Annotations (:func:`check_segments`): a segment ending before it starts is refused (swapped
columns: training on it would teach the detector nonsense without a word), and so is a file
whose segments mostly lie outside their videos (the wrong unit, frames for seconds). Segments
reaching outside ``[0, duration]`` are kept as written and counted in a note: the official
evaluation scores them so, and real files have them (ActionFormer's THUMOS-14 has 30 lying after
their video's recorded end, ActivityNet-1.3 289 reaching past it); the item builder clips them
to the video and its windows. Zero-length segments (12 in ActivityNet-1.3) are kept and counted.

Features (:func:`scan_features`): for every video a readable file, a ``(T, C)`` array of
numbers with ``T, C >= 1``, one width ``C`` for all, and only finite values. Headers are read
first, so a missing or mistyped file is found before any value is read.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tal_bench.errors import TalBenchError
from tal_bench.types import Annotations

if TYPE_CHECKING:
    from tal_bench.data.datasets import TalDataset

SCAN_ROWS = 1 << 16  # rows per chunk of the NaN/inf scan (bounded memory on long videos)


def check_segments(ann: Annotations, where: str) -> list[str]:
    """Refuse reversed segments (and files whose segments mostly miss their videos); describe
    zero-length segments and segments reaching outside their video.

    Args:
        ann: the parsed annotations.
        where: the file, for messages.

    Returns:
        Notes (one line each); empty when there is nothing to say.

    Raises:
        TalBenchError: a segment with end < start, or more than half of all segments lying
            wholly outside their videos (the unit is wrong, e.g. frames read as seconds).
    """
    total = zero = partly = away = 0
    first_away = ""
    for vid, rec in ann.videos.items():
        segs = np.asarray(rec.segments_s, dtype=np.float64).reshape(-1, 2)  # (N, 2)
        reversed_ = np.flatnonzero(segs[:, 1] < segs[:, 0])
        if reversed_.size:
            i = int(reversed_[0])
            raise TalBenchError(
                f"{where}: video {vid!r} annotation {i} ends before it starts "
                f"({segs[i, 0]:g} s -> {segs[i, 1]:g} s; {reversed_.size} such in this video); "
                "swap start and end, or delete it"
            )
        total += len(segs)
        zero += int((segs[:, 1] == segs[:, 0]).sum())
        if not math.isfinite(rec.duration_s):
            continue
        outside = (segs[:, 0] > rec.duration_s) | (segs[:, 1] < 0)  # wholly
        partly += int(((segs[:, 0] < 0) | (segs[:, 1] > rec.duration_s)).sum() - outside.sum())
        if outside.any() and not first_away:
            first_away = vid
        away += int(outside.sum())
    if total and away > total / 2:
        raise TalBenchError(
            f"{where}: {away} of {total} segments lie outside their video (first in "
            f"{first_away!r}); are they in frames instead of seconds? Write them in seconds"
        )
    notes = []
    if zero:
        notes.append(f"{where}: {zero} zero-length segments (end = start) are kept")
    if partly:
        notes.append(
            f"{where}: {partly} segments reach past their video's start or end; training clips "
            "them to the video, evaluation scores them as written"
        )
    if away:
        notes.append(
            f"{where}: {away} segments lie wholly outside their video (first in "
            f"{first_away!r}; a duration in the file is too short?); training cannot use them, "
            "evaluation scores them as written"
        )
    return notes


@dataclass
class FeatureScan:
    """What :func:`scan_features` found in the feature files of some videos."""

    videos: int = 0
    feature_steps: int = 0  # sum of T
    input_dim: int | None = None
    steps_min: int | None = None
    steps_max: int | None = None
    problems: list[str] = field(default_factory=list)  # one line each (with keep_going)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON output."""
        return {k: v for k, v in self.__dict__.items() if k != "problems"}


def scan_features(
    ds: TalDataset, video_ids: Sequence[str], values: bool = True, keep_going: bool = False
) -> FeatureScan:
    """Check the feature files of ``video_ids``: present, readable, (T, C), one width, finite.

    Args:
        ds: the dataset.
        video_ids: the videos to check.
        values: also read every value and refuse NaN/inf (the whole file, in chunks).
        keep_going: record each problem in ``problems`` and go on (``datasets check``)
            instead of raising at the first.

    Raises:
        TalBenchError: the first problem, unless ``keep_going``.
    """
    scan = FeatureScan()
    missing = [v for v in video_ids if not ds.store.has(v)]
    if missing:
        _problem(
            scan,
            keep_going,
            f"{len(missing)} of {len(video_ids)} videos have no feature file in "
            f"{ds.store.path} (first: {', '.join(missing[:3])}); add them or drop those "
            "videos from the annotations",
        )
    present = [v for v in video_ids if v not in set(missing)]
    widths: dict[int, str] = {}
    shapes: dict[str, tuple[int, int]] = {}
    for vid in present:
        try:
            shapes[vid] = ds.store.shape(vid)
        except TalBenchError as exc:
            _problem(scan, keep_going, str(exc))
            continue
        widths.setdefault(shapes[vid][1], vid)
    if len(widths) > 1:
        seen = ", ".join(f"{d} ({ds.store.where(v)})" for d, v in sorted(widths.items()))
        _problem(
            scan,
            keep_going,
            f"feature widths differ in {ds.store.path}: {seen}; every video needs features "
            "of the same width C",
        )
    for vid, (steps, dim) in shapes.items():
        if values:
            try:
                _scan_values(ds, vid, steps)
            except TalBenchError as exc:
                _problem(scan, keep_going, str(exc))
                continue
        scan.videos += 1
        scan.feature_steps += steps
        scan.input_dim = dim if scan.input_dim is None else scan.input_dim
        scan.steps_min = steps if scan.steps_min is None else min(scan.steps_min, steps)
        scan.steps_max = steps if scan.steps_max is None else max(scan.steps_max, steps)
    return scan


def _scan_values(ds: TalDataset, video_id: str, steps: int) -> None:
    for start in range(0, steps, SCAN_ROWS):
        ds.load_feature_range(video_id, start, min(start + SCAN_ROWS, steps))  # checks finite


def _problem(scan: FeatureScan, keep_going: bool, message: str) -> None:
    if not keep_going:
        raise TalBenchError(message)
    scan.problems.append(message)


def check_folder(
    folder: str | Path,
    fps: float | None = None,
    feat_stride: int | None = None,
    clip_len: int | None = None,
) -> dict[str, Any]:
    """Validate a folder dataset (``tal_bench.data.folder``) and describe it.

    Checks dataset.toml, the annotation file and its segments, the protocol, the feature
    geometry and every value of every feature file; each problem is one line in ``problems``
    (the folder is usable for training only when there are none).

    Returns:
        {"folder", "problems", "notes", "protocol", "feature_meta", "features", "classes",
        "subsets": per-subset statistics as ``annotation_stats``}.
    """
    from tal_bench.data.datasets import annotation_stats, open_folder_dataset

    folder = Path(folder).expanduser()
    report: dict[str, Any] = {"folder": str(folder), "problems": [], "notes": []}
    if not folder.is_dir():
        raise TalBenchError(f"{folder} is not a folder; pass the dataset's folder")
    try:
        ds = open_folder_dataset(folder, fps, feat_stride, clip_len)
    except TalBenchError as exc:  # nothing more can be read without it
        report["problems"].append(str(exc))
        return report
    report["notes"] += ds.notes
    report["protocol"] = dataclasses.asdict(ds.protocol)
    report["feature_meta"] = dataclasses.asdict(ds.feature_meta)
    report["classes"] = list(ds.classes)
    report["subsets"] = annotation_stats(ds.annotations)["subsets"]
    ids = sorted(ds.annotations.videos)
    scan = scan_features(ds, ids, values=True, keep_going=True)
    report["problems"] += scan.problems
    report["features"] = {"path": str(ds.store.path), **scan.as_dict()}
    extra = sorted(ds.store.available() - set(ids))
    if extra:
        report["notes"].append(
            f"{len(extra)} feature files have no annotated video (first: {', '.join(extra[:3])});"
            " they are not used"
        )
    report["notes"] += _geometry_notes(ds, ids)
    return report


def _geometry_notes(ds: TalDataset, video_ids: Sequence[str]) -> list[str]:
    """A note when feature counts do not fit the durations at the stated fps and stride."""
    ratios = []
    for vid in video_ids:
        rec = ds.annotations.videos[vid]
        if not ds.store.has(vid) or not math.isfinite(rec.duration_s):
            continue
        try:
            steps = ds.num_features(vid)
        except TalBenchError:
            continue
        expected = ds.feature_meta.num_features(rec.duration_s, rec.fps)
        ratios.append(steps / expected)
    if not ratios:
        return []
    median = float(np.median(ratios))
    if 0.8 <= median <= 1.25:
        return []
    meta = ds.feature_meta
    return [
        f"the feature files hold {median:.2f}x the features the durations give at "
        f"{meta.fps:g} fps, stride {meta.feat_stride} and {meta.clip_len}-frame clips "
        "(median over videos); check fps, feat_stride and clip_len in dataset.toml"
    ]
