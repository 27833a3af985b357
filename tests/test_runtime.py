"""The process-level allocator setting every talbench process applies.

Each case runs in a subprocess: the setting is process-wide and would change how later tests in
this process see memory (freed pages stay resident).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CODE = (
    "import os; from tal_bench.runtime import keep_freed_memory as k; ok = k(); "
    "print(ok, os.environ['MALLOC_MMAP_THRESHOLD_'], os.environ['MALLOC_TRIM_THRESHOLD_'])"
)


def _run(extra_env: dict[str, str]) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", CODE], env={**env, **extra_env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_keep_freed_memory_tunes_this_process_and_children() -> None:
    assert _run({}) == ["True", str(256 * 2**20), str(2 * 2**30)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_user_setting_wins() -> None:
    assert _run({"MALLOC_MMAP_THRESHOLD_": "1048576"}) == ["True", "1048576", str(2 * 2**30)]
