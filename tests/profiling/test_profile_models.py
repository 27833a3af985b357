"""Several models in one profile call, the model build time, the per-epoch evaluations of the
training profile, and the figures drawn from them (the study's Figs. 4 and 6)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from tal_bench.cli import app
from tal_bench.errors import TalBenchError
from tal_bench.models import list_models
from tal_bench.pipelines import profile as prof
from tal_bench.pipelines.resolve import resolve_run_config
from tal_bench.pipelines.train import execute
from tal_bench.plots import compute

torch.set_num_threads(1)

FAST = ["--rounds", "1", "--warmup", "0", "--interval", "0.05", "--no-fvcore",
        "--breakdown", "never", "--json"]  # fmt: skip
TINY_DATA = "data.dataset=synthetic-thumos14-tiny"


def _invoke(args: list[str]) -> list[dict]:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _phases(run_dir) -> list[str]:
    """The timeline's phases in order of appearance, idle left out."""
    out: list[str] = []
    for line in (run_dir / "timeline.jsonl").read_text().splitlines():
        phase = json.loads(line)["phase"]
        if phase != "idle" and (not out or out[-1] != phase):
            out.append(phase)
    return out


# ----------------------------------------------------------------------------- --model lists


def test_parse_models() -> None:
    every = [m for m in list_models() if m != "dummy"]
    assert prof.parse_models("all") == every and "tadtr" in every and "dummy" not in every
    assert prof.parse_models("tadtr, etad,tadtr") == ["tadtr", "etad"]
    assert prof.parse_models("dummy,all")[0] == "dummy"
    with pytest.raises(TalBenchError, match="unknown model 'nope'"):
        prof.parse_models("all,nope")
    with pytest.raises(TalBenchError, match="bad --model"):
        prof.parse_models(" , ")


def test_two_models_in_one_run_match_their_own_runs(tmp_path, monkeypatch) -> None:
    """Rows tagged by model, one record, each model's MACs and parameters those of a one-model
    run (same seed), build_s recorded, phases and side files named by model."""
    from tal_bench.profiling.roofline import GemmPeak

    gemm = GemmPeak(gmacs=10.0, best_size=64, threads=1, device="cpu")
    monkeypatch.setattr(prof, "measure_gemm_peak", lambda *a: gemm)  # seconds, not measured
    args = ["--lengths", "64,200", "--input-dim", "16", *FAST]
    both = _invoke(["profile", "--model", "dummy,tadtr", "--out", str(tmp_path / "both"), *args])
    alone = {
        m: _invoke(["profile", "--model", m, "--out", str(tmp_path / m), *args])
        for m in ("dummy", "tadtr")
    }
    assert [(r["model"], r["length"]) for r in both] == [
        ("dummy", 64), ("dummy", 200), ("tadtr", 64), ("tadtr", 200)
    ]  # fmt: skip
    for r in both:
        assert r["status"] == "ok" and r["build_s"] > 0
        (ref,) = [a for a in alone[r["model"]] if a["length"] == r["length"]]
        assert (r["macs"], r["params"], r["num_items"]) == (ref["macs"], ref["params"],
                                                            ref["num_items"])  # fmt: skip
    # dummy: a 1x1 conv 16 -> 20 classes over its padded 128-step windows (by hand)
    assert [r["macs"] for r in both[:2]] == [1 * 128 * 16 * 20, 3 * 128 * 16 * 20]
    meta = json.loads((tmp_path / "both" / "meta.json").read_text())
    assert meta["config"]["models"] == ["dummy", "tadtr"]
    assert set(meta["config"]["runs"]) == {"dummy", "tadtr"}
    phases = _phases(tmp_path / "both")
    assert phases.index("dummy L=200") < phases.index("tadtr build") < phases.index("tadtr L=64")
    assert (tmp_path / "both" / "tadtr_macs_L200.json").exists()
    assert (tmp_path / "dummy" / "macs_L200.json").exists()  # one model: names unchanged


def test_build_time_is_the_constructor_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """build_s covers the constructor: a constructor made 0.2 s slower shows up in it."""
    import time

    from tal_bench import models

    opts = prof.ProfileOptions(model="dummy", input_dim=8)
    cfg = resolve_run_config("dummy", "cpu", [])
    _, fast_s = prof.build_model(opts, cfg)
    real = models.create_model

    def slow(*a, **k):
        time.sleep(0.2)
        return real(*a, **k)

    monkeypatch.setattr(models, "create_model", slow)
    model, slow_s = prof.build_model(opts, cfg)
    assert 0 < fast_s < 0.2 <= slow_s and not model.training


# ----------------------------------------------------------------------------- train profile


def test_train_profile_evaluates_after_every_epoch(tmp_path) -> None:
    rows = _invoke(["profile", "--model", "dummy", "--mode", "train", "--set", "train.epochs=3",
                    "--set", TINY_DATA, "--out", str(tmp_path), "--interval", "0.05",
                    "--json"])  # fmt: skip
    epochs = [r for r in rows if r["kind"] == "train_epoch"]
    (final,) = [r for r in rows if r["kind"] == "train"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3] and final["eval_every_epoch"]
    for r in epochs:
        assert 0.0 <= r["map_avg_pct"] <= 100.0 and r["eval_time_s"] > 0
        assert r["eval_util_samples"] >= 1
    assert epochs[-1]["map_avg_pct"] == final["map_avg_pct"]  # the run's own evaluation
    assert final["epoch_evals_time_s"] == pytest.approx(sum(r["eval_time_s"] for r in epochs[:2]))
    assert _phases(tmp_path) == ["train epoch 1", "eval 1", "train epoch 2", "eval 2",
                                 "train epoch 3", "eval 3"]  # fmt: skip


def test_epoch_evaluations_leave_training_unchanged() -> None:
    """The evaluations in between restore every random state: same losses, same final mAP as
    a run without them; the last epoch's evaluation is the run's own (not repeated)."""
    cfg = resolve_run_config("dummy", "cpu", ["train.epochs=3", TINY_DATA])
    plain = execute(cfg, progress=False)
    seen: list[tuple[int, float]] = []
    each = execute(cfg, progress=False,
                   on_epoch_eval=lambda e, r: seen.append((e, r["map_avg_pct"])))  # fmt: skip
    assert [e for e, _ in seen] == [1, 2]
    assert [e["loss"] for e in each.epochs] == [e["loss"] for e in plain.epochs]
    assert each.summary["map_avg_pct"] == plain.summary["map_avg_pct"]
    assert each.summary["mAP"] == plain.summary["mAP"]


# ----------------------------------------------------------------------------- figures


def _rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "kind": "profile", "status": "ok", "mode": "infer", "device": "cpu",
            "model": ["tadtr"] * 3 + ["etad"] * 2,
            "length": [100, 1000, 30000, 100, 30000],
            "latency_ms_median": [3.0, 5.0, 35.0, 10.0, 700.0],
            "latency_ms_iqr": 0.5,
            "macs": [5.5e6, 3.0e7, 7.3e8, 3.5e7, 2.7e10],
            "params": [3.3e5] * 3 + [4.5e5] * 2,
            "build_s": [0.02] * 3 + [0.03, 0.05],
            "data_mode": ["full"] * 3 + ["window"] * 2,
            "peak_rss_mib": 500.0,
        }
    )  # fmt: skip


def test_fig4_twin_axes_draw_the_rows() -> None:
    table = compute.compute_table(_rows())
    plot = compute.plot_time_and_macs(table, "tadtr", "cpu", "footer")
    assert plot.data["length"].tolist() == [100, 1000, 30000]
    assert plot.data["latency_ms_median"].tolist() == [3.0, 5.0, 35.0]
    assert plot.data["gmacs"].tolist() == pytest.approx([0.0055, 0.03, 0.73])
    left, right = plot.figure.axes  # the twin axes: time on the left, GMACs on the right
    (time_line,) = left.get_lines()
    (macs_line,) = right.get_lines()
    assert time_line.get_ydata().tolist() == [3.0, 5.0, 35.0]
    assert macs_line.get_ydata().tolist() == pytest.approx([0.0055, 0.03, 0.73])
    assert list(time_line.get_xdata()) == list(macs_line.get_xdata()) == [100, 1000, 30000]
    assert "one pass" in left.get_title()


def test_model_summary_has_build_time() -> None:
    data = compute.model_summary_table(compute.compute_table(_rows())).data.set_index("model")
    assert data.loc["etad", "build_s"] == pytest.approx(0.04)  # mean of its rows
    assert data.loc["tadtr", "latency_ms_at_max"] == 35.0
    assert data.loc["tadtr", "gmacs_at_max"] == pytest.approx(0.73)
    assert data.loc["etad", "max_length"] == 30000 and pd.isna(data.loc["etad", "gmacs_at_2304"])


def test_timeline_shades_train_and_eval_apart() -> None:
    samples = pd.DataFrame(
        {"t_s": [0.5, 1.0, 1.5, 2.0], "dt_s": 0.5, "cpu_pct": [50, 60, 90, 40],
         "phase": ["train epoch 1", "eval 1", "train epoch 2", "eval 2"]}
    )  # fmt: skip
    plot = compute.plot_timeline(samples, "t", "tadtr", "footer")
    spans = [(p, s, e) for p, s, e in compute.phase_spans(plot.data)]
    assert [p for p, _, _ in spans] == ["train epoch 1", "eval 1", "train epoch 2", "eval 2"]
    assert [(s, e) for _, s, e in spans] == [(0.0, 0.5), (0.5, 1.0), (1.0, 1.5), (1.5, 2.0)]
    assert compute.phase_colour("train epoch 2", 2) != compute.phase_colour("eval 2", 3)
    assert compute.phase_colour("L=100", 0) != compute.phase_colour("L=300", 1)


def test_presets_and_item_modes_are_not_averaged_together() -> None:
    rows = _rows()
    extra = rows[rows["model"] == "tadtr"].assign(preset="paper", macs=[1e9, 2e9, 3e9])
    both = pd.concat([rows.assign(preset="cpu"), extra], ignore_index=True)
    table = compute.compute_table(both)
    assert set(table["model"]) == {"etad", "tadtr cpu", "tadtr paper"}
    paper = table[table["model"] == "tadtr paper"]
    assert paper["gmacs"].tolist() == [1.0, 2.0, 3.0] and (paper["n_rows"] == 1).all()
    plot = compute.plot_time_and_macs(table, "tadtr paper", "cpu", "footer")
    assert plot.name == "time_macs_tadtr-paper_cpu"
