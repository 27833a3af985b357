"""Curve formulas, goodness of fit, and recovery of known curves by ``fit_curve``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tal_bench.errors import TalBenchError
from tal_bench.fits import CURVES, fit_curve, goodness_of_fit
from tal_bench.fits.curves import exp_loglog, exp_loglog_log2, five_pl, mmf4, pow4, wbl4

X_PCT = np.array([1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100], dtype=float)
X_DENSE = np.geomspace(1, 100, 200)

TRUE = {
    "5pl": {"a": 5.0, "b": 1.5, "c": 10.0, "d": 60.0, "g": 0.7},
    "exp": {"alpha": math.log2(58.0), "beta": 1.2, "tau": 2.0},
    "pow3": {"a": 60.0, "b": 30.0, "c": 0.5},
    "pow4": {"a": 60.0, "b": 60.0, "c": 0.8, "d": 2.0},
    "mmf4": {"a": 5.0, "b": 8.0, "c": 60.0, "d": 1.2},
    "wbl4": {"a": 0.2, "b": 50.0, "c": 60.0, "d": 0.6},
    "exp3": {"a": 40.0, "b": 0.05, "c": 60.0},
}
# Families whose parameters the 12 anchors pin down (relative tolerance at noise 0.1 mAP);
# for the others only the curve is checked, as their parameters trade off along ridges.
IDENTIFIABLE_RTOL = {"exp": 0.03, "pow3": 0.03, "wbl4": 0.05, "exp3": 0.02}


def test_registry_is_complete() -> None:
    assert list(CURVES) == ["5pl", "exp", "pow3", "pow4", "mmf4", "wbl4", "exp3"]
    for name, params in TRUE.items():
        assert CURVES[name].params == tuple(params)


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
    curve, true = CURVES[family], TRUE[family]
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
    curve = CURVES[family]
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
