"""The profile pipeline: length grids, native items, the ETAD split and MACs, the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from analytic_macs import etad_macs, num_proposals
from typer.testing import CliRunner

from tal_bench.cli import app
from tal_bench.config import DataConfig
from tal_bench.errors import TalBenchError
from tal_bench.models import create_model
from tal_bench.models.etad import EtadConfig
from tal_bench.pipelines import profile as prof
from tal_bench.pipelines.profile_runners import count_items, make_items, make_runner

torch.set_num_threads(1)

TINY = dict(hidden_dim=16, roi_dim=8, ext_dim=16, fc_dim=8, roi_size=8, max_duration=8)
TINY_SET = [f"model.{k}={v}" for k, v in TINY.items()] + [
    "model.gn_groups=4",
    "data.window=16",
    "data.window_stride=8",
    "data.downsample=1",
]


def _tiny_etad() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("etad", EtadConfig(**TINY, gn_groups=4), 32, 20).eval()


# ----------------------------------------------------------------------------- lengths


def test_parse_lengths_grids() -> None:
    assert prof.parse_lengths("30000") == [30000]
    assert prof.parse_lengths("1000,100, 300") == [100, 300, 1000]
    assert prof.parse_lengths("100..30000") == [100, 300, 1000, 3000, 10000, 30000]
    assert prof.parse_lengths("200..5000") == [200, 300, 1000, 3000, 5000]
    assert prof.parse_lengths("100..10000:3") == [100, 1000, 10000]
    for bad in ("0", "10..5", "a..b", "100..200:0", ""):
        with pytest.raises(TalBenchError):
            prof.parse_lengths(bad)


# ----------------------------------------------------------------------------- items


def test_window_items_by_hand() -> None:
    feats = torch.arange(2 * 3 * 300, dtype=torch.float32).reshape(2, 3, 300)
    items, per_video = make_items(feats, DataConfig(mode="window", window=128, window_stride=64))
    # starts 0, 64, 128 and the right-aligned 172 (300 - 128), for each of the 2 videos
    assert per_video == 4 and len(items) == 8
    assert [it["window_start"] for it in items[:4]] == [0, 64, 128, 172]
    assert torch.equal(items[3]["feats"], feats[0, :, 172:300])
    assert all(bool(it["mask"].all()) for it in items)


def test_short_input_is_padded_and_downsampled() -> None:
    items, per_video = make_items(
        torch.ones(1, 2, 40), DataConfig(mode="window", window=16, downsample=4)
    )
    assert per_video == 1 and items[0]["feats"].shape == (2, 16)
    assert int(items[0]["mask"].sum()) == 10  # 40 / 4 valid steps


def test_resize_and_full_items() -> None:
    feats = torch.randn(1, 4, 50)
    items, n = make_items(feats, DataConfig(mode="resize", resize_len=10))
    assert n == 1 and items[0]["feats"].shape == (4, 10)
    items, n = make_items(feats, DataConfig(mode="full"))
    assert n == 1 and torch.equal(items[0]["feats"], feats[0])


# ----------------------------------------------------------------------------- ETAD


def test_etad_split_equals_predict() -> None:
    model = _tiny_etad()
    runner = make_runner("etad", model, "cpu")
    assert runner.split and runner.note == ""
    items, _ = make_items(
        torch.randn(1, 32, 40), DataConfig(mode="window", window=16, window_stride=8)
    )
    feats, mask = runner.stack(items)
    split = runner.post(runner.dense(feats, mask), mask)
    whole = model.predict(items)
    assert len(split) == len(whole) == len(items)
    for a, b in zip(split, whole, strict=True):
        assert torch.equal(a.segments, b.segments) and torch.equal(a.scores, b.scores)


@pytest.mark.parametrize("length", [40, 10], ids=["full-windows", "one-padded-window"])
def test_etad_macs_equal_the_analytic_count(length: int) -> None:
    cfg = EtadConfig(**TINY, gn_groups=4)
    runner = make_runner("etad", _tiny_etad(), "cpu")
    items, _ = make_items(
        torch.randn(1, 32, length), DataConfig(mode="window", window=16, window_stride=8)
    )
    primary, fv = count_items(runner, items, use_fvcore=True)
    expected = sum(etad_macs(cfg, 32, 16, int(it["mask"].sum()))["total"] for it in items)
    assert primary.macs == expected
    assert fv.macs == expected
    # the RoI-align (interpolation) and the elementwise ops are counted zero, and listed
    assert any("RoiAlign" in op for op in fv.zero_ops), fv.zero_ops
    assert "aten::sigmoid" in primary.zero_ops and "aten::sigmoid" in fv.zero_ops
    assert "aten::mkldnn_rnn_layer" in primary.formula_ops or primary.device == "meta"


def test_etad_analytic_by_hand() -> None:
    cfg = EtadConfig(**TINY, gn_groups=4)
    m = etad_macs(cfg, 32, 16, 16)
    assert num_proposals(16, 8) == sum(16 - d for d in range(8)) == 100
    # features: layer1 16*16*(32/4)*3, two LSTMs 2*16*4*16*32, branches, layer3
    features = 16 * 16 * 8 * 3 + 2 * 16 * 4 * 16 * 32 + 2 * 16 * 8 * 4 * 3
    features += 16 * 16 * 4 * 3 + 16 * 16 * 8
    assert m["features"] == features
    # ext_fc (8 * 8 -> 16), three heads 16 -> 8 -> 8 -> 8 -> 2, two start/end regressors
    # (8 * 2 -> 16, then 16 -> 8 -> 8 -> 8 -> 1)
    per_proposal = 64 * 16 + 3 * (16 * 8 + 2 * 64 + 16) + 2 * (16 * 16 + 16 * 8 + 128 + 8)
    assert m["pem"] == 3 * 100 * per_proposal


def test_per_item_count_equals_batched_count() -> None:
    from tal_bench.profiling.counters import count_macs_primary

    runner = make_runner("etad", _tiny_etad(), "cpu")
    items, _ = make_items(
        torch.randn(1, 32, 40), DataConfig(mode="window", window=16, window_stride=8)
    )
    per_item, _ = count_items(runner, items, use_fvcore=False)
    feats, mask = runner.stack(items)
    batched = count_macs_primary(lambda m, x: runner.dense(*x), runner.model, (feats, mask))
    assert per_item.macs == batched.macs


# ----------------------------------------------------------------------------- CLI


def _invoke(args: list[str]) -> list[dict]:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


BASE = ["--rounds", "2", "--warmup", "0", "--interval", "0.05", "--json"]


def test_cli_dummy_end_to_end(tmp_path) -> None:
    out = tmp_path / "run"
    rows = _invoke(["profile", "--model", "dummy", "--lengths", "64,200", "--input-dim", "16",
                    "--out", str(out), "--breakdown", "always", *BASE])  # fmt: skip
    assert [r["length"] for r in rows] == [64, 200]
    for r in rows:
        assert r["status"] == "ok" and r["model"] == "dummy" and r["rounds"] == 2
        # dummy: 1x1 conv 16 -> 20 classes over every padded window step
        assert r["macs"] == r["num_items"] * 128 * 16 * 20 == r["macs_fvcore"]
        assert r["dense_ms_median"] is None and "predict timed whole" in r["split_note"]
        assert r["latency_ms_median"] > 0 and r["latency_ms_cold"] > 0
        assert r["gpu_peak_allocated_mib"] is None and r["peak_rss_mib"] > 0
        assert r["cpu_util_mean"] is not None and r["roofline_fraction"] > 0
        assert r["zero_ops"]["flop_counter"] and r["zero_ops"]["fvcore"]
        assert (out / r["breakdown_file"]).exists()
    assert rows[1]["num_windows"] == 3  # 200 steps: starts 0, 64, 72
    assert (out / "timeline.jsonl").exists() and (out / "rows.jsonl").exists()
    assert json.loads((out / "meta.json").read_text())["status"] == "ok"


def test_cli_etad_tiny_fills_every_field(tmp_path) -> None:
    sets = [x for s in TINY_SET for x in ("--set", s)]
    rows = _invoke(["profile", "--length", "40", "--input-dim", "32", "--out", str(tmp_path),
                    *sets, *BASE])  # fmt: skip
    (r,) = rows
    assert r["model"] == "etad" and r["num_windows"] == 4 and r["macs_scope"] == "dense"
    cfg = EtadConfig(**TINY, gn_groups=4)
    assert r["macs"] == r["macs_fvcore"] == 4 * etad_macs(cfg, 32, 16, 16)["total"]
    for key in ("dense_ms_median", "post_ms_median", "stack_ms_median", "latency_ms_iqr"):
        assert r[key] is not None
    assert r["latency_ms_median"] >= r["dense_ms_median"]
    assert r["timer"] == "lap_rounds" and r["gemm_peak_gmacs"] > 0
    assert r["control_ms_before"] > 0 and r["control_ms_after"] > 0
    assert r["machine_drift_frac"] == r["control_ms_after"] / r["control_ms_before"] - 1


def test_failed_length_is_a_row(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = prof.profile_length

    def flaky(s, length):
        if length == 64:
            raise RuntimeError("out of memory (simulated)")
        return real(s, length)

    monkeypatch.setattr(prof, "profile_length", flaky)
    rows = _invoke(["profile", "--model", "dummy", "--lengths", "64,128", "--input-dim", "8",
                    "--out", str(tmp_path), "--no-fvcore", *BASE])  # fmt: skip
    assert rows[0]["status"] == "failed" and "out of memory" in rows[0]["error"]
    assert rows[1]["status"] == "ok" and rows[1]["macs_fvcore"] is None


def test_cli_user_errors() -> None:
    result = CliRunner().invoke(app, ["profile", "--length", "10", "--lengths", "10..20"])
    assert result.exit_code == 2 and "not both" in result.output
    result = CliRunner().invoke(app, ["profile", "--model", "dummy", "--mode", "fly"])
    assert result.exit_code == 2 and "fly" in result.output  # not a valid --mode choice


def test_cli_train_mode_dummy(tmp_path) -> None:
    rows = _invoke(["profile", "--model", "dummy", "--mode", "train", "--set", "train.epochs=2",
                    "--set", "data.dataset=synthetic-thumos14-tiny", "--out", str(tmp_path),
                    "--interval", "0.05", "--no-eval-every-epoch", "--json"])  # fmt: skip
    epochs = [r for r in rows if r["kind"] == "train_epoch"]
    (final,) = [r for r in rows if r["kind"] == "train"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    for r in epochs:
        assert r["epoch_time_s"] > 0 and r["step_ms_mean"] > 0 and r["peak_rss_mib"] > 0
        assert r["util_samples"] >= 1 and r["gpu_util_mean"] is None
    assert final["peak_rss_mib"] == max(r["peak_rss_mib"] for r in epochs)
    assert 0.0 <= final["map_avg_pct"] <= 100.0
    phases = {
        json.loads(x)["phase"] for x in (tmp_path / "timeline.jsonl").read_text().splitlines()
    }
    assert {"train epoch 1", "train epoch 2", "eval"} <= phases


def test_isolated_child_function_in_process() -> None:
    """What a fresh process runs for one length (the spawn itself: the slow test below)."""
    from tal_bench.profiling.roofline import GemmPeak

    opts = prof.ProfileOptions(
        model="dummy", lengths=[64], input_dim=8, rounds=1, warmup=0, interval_s=0.05,
        fvcore=False, breakdown="never",
    )  # fmt: skip
    gemm = GemmPeak(gmacs=10.0, best_size=64, threads=1, device="cpu")
    row, side, samples = prof._child_length(opts, gemm, 64)
    assert row["status"] == "ok" and row["isolated"] and row["gemm_peak_gmacs"] == 10.0
    assert "macs_L64" in side and any(s["phase"] == "L=64" for s in samples)


@pytest.mark.slow
def test_cli_isolate_spawns_a_process_per_length(tmp_path) -> None:
    rows = _invoke(["profile", "--model", "dummy", "--lengths", "64", "--input-dim", "8",
                    "--isolate", "--no-fvcore", "--out", str(tmp_path), *BASE])  # fmt: skip
    assert rows[0]["status"] == "ok" and rows[0]["isolated"]
    assert (tmp_path / rows[0]["timeline_file"]).exists()


def test_drift_notice_only_beyond_three_percent() -> None:
    steady = {"length": 100, "control_ms_before": 2.0, "control_ms_after": 2.05,
              "machine_drift_frac": 0.025}  # fmt: skip
    slowed = {"length": 300, "control_ms_before": 2.0, "control_ms_after": 2.5,
              "machine_drift_frac": 0.25}  # fmt: skip
    train = {"kind": "train_epoch"}  # no control: never a note
    (note,) = prof.drift_notices([steady, slowed, train])
    assert note.startswith("L=300:") and "2.00 ms before, 2.50 ms after, +25 %" in note
