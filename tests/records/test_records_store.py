"""Run records: meta.json contents, atomic rows, torn writes, SIGKILL, schema check, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tal_bench.errors import TalBenchError
from tal_bench.records import (
    SCHEMA_VERSION,
    atomic_write_text,
    create_run,
    load_meta,
    load_rows,
    open_run,
)

CONFIG = {"model": {"name": "dummy", "widths": (1, 2)}, "train": {"epochs": 3}}
SEEDS = {"train": 0, "fraction": 42}


def test_meta_contents(tmp_path: Path) -> None:
    run = create_run(tmp_path / "r", "train", CONFIG, SEEDS)
    meta = json.loads((run.path / "meta.json").read_text())
    assert meta["schema_version"] == SCHEMA_VERSION
    assert meta["command"] == "train"
    # Tuples are stored as JSON lists; the config round-trips otherwise unchanged.
    assert meta["config"] == {"model": {"name": "dummy", "widths": [1, 2]}, "train": {"epochs": 3}}
    assert meta["seeds"] == SEEDS
    assert meta["status"] == "running" and meta["end_time"] is None and meta["resumed_at"] == []
    assert set(meta["versions"]) >= {
        "python", "torch", "numpy", "scipy", "pandas", "fvcore", "psutil", "nvidia-ml-py",
        "tal_bench",
    }  # fmt: skip
    assert meta["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    machine = meta["machine"]
    assert machine["cpu_logical"] == os.cpu_count()
    assert machine["ram_gib"] > 0
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                 if ln.startswith("model name")]  # fmt: skip
        if names:
            assert machine["cpu_model"] == names[0]
    # Either a GPU list or null with a reason, never silently empty.
    assert (machine["gpus"] is None) == (machine["gpu_error"] is not None)
    commit = meta["commit"]
    assert ("error" in commit) or (len(commit["id"]) == 40 and commit["short"] == commit["id"][:8])
    run.finish("ok")
    meta = load_meta(run.path)
    assert meta["status"] == "ok" and meta["end_time"] >= meta["start_time"]


def test_default_dir_is_stamped_and_never_reused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = create_run(None, "data-scaling", CONFIG, SEEDS)
    second = create_run(None, "data-scaling", CONFIG, SEEDS)
    assert first.path.parent == tmp_path / "runs" / "data-scaling"
    assert first.path != second.path
    stamp, _, rest = first.path.name.partition("_")
    assert len(stamp) == len("20240101-120000") and stamp[8] == "-"
    assert rest.startswith(first.meta["commit"]["short"] or "nogit")
    assert rest.endswith("-dirty") == bool(first.meta["commit"]["dirty"])


def test_rows_roundtrip_and_kind_filter(tmp_path: Path) -> None:
    run = create_run(tmp_path / "r", "train", CONFIG, SEEDS)
    run.append_row({"kind": "train", "epoch": 0, "loss": 1.25})
    run.append_row({"kind": "eval", "epoch": 0, "map_avg_pct": 51.5, "note": None})
    assert [r["epoch"] for r in run.rows()] == [0, 0]
    assert all("row_time" in r for r in run.rows())
    df = load_rows(run.path)
    assert list(df["kind"]) == ["train", "eval"]
    assert df["run_dir"].unique().tolist() == [str(run.path)]
    evals = load_rows(run.path, kind="eval")
    assert evals["map_avg_pct"].tolist() == [51.5]
    with pytest.raises(ValueError, match="nested"):
        run.append_row({"bad": {"a": 1}})


def test_several_runs_concatenate(tmp_path: Path) -> None:
    paths = []
    for i in range(2):
        run = create_run(tmp_path / f"r{i}", "train", CONFIG, SEEDS)
        run.append_row({"i": i})
        paths.append(run.path)
    df = load_rows(paths)
    assert df["i"].tolist() == [0, 1]
    assert df["run_dir"].tolist() == [str(p) for p in paths]


def test_torn_trailing_line_is_ignored_then_cut_on_resume(tmp_path: Path) -> None:
    run = create_run(tmp_path / "r", "grid", CONFIG, SEEDS)
    for i in range(3):
        run.append_row({"i": i})
    with open(run.rows_path, "ab") as fh:  # a write killed half-way
        fh.write(b'{"i": 3, "map_avg_p')
    assert load_rows(run.path)["i"].tolist() == [0, 1, 2]
    resumed = create_run(run.path, "grid", CONFIG, SEEDS)
    resumed.append_row({"i": 3})
    assert load_rows(run.path)["i"].tolist() == [0, 1, 2, 3]
    assert (run.path / "rows.torn.txt").read_text() == '{"i": 3, "map_avg_p\n'


def test_damaged_middle_line_is_a_user_error(tmp_path: Path) -> None:
    run = create_run(tmp_path / "r", "grid", CONFIG, SEEDS)
    run.append_row({"i": 0})
    with open(run.rows_path, "ab") as fh:
        fh.write(b"garbage\n")
    run.append_row({"i": 1})
    with pytest.raises(TalBenchError, match=r"rows.jsonl:2 is not valid JSON"):
        load_rows(run.path)


_WRITER = textwrap.dedent(
    """
    import sys
    from tal_bench.records import open_run
    run = open_run(sys.argv[1])
    i = 0
    while True:
        run.append_row({"i": i, "payload": "x" * 4000})
        i += 1
    """
)


def test_sigkill_while_appending_never_corrupts(tmp_path: Path) -> None:
    run = create_run(tmp_path / "r", "grid", CONFIG, SEEDS)
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(run.path)])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if run.rows_path.exists() and run.rows_path.stat().st_size > 200_000:
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ids = load_rows(run.path)["i"].tolist()
    assert len(ids) > 10
    assert ids == list(range(len(ids)))  # no line lost or duplicated before the kill point
    resumed = create_run(run.path, "grid", CONFIG, SEEDS)
    resumed.append_row({"i": len(ids)})
    assert load_rows(run.path)["i"].tolist() == list(range(len(ids) + 1))


def test_resume_keeps_rows_and_records_time(tmp_path: Path) -> None:
    run = create_run(tmp_path / "r", "grid", CONFIG, SEEDS)
    run.append_row({"i": 0})
    run.finish("interrupted")
    again = create_run(tmp_path / "r", "grid", CONFIG, SEEDS)
    again.append_row({"i": 1})
    meta = load_meta(again.path)
    assert len(meta["resumed_at"]) == 1 and meta["status"] == "running"
    assert meta["end_time"] is None
    assert meta["start_time"] == run.meta["start_time"]
    assert [r["i"] for r in open_run(again.path).rows()] == [0, 1]


def test_resume_refuses_other_command_or_config(tmp_path: Path) -> None:
    create_run(tmp_path / "r", "grid", CONFIG, SEEDS)
    with pytest.raises(TalBenchError, match="holds a 'grid' run, not 'profile'"):
        create_run(tmp_path / "r", "profile", CONFIG, SEEDS)
    other = {"model": {"name": "dummy", "widths": [1, 2]}, "train": {"epochs": 4}}
    with pytest.raises(TalBenchError, match=r"differs in: train.epochs"):
        create_run(tmp_path / "r", "grid", other, SEEDS)


def test_non_run_directory_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(TalBenchError, match="not a run directory"):
        create_run(tmp_path / "busy", "train", CONFIG, SEEDS)
    with pytest.raises(TalBenchError, match="not a run directory"):
        load_rows(tmp_path / "busy")


def test_schema_mismatch(tmp_path: Path) -> None:
    run = create_run(tmp_path / "r", "train", CONFIG, SEEDS)
    meta = json.loads((run.path / "meta.json").read_text())
    meta["schema_version"] = SCHEMA_VERSION + 1
    (run.path / "meta.json").write_text(json.dumps(meta))
    msg = f"schema_version {SCHEMA_VERSION + 1}.*reads {SCHEMA_VERSION}"
    with pytest.raises(TalBenchError, match=msg):
        load_rows(run.path)
    with pytest.raises(TalBenchError, match=msg):
        create_run(run.path, "train", CONFIG, SEEDS)


def test_output_under_a_file_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(TalBenchError, match="cannot write to") as info:
        create_run(tmp_path / "file" / "r", "train", CONFIG, SEEDS)
    assert "\n" not in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only directories")
def test_unwritable_directory_is_one_line_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(TalBenchError, match="cannot write to") as info:
            create_run(locked / "r", "train", CONFIG, SEEDS)
        assert "\n" not in str(info.value)
    finally:
        locked.chmod(0o700)


def test_atomic_write_text_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new contents")
    assert target.read_text() == "new contents"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temp file left behind
    run = create_run(tmp_path / "r", "train", CONFIG, SEEDS)
    path = run.write_json("summary", {"map_avg_pct": 12.5})
    assert path.name == "summary.json"
    assert json.loads(path.read_text()) == {"map_avg_pct": 12.5}


def test_atomic_writes_get_the_usual_file_mode(tmp_path: Path) -> None:
    # mkstemp makes 0600 files; a record must be as readable as one written with open().
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic_write_text(tmp_path / "atomic.txt", "x")
    mode = (tmp_path / "atomic.txt").stat().st_mode & 0o777
    assert mode == plain.stat().st_mode & 0o777


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma\n", "avx2"),
        ("flags : sse4_2 avx512f avx2\nflags : sse4_2 avx512f avx2\n", "avx512f"),
        ("Features\t: fp asimd evtstrm sve\n", "sve"),
        ("Features\t: half thumb neon\n", "neon"),
        ("model name : some CPU\nflags : fpu mmx\n", None),
        ("", None),
    ],
)
def test_cpu_simd_reads_the_widest_level_of_hand_written_cpuinfo(text, level):
    from tal_bench.records.env import cpu_simd

    assert cpu_simd(text) == level
