"""Read the ActivityNet-style annotation JSON variants used by TAL codebases into ``Annotations``.

Supported layouts (all ``{"database": {video_id: {...}}}``), told apart by their fields:

* ``activitynet``: the official ActivityNet 1.3 file (``taxonomy``, bare YouTube ids, string labels,
  subsets ``training``/``validation``/``testing``).
* ``actionformer``: ActionFormer's ``thumos14.json`` (per-annotation ``label_id``, per-video
  ``fps``, subsets ``Validation``/``Test``). ``write_actionformer_json`` output reads back as this.
* ``opentad``: OpenTAD's ``thumos_14_anno.json`` (per-video ``frame`` count, ``Ambiguous`` rows).
* ``tadtr``: TadTR's file (``fps`` + ``duration``, subsets ``val``/``test``, optional ``classes``).
* ``gtad``: G-TAD's ``thumos_gt.json`` (segments stored as strings, no ``duration``).

``Ambiguous`` rows (THUMOS'14) are skipped everywhere and counted in ``Annotations.meta``.
THUMOS'14 variants: ActionFormer (happyharrycn/actionformer_release, data/thumos/annotations)
drops ``Ambiguous``; the official ``eval_detection.py`` (activitynet/ActivityNet) matches the
subset string exactly, ActionFormer lower-cases it.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tal_bench.errors import TalBenchError
from tal_bench.runtime import atomic_write_text
from tal_bench.types import Annotations, VideoRecord

AMBIGUOUS_LABEL = "Ambiguous"

_SUBSET_ALIASES = {
    "validation": "val",
    "val": "val",
    "training": "train",
    "train": "train",
    "testing": "test",
    "test": "test",
}


def normalize_subset(raw: str) -> str:
    """Map a subset name from any annotation file to ``"train"``, ``"val"`` or ``"test"``.

    Args:
        raw: the subset string as written in the file ("Validation", "training", "val", ...).

    Returns:
        "train" | "val" | "test", or the lower-cased ``raw`` for any other name.
    """
    low = str(raw).strip().lower()
    return _SUBSET_ALIASES.get(low, low)


def load_annotations(path: str | Path) -> Annotations:
    """Read an ActivityNet-style annotation JSON file (any supported variant).

    Args:
        path: the JSON file.

    Returns:
        ``Annotations`` with every video of every subset; ``meta`` holds ``version``,
        ``num_instances``, ``num_ambiguous_skipped``, ``num_videos_without_duration``.

    Raises:
        TalBenchError: missing file, malformed JSON or a layout this reader does not know.
    """
    path = Path(path)
    if not path.is_file():
        raise TalBenchError(f"annotation file {path} does not exist; check the path")
    data = read_json(path, "annotation file")
    return parse_annotations(data, path=str(path))


def read_json(path: Path, what: str) -> Any:
    """Decode a JSON file; malformed JSON -> one-line TalBenchError with line and column.

    Args:
        path: the file.
        what: how to name it in messages ("annotation file").

    Returns:
        The decoded object.
    """
    try:
        with path.open("r", encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise TalBenchError(
            f"{what} {path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except UnicodeDecodeError:
        raise TalBenchError(f"{what} {path} is not UTF-8 text; is it a JSON file?") from None
    except OSError as exc:  # a folder, no permission, an I/O error
        raise TalBenchError(f"cannot read {what} {path} ({exc.strerror or exc})") from None


def parse_annotations(data: Any, path: str | None = None) -> Annotations:
    """Parse an already-loaded annotation dict (see ``load_annotations``).

    Args:
        data: the decoded JSON object.
        path: where it came from, for messages and ``Annotations.path``.

    Returns:
        The parsed ``Annotations``.
    """
    where = path or "annotation data"
    if not isinstance(data, dict) or not isinstance(data.get("database"), dict):
        keys = (
            ", ".join(map(str, list(data)[:5])) if isinstance(data, dict) else type(data).__name__
        )
        raise TalBenchError(
            f"{where} has no 'database' key (found: {keys}); expected an ActivityNet-style file "
            '{"database": {video_id: {"subset": ..., "annotations": [...]}}}'
        )
    fmt = _detect_format(data)
    meta: dict[str, Any] = {"version": data.get("version"), "num_ambiguous_skipped": 0}
    videos = {}
    for vid, entry in data["database"].items():
        videos[str(vid)] = _parse_video(str(vid), entry, meta, where)
    classes = _class_list(data, videos, where, meta)
    meta["num_instances"] = int(sum(len(v.labels) for v in videos.values()))
    meta["num_videos_without_duration"] = int(
        sum(math.isnan(v.duration_s) for v in videos.values())
    )
    return Annotations(videos=videos, classes=classes, source_format=fmt, path=path, meta=meta)


def _detect_format(data: dict) -> str:
    """Name the variant from the fields it carries (see the module docstring)."""
    entries = [e for e in data["database"].values() if isinstance(e, dict)]
    anns = [a for e in entries for a in e.get("annotations", []) or [] if isinstance(a, dict)]
    if any(isinstance(x, str) for a in anns for x in a.get("segment", [])) or (
        entries and not any("duration" in e for e in entries)
    ):
        return "gtad"
    if any("label_id" in a for a in anns):
        return "actionformer"
    if any("frame" in e for e in entries):
        return "opentad"
    if "classes" in data or any("fps" in e for e in entries):
        return "tadtr"
    return "activitynet"


def _parse_video(vid: str, entry: Any, meta: dict, where: str) -> VideoRecord:
    if not isinstance(entry, dict) or "subset" not in entry:
        raise TalBenchError(f"{where}: video {vid!r} has no 'subset' field; fix the file")
    segments, labels, ids = [], [], []
    for i, ann in enumerate(entry.get("annotations") or []):
        label = ann.get("label") if isinstance(ann, dict) else None
        if label == AMBIGUOUS_LABEL:
            meta["num_ambiguous_skipped"] += 1
            continue
        if not isinstance(label, str):
            raise TalBenchError(f"{where}: video {vid!r} annotation {i} has no string 'label'")
        segments.append(_parse_segment(ann.get("segment"), vid, i, where))
        # a file repeats a few class names thousands of times: one shared object per name
        # keeps them small in memory and makes equal labels compare by identity
        labels.append(sys.intern(label))
        ids.append(ann.get("label_id"))
    label_ids = _label_id_array(ids, vid, where)
    fps = entry.get("fps")
    return VideoRecord(
        video_id=vid,
        subset=normalize_subset(entry["subset"]),
        subset_raw=sys.intern(str(entry["subset"])),
        duration_s=_as_float(entry.get("duration"), f"video {vid!r} duration", where),
        fps=None if fps is None else _as_float(fps, f"video {vid!r} fps", where),
        segments_s=np.asarray(segments, dtype=np.float64).reshape(-1, 2),  # (N, 2)
        labels=labels,
        label_ids=label_ids,
    )


def _parse_segment(seg: Any, vid: str, i: int, where: str) -> tuple[float, float]:
    if not isinstance(seg, list | tuple) or len(seg) != 2:
        raise TalBenchError(
            f"{where}: video {vid!r} annotation {i} needs 'segment': [start_s, end_s], got {seg!r}"
        )
    start, end = (_as_float(x, f"video {vid!r} annotation {i} segment", where) for x in seg)
    if not (math.isfinite(start) and math.isfinite(end)):
        raise TalBenchError(f"{where}: video {vid!r} annotation {i} has a non-finite segment")
    return start, end


def _as_float(value: Any, what: str, where: str) -> float:
    """Numbers and numeric strings (G-TAD stores segments as strings); ``None`` -> NaN."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TalBenchError(f"{where}: {what} is not a number: {value!r}") from None


def _label_id_array(ids: list[Any], vid: str, where: str) -> np.ndarray | None:
    present = [x is not None for x in ids]
    if not any(present):
        return None
    if not all(present) or not all(isinstance(x, int) and not isinstance(x, bool) for x in ids):
        raise TalBenchError(
            f"{where}: video {vid!r} mixes annotations with and without integer 'label_id'"
        )
    return np.asarray(ids, dtype=np.int64)


def _class_list(data: dict, videos: dict[str, VideoRecord], where: str, meta: dict) -> list[str]:
    """``classes`` key if present, else ids (index = label_id), else sorted label names."""
    id_to_name = _id_map(videos, where)
    if isinstance(data.get("classes"), list):
        classes = [str(c) for c in data["classes"]]
        _check_against(classes, videos, id_to_name, where)
        return classes
    if id_to_name:
        n = max(id_to_name) + 1
        unused = [i for i in range(n) if i not in id_to_name]
        if unused:
            meta["unused_label_ids"] = unused
        return [id_to_name.get(i, f"__unused_label_id_{i}__") for i in range(n)]
    return sorted({label for v in videos.values() for label in v.labels})


def _id_map(videos: dict[str, VideoRecord], where: str) -> dict[int, str]:
    id_to_name: dict[int, str] = {}
    name_to_id: dict[str, int] = {}
    for v in videos.values():
        if v.label_ids is None:
            continue
        for name, idx in zip(v.labels, v.label_ids.tolist(), strict=True):
            if idx < 0:
                raise TalBenchError(f"{where}: video {v.video_id!r} has a negative label_id {idx}")
            if id_to_name.setdefault(idx, name) != name or name_to_id.setdefault(name, idx) != idx:
                raise TalBenchError(
                    f"{where}: label_id {idx} / label {name!r} conflict with another annotation "
                    f"(video {v.video_id!r}); each label needs exactly one id"
                )
    return id_to_name


def _check_against(
    classes: list[str], videos: dict[str, VideoRecord], id_to_name: dict[int, str], where: str
) -> None:
    known = set(classes)
    for v in videos.values():
        missing = [label for label in v.labels if label not in known]
        if missing:
            raise TalBenchError(
                f"{where}: video {v.video_id!r} has label {missing[0]!r} not in the 'classes' list"
            )
    for idx, name in id_to_name.items():
        if idx >= len(classes) or classes[idx] != name:
            raise TalBenchError(f"{where}: label_id {idx} of {name!r} disagrees with 'classes'")


def select_subset(
    ann: Annotations, subset: str, require_instances: bool = False
) -> tuple[list[VideoRecord], str]:
    """Videos of one subset, named either exactly as in the file or by the normalised name.

    The official ActivityNet code matches the raw subset string exactly; that match wins.
    Otherwise ``subset`` is normalised ("Validation" -> "val") and compared with the
    normalised names.

    Args:
        ann: the annotations.
        subset: "test", "val", "Validation", "training", ...
        require_instances: raise if the selected videos carry no annotation at all.

    Returns:
        (videos in file order, "raw" or "normalized": how ``subset`` matched).
    """
    raw_hits = [v for v in ann.videos.values() if v.subset_raw == subset]
    if raw_hits:
        videos, how = raw_hits, "raw"
    else:
        norm = normalize_subset(subset)
        videos, how = [v for v in ann.videos.values() if v.subset == norm], "normalized"
    if not videos:
        raws = sorted({v.subset_raw for v in ann.videos.values()})
        raise TalBenchError(
            f"subset {subset!r} is not in {ann.path or 'the annotations'}; available: "
            f"{', '.join(f'{r!r} ({normalize_subset(r)})' for r in raws)}"
        )
    if require_instances and not any(len(v.labels) for v in videos):
        raise TalBenchError(
            f"subset {subset!r} of {ann.path or 'the annotations'} has {len(videos)} videos but no "
            "annotated instances (e.g. ActivityNet 'testing'); evaluate on another subset"
        )
    return videos, how


def write_actionformer_json(ann: Annotations, path: str | Path, version: str | None = None) -> None:
    """Write ``ann`` as ActionFormer-style JSON (atomic: temp file + rename).

    Each annotation gets ``label``, ``segment`` and ``label_id`` (= index in ``ann.classes``), plus
    ``segment(frames)`` when the video has an fps. A top-level ``classes`` list keeps classes
    without instances, so ``load_annotations`` reads back the same class list.

    Args:
        ann: the annotations; every label must be in ``ann.classes``.
        path: output file; its folder is created if needed.
        version: the ``version`` string (default: ``ann.meta["version"]`` or "tal-bench").
    """
    index = {name: i for i, name in enumerate(ann.classes)}
    database = {vid: _video_entry(v, index) for vid, v in ann.videos.items()}
    payload = {
        "version": version or ann.meta.get("version") or "tal-bench",
        "classes": list(ann.classes),
        "database": database,
    }
    atomic_write_text(path, json.dumps(payload))


def _video_entry(v: VideoRecord, index: dict[str, int]) -> dict[str, Any]:
    annotations = []
    for (start, end), label in zip(v.segments_s.tolist(), v.labels, strict=True):
        if label not in index:
            raise TalBenchError(f"video {v.video_id!r}: label {label!r} is not in ann.classes")
        row: dict[str, Any] = {"label": label, "segment": [start, end]}
        if v.fps is not None:
            row["segment(frames)"] = [start * v.fps, end * v.fps]
        row["label_id"] = index[label]
        annotations.append(row)
    entry: dict[str, Any] = {"subset": v.subset_raw}
    if not math.isnan(v.duration_s):
        entry["duration"] = v.duration_s
    if v.fps is not None:
        entry["fps"] = v.fps
    entry["annotations"] = annotations
    return entry
