"""Curve formulas, goodness of fit, and recovery of known curves by ``fit_curve``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tal_bench.errors import TalBenchError
from tal_bench.fits import BASELINES, CURVES, METHODS, fit_curve, goodness_of_fit
from tal_bench.fits.curves import (
    exp2,
    exp3,
    exp4,
    exp_loglog,
    exp_loglog_log2,
    expd3,
    expp3,
    five_pl,
    ilog2,
    janoschek,
    log2_curve,
    logpower3,
    mmf4,
    pow2,
    pow4,
    vap3,
    wbl4,
)
from tal_bench.fits.fit import refit_many

X_PCT = np.array([1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100], dtype=float)
X_DENSE = np.geomspace(1, 100, 200)

TRUE = {  # rising curves inside [0, 100] mAP on 1..100 %
    "5pl": {"a": 5.0, "b": 1.5, "c": 10.0, "d": 60.0, "g": 0.7},
    "exp": {"alpha": math.log2(58.0), "beta": 1.2, "tau": 2.0},
    "pow2": {"a": 60.0, "b": 0.5},
    "pow3": {"a": 60.0, "b": 30.0, "c": 0.5},
    "pow4": {"a": 60.0, "b": 60.0, "c": 0.8, "d": 2.0},
    "exp2": {"a": 90.0, "b": 0.03},
    "exp3": {"a": 40.0, "b": 0.05, "c": 60.0},
    "exp4": {"a": 0.2, "b": math.log(50.0), "c": 60.0, "d": 0.6},
    "expp3": {"a": 0.3, "b": -1.0, "c": -2.0},
    "expd3": {"a": 5.0, "b": 0.05, "c": 60.0},
    "log2": {"a": 10.0, "b": 5.0},
    "ilog2": {"a": 20.0, "b": 70.0},
    "vap3": {"a": 4.3, "b": -0.5, "c": -0.3},
    "logpower3": {"a": 95.0, "b": math.log(10.0), "c": 1.2},
    "mmf4": {"a": 5.0, "b": 8.0, "c": 60.0, "d": 1.2},
    "wbl4": {"a": 0.2, "b": 50.0, "c": 60.0, "d": 0.6},
    "janoschek": {"a": 60.0, "b": 10.0, "c": 0.2, "d": 0.6},
    "loglog": {"a": math.log2(5.0), "b": 0.5},
}
# Families whose parameters the 12 anchors pin down (relative tolerance at noise 0.1 mAP);
# for the others only the curve is checked, as their parameters trade off along ridges.
IDENTIFIABLE_RTOL = {
    "exp": 0.03, "pow2": 0.02, "pow3": 0.03, "exp2": 0.02, "exp3": 0.02, "expd3": 0.02,
    "log2": 0.02, "ilog2": 0.02, "wbl4": 0.05, "janoschek": 0.05, "loglog": 0.02,
}  # fmt: skip
LCDB = ["pow2", "pow3", "pow4", "exp2", "exp3", "exp4", "expp3", "expd3", "log2", "ilog2",
        "vap3", "logpower3", "mmf4", "wbl4"]  # fmt: skip


def test_registry_is_complete() -> None:
    assert list(CURVES) == ["5pl", "exp", *LCDB, "janoschek"]
    assert list(BASELINES) == ["last", "loglog"] and all(b.baseline for b in BASELINES.values())
    for name, params in TRUE.items():
        assert METHODS[name].params == tuple(params)


def test_formulas_by_hand() -> None:
    # 5PL at x = c: d + (a - d) / 2^g.
    assert five_pl(np.array(10.0), 5, 1.5, 10, 60, 0.7) == pytest.approx(60 - 55 / 2**0.7)
    # g = 1 is the 4PL d + (a - d) / (1 + (x/c)^b).
    assert five_pl(np.array(20.0), 5, 2, 10, 60, 1) == pytest.approx(60 - 55 / 5)
    # Study's printed shape: 25.67 - 3.546 / 2^(log2(p)/1.214), here in log2 space.
    p = np.array([1.0, 4.0, 100.0])
    expected = 25.67 - 3.546 / 2 ** (np.log2(p) / 1.214)
    np.testing.assert_allclose(exp_loglog_log2(p, 25.67, 3.546, 1.214), expected)
    assert exp_loglog(np.array(1.0), 6.0, 1.0, 2.0) == pytest.approx(2.0**5)
    # Stable forms equal the textbook ones.
    x = np.array([0.5, 3.0, 80.0])
    np.testing.assert_allclose(mmf4(x, 5, 8, 60, 1.2), (5 * 8 + 60 * x**1.2) / (8 + x**1.2))
    np.testing.assert_allclose(pow4(x, 60, 60, 0.8, 2), 60 - 60 * (x + 2) ** -0.8)
    np.testing.assert_allclose(wbl4(x, 0.2, 50, 60, 0.6), 60 - 50 * np.exp(-0.2 * x**0.6))
    # No overflow where (x/c)^b is astronomically large.
    assert five_pl(np.array(1e4), 0, 100, 1e-2, 50, 1) == pytest.approx(50)


def test_lcdb_formulas_by_hand() -> None:
    # LCDB's error-rate formulas e(x) (fmohr/lcdb), read as mAP = 100 - e(x).
    assert pow2(np.array(4.0), 60, 0.5) == pytest.approx(100 - 60 / 2)
    assert exp2(np.array(10.0), 90, 0.1) == pytest.approx(100 - 90 / math.e)
    assert log2_curve(np.array(math.e**2), 10, 5) == pytest.approx(25)
    assert ilog2(np.array(math.e - 1), 20, 70) == pytest.approx(50)  # ln(1 + x) = 1
    assert vap3(np.array(1.0), 0.0, 0.0, 0.0) == pytest.approx(99)  # 100 - e^0
    assert vap3(np.array(2.0), 1.0, 2.0, -1.0) == pytest.approx(100 - math.exp(1 + 1) / 2)
    assert logpower3(np.array(10.0), 80, math.log(10), 3) == pytest.approx(60)  # half the gap
    assert expp3(np.array(5.0), 0.5, 1.0, 3.0) == pytest.approx(3 + math.e**2)  # (5 - 1)^0.5
    assert expd3(np.array(0.0), 5, 0.1, 60) == pytest.approx(5)
    # Reparametrisations of one another, as their definitions say.
    x = np.array([0.5, 3.0, 80.0])
    np.testing.assert_allclose(expd3(x, 5, 0.05, 60), exp3(x, 55, 0.05, 60))
    np.testing.assert_allclose(exp4(x, 0.2, math.log(50), 60, 0.6), wbl4(x, 0.2, 50, 60, 0.6))
    np.testing.assert_allclose(janoschek(x, 60, 10, 0.2, 0.6), wbl4(x, 0.2, 50, 60, 0.6))


def test_predictions_are_clipped_to_the_metric() -> None:
    # log2 has no ceiling: 10 + 25 ln(100) = 125 mAP is reported as 100.
    assert CURVES["log2"].predict(np.array([100.0]), {"a": 25.0, "b": 10.0})[0] == 100.0
    assert CURVES["log2"].predict(np.array([1e-3]), {"a": 25.0, "b": 10.0})[0] == 0.0
    assert BASELINES["last"].predict(np.array([1.0, 300.0]), {"a": 41.5}).tolist() == [41.5] * 2


def test_goodness_of_fit_by_hand() -> None:
    y, y_hat = [1, 2, 3, 4], [1.5, 2, 2.5, 4]
    # residuals (-0.5, 0, 0.5, 0): SSE = 0.5, SST = 5 (mean 2.5), n = 4, k = 2.
    gof = goodness_of_fit(y, y_hat, n_params=2)
    assert gof["r2"] == pytest.approx(0.9)
    assert gof["rmse"] == pytest.approx(math.sqrt(0.125))
    assert gof["aic"] == pytest.approx(4 * math.log(0.125) + 4)  # -4.31777
    assert gof["aic"] == pytest.approx(-4.3177662, abs=1e-6)
    assert gof["mean_abs_error"] == pytest.approx(0.25)
    perfect = goodness_of_fit(y, y, n_params=2)
    assert perfect["r2"] == 1.0 and perfect["aic"] is None


@pytest.mark.parametrize("family", list(TRUE))
def test_recovers_known_curve_from_noisy_points(family: str) -> None:
    curve, true = METHODS[family], TRUE[family]
    rng = np.random.default_rng(0)
    y = curve.predict(X_PCT, true) + rng.normal(0.0, 0.1, X_PCT.size)
    fit = fit_curve(X_PCT, y, family)
    assert fit.ok, fit.error
    assert fit.at_bound == []
    dev = np.max(np.abs(fit.predict(X_DENSE) - curve.predict(X_DENSE, true)))
    assert dev < 0.3, f"{family}: curve off by {dev:.3f} mAP"
    if family in IDENTIFIABLE_RTOL:
        for name, value in true.items():
            assert fit.params[name] == pytest.approx(value, rel=IDENTIFIABLE_RTOL[family]), name
    # Reported numbers are the formulas applied to the fitted curve.
    gof = goodness_of_fit(y, fit.predict(X_PCT), len(true))
    assert fit.r2 == pytest.approx(gof["r2"]) and fit.aic == pytest.approx(gof["aic"])
    assert fit.rmse == pytest.approx(gof["rmse"])


@pytest.mark.parametrize("family", list(TRUE))
def test_noise_free_points_give_the_curve_exactly(family: str) -> None:
    curve = METHODS[family]
    fit = fit_curve(X_PCT, curve.predict(X_PCT, TRUE[family]), family)
    assert fit.ok and fit.r2 == pytest.approx(1.0, abs=1e-8)
    np.testing.assert_allclose(fit.predict(X_DENSE), curve.predict(X_DENSE, TRUE[family]),
                               atol=2e-3)  # fmt: skip


def test_robust_loss_resists_one_outlier() -> None:
    true = TRUE["pow3"]
    y = CURVES["pow3"].predict(X_PCT, true)
    y[5] += 15.0  # one broken run at 10 %
    fit = fit_curve(X_PCT, y, "pow3")
    others = np.delete(np.arange(X_PCT.size), 5)
    dev = np.abs(fit.predict(X_PCT[others]) - y[others])
    assert dev.max() < 0.5  # plain least squares is off by ~2 mAP here


def test_parameter_on_bound_is_flagged() -> None:
    # Linear growth to 99 mAP: pow3's asymptote would need to exceed 100 mAP.
    y = 0.99 * X_PCT
    fit = fit_curve(X_PCT, y, "pow3")
    assert fit.ok and "a" in fit.at_bound
    assert fit.params["a"] == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("x", "y", "family", "message"),
    [
        ([1, 2, 5, 10], [10, 20, 30, 35], "5pl", "4 points for 5 parameters"),
        ([1, 2, 5, 10], [30, 30, 30, 30], "pow3", "mAP is constant"),
        ([1, 2, 5, 10], [10, np.nan, 30, 35], "pow3", "NaN"),
        ([1, 2, 5, 10], [0, 20, 30, 35], "exp", "needs mAP > 0"),
        ([0, 2, 5, 10], [10, 20, 30, 35], "exp3", "fractions must be > 0"),
    ],
)
def test_bad_inputs_fail_without_raising(x, y, family, message) -> None:
    fit = fit_curve(x, y, family)
    assert fit.status == "failed" and message in fit.error
    assert np.isnan(fit.predict([50.0])).all()
    assert fit.to_dict()["params"] == {}


def test_unknown_family_is_user_error() -> None:
    with pytest.raises(TalBenchError, match="unknown curve family 'pow5'"):
        fit_curve([1, 2, 3], [1, 2, 3], "pow5")


def test_last_baseline_is_the_last_mean() -> None:
    fit = fit_curve([1, 5, 20], [3.0, 9.0, 14.0], "last")
    assert fit.ok and fit.params == {"a": 14.0}
    # the largest fraction's value, wherever it sits in the input
    assert fit_curve([20, 1, 5], [14.0, 3.0, 9.0], "last").params == {"a": 14.0}


def test_weights_follow_sigma() -> None:
    # Two points of a line disagree with a third; the one with a 10x smaller standard error wins.
    x, y = np.array([1.0, 2.0, 4.0, 8.0]), np.array([10.0, 20.0, 30.0, 50.0])
    tight = fit_curve(x, y, "log2", sigma=[1.0, 1.0, 1.0, 0.1])
    loose = fit_curve(x, y, "log2", sigma=[1.0, 1.0, 1.0, 10.0])
    assert abs(tight.predict([8.0])[0] - 50) < abs(loose.predict([8.0])[0] - 50)
    assert fit_curve(x, y, "log2", sigma=[1.0, 0.0, 1.0, 1.0]).error == (
        "sigma must be positive, one per point"
    )


@pytest.mark.parametrize("family", ["exp3", "pow3", "wbl4", "exp"])
def test_batched_refits_match_scipy_refits(family: str) -> None:
    # Well-identified curves: the batched Levenberg-Marquardt lands where scipy's trf does.
    curve, rng = METHODS[family], np.random.default_rng(1)
    y = curve.predict(X_PCT, TRUE[family]) + rng.normal(0.0, 0.3, X_PCT.size)
    sigma = np.full(X_PCT.size, 0.3)
    fit = fit_curve(X_PCT, y, family, sigma=sigma)
    many = y + rng.normal(0.0, 0.3, (8, X_PCT.size))
    params = refit_many(fit, X_PCT, y, many, sigma)
    start = [[fit.params[p] for p in curve.params]]
    for row, p in zip(many, params, strict=True):
        ref = fit_curve(X_PCT, row, family, sigma=sigma, starts=start)
        mine = curve.predict(np.array([100.0, 300.0]), dict(zip(curve.params, p, strict=True)))
        np.testing.assert_allclose(mine, ref.predict([100.0, 300.0]), atol=0.05)
