"""Anchors, bootstrap resamples, backtests, calibrated intervals, the ensemble and selection."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from tal_bench.errors import TalBenchError
from tal_bench.fits import CURVES, Anchors, fit_range, project, run_backtest
from tal_bench.fits.backtest import (
    ENSEMBLE,
    Backtest,
    Forecast,
    backtest_min_points,
    calibrated,
    ensemble,
    inverse_mse_weights,
    resampled_means,
    score,
    select,
    weighted_quantile,
)
from tal_bench.fits.curves import BASELINES

FRACTIONS = [1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100]
EXP3 = {"a": 50.0, "b": 0.04, "c": 60.0}  # truth at 100 %: 60 - 50 e^-4 = 59.08


def _slices(params: dict, family: str = "exp3", n_slices: int = 5, sd: float = 0.3) -> Anchors:
    rng = np.random.default_rng(3)
    x = np.repeat(np.array(FRACTIONS, dtype=float), n_slices)
    y = CURVES[family].predict(x, params) + rng.normal(0.0, sd, x.size)
    return Anchors.from_pairs(x, y)


def test_anchors_group_by_fraction_and_summaries_agree() -> None:
    a = Anchors.from_pairs([10, 1, 10, 1, 5], [30, 10, 34, 12, 20])
    np.testing.assert_array_equal(a.fractions, [1, 5, 10])
    np.testing.assert_allclose(a.means, [11, 20, 32])
    np.testing.assert_allclose(a.stds, [np.sqrt(2), np.nan, np.sqrt(8)])  # ddof = 1
    np.testing.assert_array_equal(a.counts, [2, 1, 2])
    assert a.value_at(10) == (32.0, pytest.approx(np.sqrt(8))) and a.value_at(5) == (20.0, None)
    assert a.value_at(100) == (None, None)
    s = Anchors.from_summary([10, 1, 5], [32, 11, 20], [np.sqrt(8), np.sqrt(2), 0.0], [2, 2, 1])
    np.testing.assert_array_equal(s.fractions, a.fractions)
    np.testing.assert_allclose(s.means, a.means)
    np.testing.assert_allclose(s.sigma(), a.sigma())
    assert s.samples is None and a.samples is not None


def test_sigma_is_the_moderated_standard_error() -> None:
    # stds 1 and 3 with 2 slices each (1 dof each), one fraction with a single slice.
    a = Anchors.from_summary([1, 2, 3], [10, 20, 30], [1.0, 3.0, np.nan], [2, 2, 1])
    pooled = (1 + 9) / 2
    var = [(1 + 2 * pooled) / 3, (9 + 2 * pooled) / 3, pooled]  # (dof s^2 + 2 pooled)/(dof + 2)
    np.testing.assert_allclose(a.sigma(), np.sqrt(np.array(var) / [2, 2, 1]))
    assert Anchors.from_pairs([1, 2, 3], [10, 20, 30]).sigma() is None  # no spread known


def test_fit_range_needs_three_fractions() -> None:
    a = Anchors.from_pairs(FRACTIONS, np.linspace(10, 50, len(FRACTIONS)))
    assert list(fit_range(a, 100, upto_pct=10).fractions) == [1, 2, 3, 5, 7, 10]
    assert list(fit_range(a, 100, first_k=3).fractions) == [1, 2, 3]
    assert fit_range(a, 100).fractions.max() == 70  # default: everything below the target
    with pytest.raises(TalBenchError, match=r"holds 2 fraction\(s\) \(1, 2 %\)"):
        fit_range(a, 100, upto_pct=2)
    with pytest.raises(TalBenchError, match="either --upto or --first-k"):
        fit_range(a, 100, upto_pct=10, first_k=3)


def test_resampled_means() -> None:
    a = _slices(EXP3)
    boot = resampled_means(a, 200, np.random.default_rng(0))
    assert boot.shape == (200, len(FRACTIONS))
    lo = np.array([s.min() for s in a.samples])
    hi = np.array([s.max() for s in a.samples])
    assert np.all((boot >= lo - 1e-12) & (boot <= hi + 1e-12))  # means of the slices drawn
    # A summary curve: each mean drawn from N(mean, sigma); 4000 draws pin the spread to ~2 %.
    s = Anchors.from_summary([10, 20], [30.0, 50.0], [2.0, 4.0], [5, 5])
    draws = resampled_means(s, 4000, np.random.default_rng(0))
    np.testing.assert_allclose(draws.std(axis=0), s.sigma(), rtol=0.05)
    np.testing.assert_allclose(draws.mean(axis=0), s.means, atol=0.1)
    assert resampled_means(Anchors.from_pairs([1, 2], [3, 4]), 5, np.random.default_rng(0)) is None


def test_weighted_quantile_by_hand() -> None:
    # Masses at midpoints: values 0, 10 with weights 1, 3 -> cdf points 0.125, 0.625.
    assert weighted_quantile(np.array([10.0, 0.0]), np.array([3.0, 1.0]), [0.375]) == [5.0]
    assert weighted_quantile(np.arange(5.0), None, [0.5]) == [2.0]


def test_backtest_with_no_family_small_enough_forecasts_with_the_baselines() -> None:
    # Three fractions (a 10,30,100 grid fitted up to 100 %): the one cut has 2 points, fewer
    # than any 3-parameter family needs, so the ensemble has no member and forecasts nothing.
    a = _slices(EXP3).head(3)
    bt = run_backtest(a, ["exp3", "5pl"], n_boot=0, level=0.95, seed=0)
    assert bt.min_points == 2 and bt.cuts == [a.fractions[1]] and len(bt.pairs) == 1
    forecasts = bt.pairs[0]["forecasts"]
    assert set(forecasts) == {*BASELINES, ENSEMBLE}
    assert forecasts[ENSEMBLE]["forecast"] is None and forecasts["last"]["forecast"] == (
        pytest.approx(a.means[1])
    )


def test_backtest_pairs_and_cuts_by_hand() -> None:
    a = _slices(EXP3).head(6)  # 1, 2, 3, 5, 7, 10 %
    # K = max(2, min(most parameters, n - 2)): 3 for pow2 + exp3, 4 once 5pl joins (n = 6).
    assert backtest_min_points(6, ["pow2", "exp3"]) == 3
    assert backtest_min_points(3, ["5pl"]) == 2 and backtest_min_points(9, ["5pl"]) == 5
    bt = run_backtest(a, ["pow2", "exp3", "5pl"], n_boot=0, level=0.95, seed=0)
    assert bt.min_points == 4 and bt.cuts == [5.0, 7.0]
    got = [(p["cut_pct"], p["fraction_pct"]) for p in bt.pairs]
    assert got == [(5, 7), (5, 10), (7, 10)]
    assert all(p["measured"] == a.value_at(p["fraction_pct"])[0] for p in bt.pairs)
    assert "5pl" not in bt.pairs[0]["forecasts"]  # 5 parameters > 4: not backtested
    assert set(bt.weights) == {"pow2", "exp3"}
    # Ensemble weights: 1 / mean squared error per doubling of horizon over all pairs.
    for m in ("pow2", "exp3"):
        errs = [(p["forecasts"][m]["forecast"] - p["measured"])
                / math.log2(p["fraction_pct"] / p["cut_pct"]) for p in bt.pairs]  # fmt: skip
        assert bt.weights[m] == pytest.approx(1 / (np.mean(np.square(errs)) + 1e-6))
    sc = score(bt, "exp3")
    errs = [abs(p["forecasts"]["exp3"]["forecast"] - p["measured"]) for p in bt.pairs]
    assert sc["mae"] == pytest.approx(np.mean(errs)) and sc["n_forecasts"] == 3
    # No bootstrap: no slice-spread interval; the calibrated one needs past errors, so it exists
    # only at the last cut (7 %), whose past holds the (5 -> 7 %) pair.
    assert sc["coverage_bootstrap"] is None and sc["n_interval"] == 1


def test_calibrated_interval_by_hand() -> None:
    draws = np.linspace(48.0, 52.0, 41)[:, None]  # bootstrap spread: the 2.5/97.5 % points
    cast = Forecast("m", np.array([100.0]), np.array([50.0]), draws)
    boot = cast.interval(0.95)[:, 0]
    # Draw i (48 + 0.1 i) carries the mass midpoint (i + 0.5) / 41: q = 0.025 sits at i = 0.525.
    assert boot == pytest.approx([48.0525, 51.9475])
    past = [1.0, -2.0]  # errors per doubling seen in the backtest
    iv = calibrated(cast, 0.95, 25.0, past)[:, 0]
    half = student_t.ppf(0.975, 2) * math.sqrt((1 + 4) / 2) * 2  # t_2 * RMS * 2 doublings
    side = 50 - 48.0525
    assert iv == pytest.approx([50 - math.hypot(side, half), 50 + math.hypot(side, half)])
    assert calibrated(cast, 0.95, 25.0, []) is None


def test_ensemble_is_a_weighted_mixture() -> None:
    x = np.array([100.0])
    a = Forecast("a", x, np.array([40.0]), np.full((10, 1), 40.0))
    b = Forecast("b", x, np.array([60.0]), np.full((30, 1), 60.0))
    ens = ensemble({"a": a, "b": b}, {"a": 3.0, "b": 1.0})
    assert ens.point[0] == pytest.approx(45.0) and ens.weights == {"a": 0.75, "b": 0.25}
    lo, hi = ens.interval(0.95)[:, 0]  # 75 % of the mass at 40, 25 % at 60
    assert lo == 40.0 and hi == 60.0
    assert ens.interval(0.5)[0, 0] == 40.0  # the 25 % quantile
    assert inverse_mse_weights({"a": [1.0, -1.0], "b": []}) == {"a": pytest.approx(1 / 1.000001)}
    assert inverse_mse_weights({"a": [], "b": []}) == {"a": 1.0, "b": 1.0}


def test_score_coverage_and_selection() -> None:
    def entry(y: float, lo: float, hi: float) -> dict:
        return {"forecast": y, "interval": [lo, hi], "interval_bootstrap": None}

    pairs = [
        {"cut_pct": 5, "fraction_pct": 10, "measured": 20.0,
         "forecasts": {"m": entry(19.0, 18.0, 21.0)}},
        {"cut_pct": 5, "fraction_pct": 20, "measured": 30.0,
         "forecasts": {"m": entry(27.0, 28.0, 29.0)}},  # misses
    ]  # fmt: skip
    sc = score(Backtest(2, [5.0], pairs, ["m"], {}, {}), "m")
    assert sc["mae"] == 2.0 and sc["max_abs_error"] == 3.0 and sc["coverage"] == 0.5
    assert sc["n_interval"] == 2 and sc["coverage_bootstrap"] is None
    scores = {
        "pow3": {"mae": 1.0, "n_forecasts": 3, "n_pairs": 3},
        "pow2": {"mae": 1.0, "n_forecasts": 3, "n_pairs": 3},
        "ensemble": {"mae": 1.0, "n_forecasts": 3, "n_pairs": 3},
        "exp3": {"mae": 0.5, "n_forecasts": 2, "n_pairs": 3},  # incomplete: not eligible
    }
    assert select(scores) == "pow2"  # ties: fewer parameters
    assert select({"5pl": {"mae": None, "n_forecasts": 0, "n_pairs": 3}}) is None


def test_projection_of_a_known_curve() -> None:
    a = _slices(EXP3)
    part = fit_range(a, 100, upto_pct=30)
    out = project(part, ["exp3", "pow2", "log2"], 100, n_boot=50, n_boot_backtest=20, seed=0)
    methods = out["methods"]
    assert set(methods) == {"exp3", "pow2", "log2", "last", "loglog", "ensemble"}
    # The generating family forecasts best, alone or as the ensemble's heaviest member.
    assert out["selected"] in ("exp3", "ensemble")
    weights = methods["ensemble"]["weights"]
    assert max(weights, key=weights.get) == "exp3" and sum(weights.values()) == pytest.approx(1)
    truth = CURVES["exp3"].predict(np.array([100.0]), EXP3)[0]
    exp3 = methods["exp3"]
    assert exp3["projected"] == pytest.approx(truth, abs=1.0)
    lo, hi = exp3["interval"]
    assert lo < truth < hi and exp3["interval_bootstrap"][0] >= lo  # calibrated is wider
    assert exp3["backtest"]["mae"] < methods["last"]["backtest"]["mae"]
    assert methods["ensemble"]["kind"] == "ensemble" and methods["last"]["kind"] == "baseline"
    again = project(part, ["exp3", "pow2", "log2"], 100, n_boot=50, n_boot_backtest=20, seed=0)
    assert again == out  # deterministic
