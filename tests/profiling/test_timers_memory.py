"""Timers (rounds, cold call, threads, laps), peak memory and the GEMM roofline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from tal_bench.profiling import memory
from tal_bench.profiling.memory import PeakMemory
from tal_bench.profiling.roofline import measure_gemm_peak, roofline_fraction
from tal_bench.profiling.timers import time_call, time_laps, torch_threads


def _sleeper(seconds: float):
    calls = []

    def fn() -> None:
        calls.append(1)
        time.sleep(seconds)

    return fn, calls


def test_fixed_rounds_count_cold_and_warmup() -> None:
    fn, calls = _sleeper(0.01)
    t = time_call(fn, rounds=4, warmup=2)
    assert len(calls) == 1 + 2 + 4  # cold + warm-up + rounds
    assert t.method == "fixed_rounds" and t.stats.rounds == 4 and len(t.times_ms) == 4
    assert 9.0 <= t.stats.median <= 40.0  # a 10 ms sleep, loose upper bound for a busy CI box
    assert t.cold_ms is not None and t.cold_ms >= 9.0


def test_blocked_autorange_reaches_min_rounds() -> None:
    fn, _ = _sleeper(0.02)
    t = time_call(fn, warmup=1, min_run_time_s=0.05, min_rounds=4)
    assert t.method == "blocked_autorange"
    # a 20 ms call: block size 1, run time >= 4 * 20 ms -> at least 3 rounds (timing jitter)
    assert t.calls_per_round == 1 and t.stats.rounds >= 3
    assert 19.0 <= t.stats.median <= 60.0


def test_threads_set_inside_and_restored() -> None:
    before = torch.get_num_threads()
    seen = []
    time_call(lambda: seen.append(torch.get_num_threads()), threads=1, rounds=1, warmup=0)
    assert set(seen) == {1} and torch.get_num_threads() == before
    with torch_threads(None) as n:
        assert n == before


def test_laps_add_up_to_the_total() -> None:
    def one_round(lap) -> None:
        for _ in range(2):  # two chunks, like two window batches
            time.sleep(0.005)
            lap("dense")
            time.sleep(0.002)
            lap("post")

    t = time_laps(one_round, rounds=3, warmup=0)
    assert t["total"].stats.rounds == 3 and t["dense"].method == "lap_rounds"
    assert t["dense"].stats.median >= 10.0 and t["post"].stats.median >= 4.0
    for i in range(3):
        parts = t["dense"].times_ms[i] + t["post"].times_ms[i]
        assert parts == pytest.approx(t["total"].times_ms[i], abs=0.5)
    assert t["total"].cold_ms is not None


def test_bad_rounds_raise() -> None:
    with pytest.raises(ValueError):
        time_call(lambda: None, rounds=0)


TRANSIENT = """
import json, torch
from tal_bench.profiling.memory import PeakMemory
with PeakMemory("cpu") as pm:
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
    del block
r = pm.result
print(json.dumps([r.rss_method, r.peak_rss_mib - r.rss_before_mib,
                  r.gpu_peak_allocated_mib, r.gpu_nvml_process_mib]))
"""


@pytest.mark.skipif(not memory.reset_peak_rss(), reason="/proc/self/clear_refs not writable")
def test_peak_rss_sees_a_transient_allocation() -> None:
    # A fresh process with glibc's defaults: in this long-lived test process the 64 MiB can be
    # served from free heap chunks earlier tests left resident, and RSS would not move.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", TRANSIENT], env=env, capture_output=True, text=True, check=True
    )
    method, grown_mib, gpu_alloc, gpu_nvml = json.loads(out.stdout.splitlines()[-1])
    assert method == "vmhwm_clear_refs"
    assert grown_mib >= 60.0
    assert gpu_alloc is None and gpu_nvml is None


def test_peak_rss_fallback_method(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "reset_peak_rss", lambda: False)
    with PeakMemory("cpu") as pm:
        pass
    assert pm.result.rss_method == "ru_maxrss_lifetime"
    assert pm.result.peak_rss_mib >= pm.result.rss_before_mib * 0.5


def test_roofline_fraction_formula() -> None:
    # 2e9 MACs in 0.5 s = 4 GMAC/s against a 16 GMAC/s peak
    assert roofline_fraction(2_000_000_000, 0.5, 16.0) == pytest.approx(0.25)
    assert roofline_fraction(None, 0.5, 16.0) is None
    assert roofline_fraction(10, 0.0, 16.0) is None


def test_gemm_peak_small_sizes() -> None:
    peak = measure_gemm_peak("cpu", threads=1, sizes=(64, 128), min_run_time_s=0.02)
    assert set(peak.by_size) == {64, 128} and peak.best_size in (64, 128)
    assert peak.gmacs == max(peak.by_size.values()) > 0
    assert peak.threads == 1 and peak.tf32 is None


def test_tensor_peak_counts_new_storages_until_freed() -> None:
    from tal_bench.profiling.memory import TensorPeak

    mib = 256 * 1024  # float32 elements in 1 MiB
    before = torch.ones(mib)  # exists before the block: never counted
    with TensorPeak() as tp:
        a = torch.ones(2 * mib)  # +2
        view = a[:mib]  # a view: no new storage
        before.mul_(2)  # in place on an old storage: nothing new
        b = a * 3  # +2 -> 4 live
        del a, view  # a's storage freed: 2 live
        c = b.sum(0, keepdim=True).expand(mib).contiguous()  # +1 (and a 4-byte sum) -> 3 live
        assert tp.live_mib == pytest.approx(3.0, abs=1e-5)
        del b, c
    assert tp.peak_mib == pytest.approx(4.0, abs=1e-5)
    assert tp.live_mib == pytest.approx(0.0, abs=1e-5)
