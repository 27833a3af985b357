"""Fixtures for the CLI tests; the folder-dataset writer is shared with the data tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))

from datahelpers import write_folder  # noqa: E402


@pytest.fixture(scope="module")
def good_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A healthy folder dataset (datahelpers.FOLDER_VIDEOS), shared by a module's tests."""
    return write_folder(tmp_path_factory.mktemp("folder") / "ds")
