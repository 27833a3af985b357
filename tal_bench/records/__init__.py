"""Run records: ``meta.json`` + append-only ``rows.jsonl`` per run, and their loaders.

Schema: ``results/README.md`` ("Record schema"). Contract: ``docs/ARCHITECTURE.md``.
"""

from __future__ import annotations

from tal_bench.records.env import commit_info, gpu_info, library_versions, machine_info
from tal_bench.records.store import (
    META_FILE,
    ROWS_FILE,
    SCHEMA_VERSION,
    Run,
    atomic_write_text,
    create_run,
    load_meta,
    load_rows,
    now_iso,
    open_run,
)

__all__ = [
    "META_FILE",
    "ROWS_FILE",
    "SCHEMA_VERSION",
    "Run",
    "atomic_write_text",
    "commit_info",
    "create_run",
    "gpu_info",
    "library_versions",
    "load_meta",
    "load_rows",
    "machine_info",
    "now_iso",
    "open_run",
]
