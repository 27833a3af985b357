"""Run directories: ``meta.json`` plus append-only ``rows.jsonl``, and their loaders.

A run directory holds

* ``meta.json``: schema version, command, resolved config, seeds, commit, versions, machine,
  start/end time, status (rewritten atomically: tmp file + ``os.replace``);
* ``rows.jsonl``: one flat JSON object per line, appended with a single ``O_APPEND`` write of the
  whole line followed by ``fsync``, so a ``kill -9`` can at worst lose the line being written;
  a torn trailing fragment is skipped (and reported) by the loader and cut off before the next
  append when the run is reopened.

The layout is documented in ``results/README.md`` ("Record schema").
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tal_bench.errors import TalBenchError
from tal_bench.records.env import commit_info, library_versions, machine_info
from tal_bench.runtime import atomic_write_text, unwritable

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
META_FILE = "meta.json"
ROWS_FILE = "rows.jsonl"
TORN_FILE = "rows.torn.txt"  # torn fragments cut off when a run is reopened
_SCALARS = (str, int, float, bool, type(None))


def now_iso() -> str:
    """Local time with UTC offset, ISO 8601, millisecond precision."""
    return datetime.now(UTC).astimezone().isoformat(timespec="milliseconds")


def _to_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=_json_default) + "\n"


def _json_default(obj: Any) -> Any:
    # numpy scalars/arrays and paths, without importing numpy here.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "__fspath__"):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _normalise(obj: Any) -> Any:
    """JSON round trip: tuples -> lists, numpy -> Python, so stored and new configs compare."""
    return json.loads(json.dumps(obj, default=_json_default))


class Run:
    """An open run directory. Create with :func:`create_run`, reopen with :func:`open_run`."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path = path
        self.meta = meta

    @property
    def rows_path(self) -> Path:
        """Path of ``rows.jsonl``."""
        return self.path / ROWS_FILE

    def append_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Append one flat row (adds ``row_time``) atomically to ``rows.jsonl``.

        Args:
            row: column -> scalar (str, int, float, bool, None; numpy scalars are converted;
                lists of scalars are allowed but discouraged). Nested dicts are rejected.

        Returns:
            The row as written (with ``row_time``).

        Raises:
            TalBenchError: the run directory is not writable.
        """
        out = _normalise(dict(row))
        bad = [k for k, v in out.items() if not _is_flat(v)]
        if bad:
            raise ValueError(f"row columns must be scalars, got nested values in {bad}")
        out.setdefault("row_time", now_iso())
        data = (json.dumps(out) + "\n").encode("utf-8")
        try:
            fd = os.open(self.rows_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise unwritable(self.path, exc) from None
        try:
            # One write() of the whole line; the loop only runs if the kernel took fewer bytes
            # (possible on full disks or NFS), never splitting lines between two writers.
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as exc:
            raise unwritable(self.path, exc) from None
        finally:
            os.close(fd)
        return out

    def rows(self) -> list[dict[str, Any]]:
        """All complete rows written so far, in order."""
        return _read_rows(self.rows_path)

    def write_json(self, name: str, obj: Any) -> Path:
        """Write ``obj`` as ``<run>/<name>`` (``.json`` added if missing), atomically."""
        if not name.endswith(".json"):
            name += ".json"
        path = self.path / name
        atomic_write_text(path, _to_json(obj))
        return path

    def finish(self, status: str = "ok") -> None:
        """Record the end time and final status (``ok``, ``failed``, ``interrupted``, ...)."""
        self.meta["end_time"] = now_iso()
        self.meta["status"] = status
        self._save_meta()

    def _save_meta(self) -> None:
        atomic_write_text(self.path / META_FILE, _to_json(self.meta))

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, command={self.meta.get('command')!r})"


def _is_flat(value: Any) -> bool:
    if isinstance(value, list):
        return all(isinstance(v, _SCALARS) for v in value)
    return isinstance(value, _SCALARS)


def _default_run_dir(command: str, commit: dict[str, Any]) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    sha = commit.get("short") or "nogit"
    dirty = "-dirty" if commit.get("dirty") else ""
    safe_command = re.sub(r"[^A-Za-z0-9_.-]+", "-", command).strip("-") or "run"
    base = Path.cwd() / "runs" / safe_command / f"{stamp}_{sha}{dirty}"
    path, n = base, 1
    while path.exists():  # two runs in the same second: never reuse a directory
        n += 1
        path = base.with_name(f"{base.name}.{n}")
    return path


def create_run(
    out_dir: str | Path | None,
    command: str,
    config: Mapping[str, Any],
    seeds: Mapping[str, Any],
) -> Run:
    """Create a run directory and write its ``meta.json``, or reopen it to resume.

    Args:
        out_dir: run directory; ``None`` -> ``runs/<command>/<YYYYmmdd-HHMMSS>_<sha8>[-dirty]``
            under the current directory. An existing directory holding a run of the same
            ``command`` and schema is reopened (its rows are kept, ``resumed_at`` grows by one
            timestamp); an empty existing directory is used as is.
        command: the command that makes the run (``train``, ``data-scaling``, ``profile``...).
        config: the fully resolved configuration (JSON-serialisable).
        seeds: every seed the run uses, by name.

    Returns:
        The open :class:`Run` with ``status`` ``running``.

    Raises:
        TalBenchError: ``out_dir`` holds something else (another command, another schema, a
            different config, files but no ``meta.json``) or is not writable.
    """
    commit = commit_info()
    path = Path(out_dir) if out_dir is not None else _default_run_dir(command, commit)
    config, seeds = _normalise(dict(config)), _normalise(dict(seeds))
    if path.exists() and not path.is_dir():
        raise TalBenchError(f"--out {path} is a file, not a folder; pass a new folder")
    if (path / META_FILE).exists():
        return _resume(path, command, config)
    if path.exists() and any(path.iterdir()):
        raise TalBenchError(
            f"{path} already exists and is not a run directory (no {META_FILE}); "
            "pass an empty or new --out directory"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise unwritable(path, exc) from None
    meta = {
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "config": config,
        "seeds": seeds,
        "commit": commit,
        "versions": library_versions(),
        "machine": machine_info(),
        "argv": list(sys.argv),
        "start_time": now_iso(),
        "end_time": None,
        "status": "running",
        "resumed_at": [],
    }
    run = Run(path, meta)
    run._save_meta()
    return run


def _resume(path: Path, command: str, config: dict[str, Any]) -> Run:
    run = open_run(path)
    old_command = run.meta.get("command")
    if old_command != command:
        raise TalBenchError(
            f"{path} holds a {old_command!r} run, not {command!r}; pass a new --out directory"
        )
    if run.meta.get("config") != config:
        keys = _diff_keys(run.meta.get("config") or {}, config)
        raise TalBenchError(
            f"{path} was started with a different config (differs in: {', '.join(keys)}); "
            "resume with the same options or pass a new --out directory"
        )
    _cut_torn_tail(run.rows_path)
    run.meta.setdefault("resumed_at", []).append(now_iso())
    run.meta["end_time"] = None
    run.meta["status"] = "running"
    run._save_meta()
    return run


def _diff_keys(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            keys += _diff_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(prefix + key)
    return keys


def _cut_torn_tail(rows_path: Path) -> None:
    """Move an unterminated last line (a write killed mid-way) to ``rows.torn.txt``."""
    if not rows_path.exists():
        return
    data = rows_path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    keep = data.rfind(b"\n") + 1
    with open(rows_path.with_name(TORN_FILE), "ab") as fh:
        fh.write(data[keep:] + b"\n")
    with open(rows_path, "r+b") as fh:
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    log.warning(
        "%s: moved a torn trailing line (%d bytes) to %s", rows_path, len(data) - keep, TORN_FILE
    )


def _run_dir(path: str | Path) -> Path:
    path = Path(path)
    if path.is_file() and path.name in (META_FILE, ROWS_FILE):
        path = path.parent
    if not (path / META_FILE).is_file():
        raise TalBenchError(
            f"{path} is not a run directory (no {META_FILE}); pass a directory made by a "
            "talbench command"
        )
    return path


def load_meta(path: str | Path) -> dict[str, Any]:
    """Read and check ``meta.json`` of a run directory.

    Args:
        path: the run directory (or its ``meta.json`` / ``rows.jsonl``).

    Raises:
        TalBenchError: not a run directory, unreadable JSON, or another schema version.
    """
    path = _run_dir(path)
    try:
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TalBenchError(f"cannot read {path / META_FILE} ({exc}); is the run intact?") from None
    found = meta.get("schema_version") if isinstance(meta, dict) else None
    if found != SCHEMA_VERSION:
        commit = (meta.get("commit") or {}).get("id") if isinstance(meta, dict) else None
        at = f" (made at commit {commit[:8]})" if commit else ""
        raise TalBenchError(
            f"{path} has record schema_version {found!r}{at}, this tal_bench reads "
            f"{SCHEMA_VERSION}; re-run the command, or load it with the tal_bench it was made with"
        )
    return meta


def open_run(path: str | Path) -> Run:
    """Open an existing run directory (schema version checked) to read or append to it."""
    path = _run_dir(path)
    return Run(path, load_meta(path))


def _read_rows(rows_path: Path) -> list[dict[str, Any]]:
    if not rows_path.exists():
        return []
    rows = []
    lines = rows_path.read_bytes().split(b"\n")
    # The last element is b"" when the file ends with a newline; anything else is a torn write.
    tail = lines.pop()
    if tail.strip():
        log.warning("%s: ignored a torn trailing line (%d bytes)", rows_path, len(tail))
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TalBenchError(
                f"{rows_path}:{lineno} is not valid JSON ({exc.msg}); the file was edited or "
                "damaged, fix or delete that line"
            ) from None
        rows.append(row)
    return rows


def load_rows(
    paths: str | Path | Iterable[str | Path],
    kind: str | None = None,
) -> pd.DataFrame:
    """Rows of one or several run directories as one DataFrame.

    Args:
        paths: a run directory, or several (each schema-checked).
        kind: keep only rows whose ``kind`` column equals this (e.g. ``"eval"``).

    Returns:
        One row per record line, columns as written plus ``run_dir`` (the directory each row
        came from). Empty DataFrame (with ``run_dir``) when there are no rows.
    """
    import pandas as pd  # only the loaders need it; writing a record must start fast

    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    frames = []
    for p in paths:
        run = open_run(p)
        rows = run.rows()
        if kind is not None:
            rows = [r for r in rows if r.get("kind") == kind]
        frame = pd.DataFrame(rows)
        frame["run_dir"] = str(run.path)
        frames.append(frame)
    if not frames:
        raise TalBenchError("no run directories given; pass at least one")
    return pd.concat(frames, ignore_index=True)
