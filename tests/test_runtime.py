"""The process-level allocator setting every talbench process applies."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tal_bench import runtime


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_keep_freed_memory_tunes_this_process_and_children() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    code = (
        "import os; from tal_bench.runtime import keep_freed_memory as k; ok = k(); "
        "print(ok, os.environ['MALLOC_MMAP_THRESHOLD_'], os.environ['MALLOC_TRIM_THRESHOLD_'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["True", str(256 * 2**20), str(2 * 2**30)]


def test_user_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)  # restored after the test
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1048576")
    runtime.keep_freed_memory()
    assert os.environ["MALLOC_MMAP_THRESHOLD_"] == "1048576"
