"""Detectors from outside the package: the ``tal_bench.detectors`` entry-point group.

The end-to-end test pip-installs ``tests/example_detector`` (offline, into a temporary folder on
PYTHONPATH, so the shared environment never sees it) and runs ``talbench`` on it in fresh
processes: ``ls models``, ``train`` and ``profile``; a broken plugin beside it gives one line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tal_bench.data import create_dataset
from tal_bench.evaluation import evaluate_detections, load_predictions, tiou_preset
from tal_bench.models.plugins import load_entry_points
from tal_bench.records import load_meta
from tal_bench.registry import Registry

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = Path(__file__).resolve().parent / "example_detector"
TINY = "synthetic-thumos14-tiny"


def _dist_info(site: Path, name: str, entry_points: str) -> None:
    """A minimal installed distribution (METADATA + entry_points.txt) in ``site``."""
    info = site / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package installed by pip into its own folder, plus a broken plugin."""
    tmp = tmp_path_factory.mktemp("plugins")
    src = tmp / "src"
    shutil.copytree(EXAMPLE, src)  # pip builds in the source tree: keep the repo clean
    target = tmp / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation"]
    cmd += ["--no-index", "--quiet", "--target", str(target), str(src)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    _dist_info(target, "broken_plugin", "[tal_bench.detectors]\nbroken = no_such_module:SPEC\n")
    return target


def _talbench(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "tal_bench", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)


def _example_params(c_in: int, k: int, hidden: int) -> int:
    # 3-tap conv C -> H (+ bias), 1x1 heads H -> K and H -> 2 (+ biases)
    return (3 * c_in * hidden + hidden) + (hidden * k + k) + (hidden * 2 + 2)


def test_an_installed_detector_lists_trains_and_profiles(site: Path, tmp_path: Path) -> None:
    done = _talbench(site, "ls", "models", "--input-dim", "32", "--num-classes", "5", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert {"dummy", "etad", "example"} <= set(rows)
    row = rows["example"]
    assert row["presets"] == ["cpu"] and row["native_mode"] == "full"
    assert row["params"] == _example_params(32, 5, 16)  # presets.toml: hidden_dim = 16
    # the broken plugin beside it: one warning line, no traceback, the rest listed
    warnings = [line for line in done.stderr.splitlines() if "broken" in line]
    assert len(warnings) == 1 and "no_such_module" in warnings[0]
    assert "Traceback" not in done.stderr

    out = tmp_path / "train"
    args = ["train", "--model", "example", "--dataset", TINY, "--threads", "1", "--json"]
    done = _talbench(site, *args, "--out", str(out))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["model"] == "example" and summary["epochs"] == 3  # its own preset
    ds = create_dataset(TINY)
    assert summary["params"] == _example_params(ds.feature_meta.input_dim, len(ds.classes), 16)
    # its native mode on a THUMOS-like dataset: whole videos, one item each, nothing merged
    config = load_meta(out)["config"]
    assert config["data"]["mode"] == "full" and config["eval"]["window_merge"] == "none"
    assert config["eval"]["max_dets_per_video"] == 100  # its PostDecl
    assert summary["num_train_items"] == len(ds.video_ids("val"))
    dets = load_predictions(out / "detections.json")
    again = evaluate_detections(ds.annotations, "test", dets, tiou_preset("thumos"))
    assert 100 * again.average_mAP == pytest.approx(summary["average_mAP"], abs=1e-9)
    per_video = np.unique(dets.video_idx, return_counts=True)[1]
    assert per_video.max() <= 100

    args = ["profile", "--model", "example", "--lengths", "100", "--rounds", "1", "--json"]
    args += ["--no-fvcore", "--breakdown", "never", "--out", str(tmp_path / "profile")]
    done = _talbench(site, *args)
    assert done.returncode == 0, done.stderr
    (prow,) = json.loads(done.stdout)
    assert prow["status"] == "ok" and prow["data_mode"] == "full" and prow["num_items"] == 1
    # MACs at C = 2048, K = 20 (the profiler's shapes), H = 16, over 100 steps
    assert prow["macs"] == 100 * (3 * 2048 * 16 + 16 * 20 + 16 * 2)
    assert prow["dense_ms_median"] is not None  # its forward_dense / postprocess split

    done = _talbench(site, "train", "--model", "broken", "--dataset", TINY)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "detector plugin 'broken'" in lines[0], done.stderr


# ----------------------------------------------------------------------------- in process


def test_entry_points_register_specs_and_report_failures(tmp_path, monkeypatch) -> None:
    (tmp_path / "fakeplug.py").write_text(
        "from tal_bench.models import ModelSpec\n"
        "from tal_bench.models.dummy import DummyConfig, build_dummy\n"
        "def _spec(name):\n"
        "    return ModelSpec(name, DummyConfig, build_dummy, 'a test detector')\n"
        "ONE = _spec('one')\n"
        "def two_and_three():\n"
        "    return [_spec('two'), _spec('three')]\n"
        "NOT_A_SPEC = 42\n"
    )
    _dist_info(
        tmp_path,
        "fakeplug",
        "[talbench.test.group]\n"
        "a_one = fakeplug:ONE\n"
        "many = fakeplug:two_and_three\n"
        "bad = fakeplug:NOT_A_SPEC\n"
        "z_again = fakeplug:ONE\n"  # entry points load in name order: a_one first
        "missing = fakeplug_missing:ONE\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry: Registry = Registry("model")
    load_entry_points(registry, "talbench.test.group")
    assert registry.names() == ["one", "three", "two"]
    errors = registry.load_errors
    assert set(errors) == {"bad", "z_again", "missing"}
    assert "names a int" in errors["bad"] and "registered twice" in errors["z_again"]
    assert "ModuleNotFoundError" in errors["missing"] and "fakeplug 0.1" in errors["missing"]
    assert all("\n" not in line for line in errors.values())
