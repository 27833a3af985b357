"""Anchors, fit ranges, bootstrap extrapolation and family selection."""

from __future__ import annotations

import numpy as np
import pytest

from tal_bench.errors import TalBenchError
from tal_bench.fits import CURVES, Anchors, extrapolate, fit_range, select_family

FRACTIONS = [1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100]
POW3 = {"a": 60.0, "b": 30.0, "c": 0.5}  # truth at 100 %: 60 - 30 / 10 = 57


def _slices(params: dict, family: str = "pow3", n_slices: int = 5, sd: float = 0.5) -> Anchors:
    rng = np.random.default_rng(3)
    x = np.repeat(np.array(FRACTIONS, dtype=float), n_slices)
    y = CURVES[family].predict(x, params) + rng.normal(0.0, sd, x.size)
    return Anchors.from_pairs(x, y)


def test_anchors_group_by_fraction() -> None:
    a = Anchors.from_pairs([10, 1, 10, 1, 5], [30, 10, 34, 12, 20])
    np.testing.assert_array_equal(a.fractions, [1, 5, 10])
    np.testing.assert_allclose(a.means, [11, 20, 32])
    np.testing.assert_allclose(a.stds, [np.sqrt(2), 0, np.sqrt(8)])  # sample std, ddof = 1
    np.testing.assert_array_equal(a.counts, [2, 1, 2])
    assert a.value_at(10) == (32.0, pytest.approx(np.sqrt(8)))
    assert a.value_at(100) == (None, None)


def test_fit_range_choices() -> None:
    a = Anchors.from_pairs(FRACTIONS, np.linspace(10, 50, len(FRACTIONS)))
    assert list(fit_range(a, 100, upto_pct=10).fractions) == [1, 2, 3, 5, 7, 10]
    assert list(fit_range(a, 100, first_k=3).fractions) == [1, 2, 3]
    assert fit_range(a, 100).fractions.max() == 70  # default: everything below the target
    assert fit_range(a, 300).fractions.max() == 100
    with pytest.raises(TalBenchError, match="either --upto or --first-k"):
        fit_range(a, 100, upto_pct=10, first_k=3)
    with pytest.raises(TalBenchError, match="no fractions in the fit range"):
        fit_range(a, 100, upto_pct=0.5)


def test_extrapolation_hits_truth_with_interval() -> None:
    a = _slices(POW3)
    part = fit_range(a, 100, upto_pct=20)
    actual, _ = a.value_at(100)
    res = extrapolate(part, "pow3", 100, actual=actual, n_boot=40, seed=0)
    assert res["status"] == "ok" and res["interval_method"] == "slices"
    assert res["projected"] == pytest.approx(57.0, abs=1.5)
    lo, hi = res["interval"]
    assert lo < res["projected"] < hi and lo < 57.0 < hi
    assert res["error"] == pytest.approx(res["projected"] - actual)
    assert res["abs_error"] == pytest.approx(abs(res["error"]))
    again = extrapolate(part, "pow3", 100, actual=actual, n_boot=40, seed=0)
    assert again["interval"] == res["interval"]  # deterministic
    other = extrapolate(part, "pow3", 100, actual=actual, n_boot=40, seed=1)
    assert other["interval"] != res["interval"]


def test_single_slice_uses_residual_bootstrap() -> None:
    a = _slices(POW3, n_slices=1, sd=0.3)
    res = extrapolate(fit_range(a, 100, upto_pct=30), "pow3", 100, n_boot=30)
    assert res["interval_method"] == "residuals" and res["n_boot_ok"] == 30
    assert res["actual"] is None and res["error"] is None
    no_boot = extrapolate(fit_range(a, 100, upto_pct=30), "pow3", 100, n_boot=0)
    assert no_boot["interval"] is None and no_boot["projected"] == res["projected"]


def test_failed_family_is_reported_not_raised() -> None:
    a = Anchors.from_pairs([1, 2, 5], [10, 20, 30])
    res = extrapolate(a, "5pl", 100, n_boot=10)
    assert res["status"] == "failed" and "3 points for 5 parameters" in res["message"]
    assert res["projected"] is None


def test_holdout_selection_prefers_the_generating_family() -> None:
    a = _slices(POW3, sd=0.05)
    part = fit_range(a, 100, upto_pct=30)
    sel = select_family(part, ["pow3", "exp3"], n_holdout=2)
    assert sel["method"] == "holdout" and sel["holdout_fractions"] == [20.0, 30.0]
    assert sel["selected"] == "pow3"
    assert sel["scores"]["pow3"] < 0.2 < sel["scores"]["exp3"]


def test_selection_falls_back_to_aic_with_few_anchors() -> None:
    a = _slices(POW3, sd=0.05)
    part = fit_range(a, 100, first_k=3)  # 3 anchors: nothing left to hold out
    sel = select_family(part, ["pow3", "exp3"])
    assert sel["method"] == "aic" and sel["holdout_fractions"] == []
    assert sel["scores"] == {"pow3": None, "exp3": None}
    assert sel["selected"] in ("pow3", "exp3")
