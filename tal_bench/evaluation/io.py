"""Prediction files <-> ``Detections``.

Read:
* the official results JSON ``{"results": {video_id: [{"segment": [s, e], "label": name,
  "score": x}]}}`` (``version`` / ``external_data`` are optional);
* ActionFormer-style events with an integer ``label_id`` (and ``score`` or ``scores``), under
  ``results`` or ``database`` (a list per video, or ``{"annotations": [...]}``); ids are mapped
  through the GT class list (index = id);
* a CSV with the columns ``video-id,t-start,t-end,label,score`` (ActionFormer's result table);
  an all-integer ``label`` column is read as class ids.

Every segment must have end > start and finite numbers: zero-length or reversed predictions make
the official tIoU NaN (0/0 in ``segment_iou``), which counts as a match: ``eval_detection.py``
skips a GT only when ``tiou < threshold``, never true for NaN (activitynet/ActivityNet).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tal_bench.data.annotations import read_json
from tal_bench.errors import TalBenchError
from tal_bench.runtime import atomic_write_text
from tal_bench.types import Detections

CSV_COLUMNS = ("video-id", "t-start", "t-end", "label", "score")


def make_detections(
    video_ids: Any, t_start_s: Any, t_end_s: Any, labels: Any, scores: Any
) -> Detections:
    """Build ``Detections`` from five equally long sequences, names per row (as files hold them).

    Args:
        video_ids: (M,) video ids.
        t_start_s: (M,) starts in seconds.
        t_end_s: (M,) ends in seconds.
        labels: (M,) class names.
        scores: (M,) confidences.

    Returns:
        The ``Detections``; its ``video_ids`` and ``classes`` in order of first appearance.
    """
    video_idx, video_names = _factorize(video_ids)
    label_idx, label_names = _factorize(labels)
    dets = Detections(
        video_idx=video_idx,
        t_start_s=np.asarray(t_start_s, dtype=np.float64).reshape(-1),
        t_end_s=np.asarray(t_end_s, dtype=np.float64).reshape(-1),
        label_idx=label_idx,
        scores=np.asarray(scores, dtype=np.float64).reshape(-1),
        video_ids=video_names,
        classes=label_names,
    )
    fields = (dets.video_idx, dets.t_start_s, dets.t_end_s, dets.label_idx, dets.scores)
    if len({len(f) for f in fields}) != 1:
        raise TalBenchError(
            "detections: video_ids, starts, ends, labels and scores differ in length"
        )
    return dets


def _factorize(values: Any) -> tuple[np.ndarray, list[str]]:
    """(N,) int64 codes of ``values`` as strings and the distinct strings, first appearance
    first: ``pandas.factorize`` without importing pandas, which alone costs more than a whole
    THUMOS evaluation (``talbench evaluate`` starts in well under a second)."""
    items = np.asarray(values, dtype=object).astype(str).tolist()
    uniques = list(dict.fromkeys(items))
    index = {value: i for i, value in enumerate(uniques)}
    return np.fromiter(map(index.__getitem__, items), np.int64, len(items)), uniques


def row_names(dets: Detections) -> tuple[np.ndarray, np.ndarray]:
    """(M,) video id and (M,) class name of every row (label -1 -> "")."""
    videos = np.asarray(dets.video_ids, dtype=object)
    return videos[dets.video_idx], np.asarray([*dets.classes, ""], dtype=object)[dets.label_idx]


def load_predictions(
    path: str | Path, classes: list[str] | None = None, keep_zero_length: bool = False
) -> Detections:
    """Read a prediction file (JSON or CSV, see the module docstring).

    Args:
        path: the file.
        classes: the GT class list, needed only when labels are integer ids.
        keep_zero_length: accept end == start (never end < start). The official
            ``sample_detection_prediction.json`` copies the 3 zero-length ANet validation GT
            segments; it scores 1.0 only if they are kept, matching through NaN tIoU.

    Returns:
        ``Detections`` in file order.

    Raises:
        TalBenchError: missing/malformed file, unknown layout, bad ids or degenerate segments.
    """
    path = Path(path)
    if not path.is_file():
        raise TalBenchError(f"prediction file {path} does not exist; check the path")
    if path.suffix.lower() == ".csv":
        dets = _read_csv(path, classes)
    else:
        dets = _read_json_predictions(path, classes)
    check_detections(dets, str(path), keep_zero_length)
    return dets


def check_detections(
    dets: Detections, where: str = "detections", keep_zero_length: bool = False
) -> None:
    """Raise a one-line TalBenchError on non-finite values or segments with end <= start.

    Args:
        dets: the detections.
        where: the source, for the message.
        keep_zero_length: only reject end < start.
    """
    finite = np.isfinite(dets.t_start_s) & np.isfinite(dets.t_end_s) & np.isfinite(dets.scores)
    if not finite.all():
        first = dets.video_ids[dets.video_idx[np.flatnonzero(~finite)[0]]]
        raise TalBenchError(
            f"{where}: {int((~finite).sum())} predictions have a non-finite start, end or score "
            f"(first in video {first!r}); fix or drop them"
        )
    bad = dets.t_end_s < dets.t_start_s if keep_zero_length else dets.t_end_s <= dets.t_start_s
    if bad.any():
        first = dets.video_ids[dets.video_idx[np.flatnonzero(bad)[0]]]
        rel = "<" if keep_zero_length else "<="
        raise TalBenchError(
            f"{where}: {int(bad.sum())} predictions have end {rel} start (first in video "
            f"{first!r}); drop or fix them (zero-length segments give NaN tIoU, which the "
            "official code counts as a match; keep_zero_length / --keep-zero-length keeps them)"
        )


def _read_json_predictions(path: Path, classes: list[str] | None) -> Detections:
    data = read_json(path, "prediction file")
    key = next((k for k in ("results", "database") if isinstance(data, dict) and k in data), None)
    if key is None or not isinstance(data[key], dict):
        found = (
            ", ".join(map(str, list(data)[:5])) if isinstance(data, dict) else type(data).__name__
        )
        raise TalBenchError(
            f"prediction file {path} has no 'results' object (found: {found}); expected "
            '{"results": {video_id: [{"segment": [s, e], "label": ..., "score": ...}]}}'
        )
    rows: list[tuple[str, float, float, str, float]] = []
    for vid, events in data[key].items():
        if isinstance(events, dict):
            events = events.get("annotations", [])
        if not isinstance(events, list):
            raise TalBenchError(f"prediction file {path}: video {vid!r} must map to a list")
        vid = str(vid)
        rows += [
            _plain_row(vid, event) or _event_row(vid, i, event, classes, path)
            for i, event in enumerate(events)
        ]
    return make_detections(*([row[i] for row in rows] for i in range(5)))


_NUMBERS = (int, float)


def _plain_row(vid: str, event: Any) -> tuple[str, float, float, str, float] | None:
    """The row of an event in the usual form (string label, numeric segment and score), else
    None: :func:`_event_row` then reads the other forms and words any error. The common case
    costs no message formatting, which halves the reading time of a 43,000-prediction file."""
    try:
        start, end = event["segment"]
        score, label = event["score"], event["label"]
    except (KeyError, TypeError, ValueError):
        return None
    numbers = type(start) in _NUMBERS and type(end) in _NUMBERS and type(score) in _NUMBERS
    if numbers and type(label) is str:
        return vid, float(start), float(end), label, float(score)
    return None


def _event_row(
    vid: str, i: int, event: Any, classes: list[str] | None, path: Path
) -> tuple[str, float, float, str, float]:
    where = f"prediction file {path}: video {vid!r} prediction {i}"
    if not isinstance(event, dict):
        raise TalBenchError(f"{where} is not an object")
    seg = event.get("segment")
    if not isinstance(seg, list | tuple) or len(seg) != 2:
        raise TalBenchError(f"{where} needs 'segment': [start_s, end_s], got {seg!r}")
    score = event.get("score", event.get("scores"))
    label = event.get("label")
    if not isinstance(label, str):
        label = _class_name(event.get("label_id", label), classes, where)
    return vid, _num(seg[0], where), _num(seg[1], where), label, _num(score, where)


def _num(value: Any, where: str) -> float:
    if isinstance(value, bool) or value is None:
        raise TalBenchError(f"{where}: expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TalBenchError(f"{where}: expected a number, got {value!r}") from None


def _class_name(label_id: Any, classes: list[str] | None, where: str) -> str:
    if isinstance(label_id, float) and label_id.is_integer():
        label_id = int(label_id)
    if not isinstance(label_id, int | np.integer) or isinstance(label_id, bool):
        raise TalBenchError(f"{where} needs a string 'label' or an integer 'label_id'")
    if classes is None:
        raise TalBenchError(
            f"{where} has an integer label id; pass the GT annotations (--gt) to map ids to names"
        )
    if not 0 <= int(label_id) < len(classes):
        raise TalBenchError(
            f"{where}: label id {int(label_id)} is outside the GT classes 0..{len(classes) - 1}"
        )
    return classes[int(label_id)]


def _read_csv(path: Path, classes: list[str] | None) -> Detections:
    import pandas as pd  # CSV predictions only: the JSON path starts without pandas

    try:
        df = pd.read_csv(path, dtype={"video-id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise TalBenchError(f"prediction file {path} is not a readable CSV: {exc}") from None
    missing = [c for c in CSV_COLUMNS if c not in df.columns]
    if missing:
        raise TalBenchError(
            f"prediction file {path} lacks column(s) {', '.join(missing)}; "
            f"expected the header {','.join(CSV_COLUMNS)}"
        )
    labels = df["label"]
    if pd.api.types.is_integer_dtype(labels):
        where = f"prediction file {path}"
        names = [_class_name(int(x), classes, where) for x in labels.tolist()]
    else:
        names = labels.astype(str).tolist()
    try:
        return make_detections(
            df["video-id"], df["t-start"], df["t-end"], names, df["score"].astype(float)
        )
    except ValueError as exc:
        raise TalBenchError(
            f"prediction file {path}: a number column is not numeric: {exc}"
        ) from None


def write_predictions_json(dets: Detections, path: str | Path, version: str = "tal-bench") -> None:
    """Write ``dets`` as the official results JSON (atomic), videos in first-appearance order.

    Args:
        dets: the detections.
        path: output file.
        version: the ``version`` field.
    """
    if not np.isfinite(dets.scores).all():
        raise TalBenchError("write_predictions_json: scores must be finite")
    results: dict[str, list[dict[str, Any]]] = {}
    videos, labels = row_names(dets)
    for vid, start, end, label, score in zip(
        videos.tolist(),
        dets.t_start_s.tolist(),
        dets.t_end_s.tolist(),
        labels.tolist(),
        dets.scores.tolist(),
        strict=True,
    ):
        results.setdefault(vid, []).append(
            {"label": label, "score": score, "segment": [start, end]}
        )
    payload = {"version": version, "results": results, "external_data": {"used": False}}
    atomic_write_text(path, json.dumps(payload))
