"""The background utilisation sampler and the NVML-absent path."""

from __future__ import annotations

import json
import time

import pytest

from tal_bench.profiling import nvml as nvml_mod
from tal_bench.profiling.nvml import Nvml
from tal_bench.profiling.samplers import UtilizationSampler, _weighted_mean


def test_samples_at_the_interval_and_stops_cleanly() -> None:
    interval = 0.05
    sampler = UtilizationSampler(interval).start()
    time.sleep(0.62)
    sampler.stop()
    assert not sampler.running and not sampler._thread.is_alive()
    n = len(sampler.samples)
    assert 9 <= n <= 13  # 0.62 s / 0.05 s = 12 due; allow a loaded CI box to miss a few
    times = [s["t_s"] for s in sampler.samples]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert sorted(gaps)[len(gaps) // 2] == pytest.approx(interval, abs=0.02)  # median gap
    # sample k is due at k * interval: no accumulated drift
    assert times[-1] == pytest.approx(n * interval, abs=0.1)
    s0 = sampler.samples[0]
    assert 0.0 <= s0["cpu_pct"] <= 100.0 and s0["rss_mib"] > 0 and s0["cpu_pct_per_core"]
    time.sleep(0.12)
    assert len(sampler.samples) == n  # nothing after stop
    sampler.stop()  # idempotent


def test_phases_and_summary(tmp_path) -> None:
    streamed = tmp_path / "stream.jsonl"
    with UtilizationSampler(0.05, stream_to=streamed) as sampler:
        with sampler.phase("busy"):
            end = time.perf_counter() + 0.2
            while time.perf_counter() < end:
                sum(range(1000))
        time.sleep(0.06)
    busy = sampler.phase_samples("busy")
    assert len(busy) >= 3  # ~4 interval samples + the closing boundary sample
    summary = sampler.summary("busy")
    assert summary["util_samples"] == len(busy)
    assert summary["proc_cpu_mean"] > 5.0  # one Python thread spinning (shared CI: >> 0)
    assert summary["gpu_util_mean"] is None and summary["gpu_util_max"] is None
    lines = streamed.read_text().splitlines()  # written as they came
    assert [json.loads(line) for line in lines] == sampler.samples and sampler.samples[0]["phase"]
    assert sampler.summary("never")["cpu_util_mean"] is None


def test_weighted_mean_by_hand() -> None:
    samples = [
        {"cpu_pct": 100.0, "dt_s": 0.5},
        {"cpu_pct": 0.0, "dt_s": 1.5},
        {"cpu_pct": None, "dt_s": 1.0},
    ]
    assert _weighted_mean(samples, "cpu_pct") == pytest.approx(25.0)  # (50 + 0) / 2


def test_nvml_absent_gives_nulls_and_one_note(monkeypatch: pytest.MonkeyPatch) -> None:
    pynvml = pytest.importorskip("pynvml")

    def fail() -> None:
        raise pynvml.NVMLError_LibraryNotFound()

    monkeypatch.setattr(pynvml, "nvmlInit", fail)
    nv = Nvml(0)
    assert not nv.available and "NVML unavailable" in nv.note
    assert nv.utilization_pct() is None and nv.process_memory_mib() is None
    sampler = UtilizationSampler(0.05, nv).start()
    time.sleep(0.12)
    sampler.stop()
    assert sampler.samples and all(s["gpu_util_pct"] is None for s in sampler.samples)
    assert all(s["gpu_proc_mem_mib"] is None for s in sampler.samples)
    nv.close()  # safe on an unavailable session


def test_nvml_on_this_machine_never_raises() -> None:
    with Nvml(0) as nv:
        if nv.available:  # a GPU machine: real numbers
            assert 0.0 <= nv.utilization_pct() <= 100.0
        else:
            assert nv.note and nv.memory_used_mib() is None
    assert nvml_mod.Nvml is Nvml


def test_bad_interval() -> None:
    with pytest.raises(ValueError):
        UtilizationSampler(0.0)
