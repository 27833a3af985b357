"""When not to trust a projection: inflection, saturation, monotonicity, too few fractions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tal_bench.fits import Anchors, trust_issues, trust_warning
from tal_bench.fits.diagnose import gain_per_doubling

ROOT = Path(__file__).resolve().parents[2]
CURVES_DIR = ROOT / ".." / "shared" / "data" / "curves"
REFERENCE = ROOT / "results" / "reference" / "data-scaling"
needs_curves = pytest.mark.skipif(
    not CURVES_DIR.is_dir(), reason=f"shared learning curves not found at {CURVES_DIR}"
)


def _shared(name: str, upto: float) -> Anchors:
    df = pd.read_csv(CURVES_DIR / f"{name}_thumos14_oprescu2023.csv")
    df = df[df["fraction_pct"] <= upto]
    return Anchors.from_summary(df.fraction_pct, df.map_mean_pct, df.map_std_pct, df.n_slices)


def test_gain_per_doubling_by_hand() -> None:
    a = Anchors.from_pairs([1, 2, 4, 8, 16], [10 * math.log2(x) for x in (1, 2, 4, 8, 16)])
    assert gain_per_doubling(a, 4) == (pytest.approx(10.0), 8.0, 16.0)  # window [8, 16]
    # A window [p/2, p] with a single fraction falls back to the last two.
    b = Anchors.from_pairs([1, 10, 30], [0.0, 10.0, 20.0])
    assert gain_per_doubling(b, 2) == (pytest.approx(10 / math.log2(3)), 10.0, 30.0)


@needs_curves
def test_monotone_saturating_curve_raises_no_warning() -> None:
    # TemporalMaxer <= 80 %: 18.30, 38.35, 54.85, 61.04, 65.15 mAP at 10, 20, 40, 60, 80 %.
    # Last doubling [40, 80]: least-squares slope on log2 x = 10.32 mAP, 15.8 % of 65.15 (< 20 %);
    # steepest doubling [10, 20]: 20.05, so the last is 51 % of it (< 75 %); monotone; 5 fractions.
    a = _shared("temporalmaxer", 80)
    assert gain_per_doubling(a, 4)[0] == pytest.approx(10.3185, abs=1e-3)
    assert trust_issues(a) == [] and trust_warning(a) is None


@needs_curves
def test_curve_still_rising_warns() -> None:
    # ActionFormer <= 80 %: last doubling [40, 80] of 46.86, 59.32, 62.67 -> slope 16.17 mAP,
    # 26 % of 62.67: not saturated yet.
    warning = trust_warning(_shared("actionformer", 80))
    assert warning.startswith("do not trust this projection: the curve does not saturate yet")
    assert "added 16.2 mAP, 26% of the 62.7 mAP reached" in warning


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="results/reference not in this checkout")
def test_reference_etad_curve_from_30_pct_warns() -> None:
    rows = [json.loads(line) for line in (REFERENCE / "rows.jsonl").read_text().splitlines()]
    cells = [r for r in rows if r["kind"] == "cell" and r["fraction_pct"] <= 30]
    a = Anchors.from_pairs([r["fraction_pct"] for r in cells], [r["map_avg_pct"] for r in cells])
    # The 5-slice means at 15, 20, 30 % (6.28, 7.71, 13.84) rise 7.75 mAP per doubling by least
    # squares on log2(fraction): the steepest doubling of the range is its last one.
    means = [
        np.mean([r["map_avg_pct"] for r in cells if r["fraction_pct"] == f]) for f in (15, 20, 30)
    ]
    slope = np.polyfit(np.log2([15, 20, 30]), means, 1)[0]
    assert slope == pytest.approx(7.75, abs=0.01)
    issues = trust_issues(a)
    assert any(
        i.startswith("the fit range has not passed the curve's inflection")
        and f"(15 to 30 %) added {slope:.1f} mAP, 100%" in i
        for i in issues
    )


def test_drop_beyond_noise_is_flagged_and_within_noise_is_not() -> None:
    x = np.repeat([1.0, 2.0, 4.0, 8.0, 16.0], 3)
    jitter = np.tile([-0.1, 0.0, 0.1], 5)  # std 0.1 per fraction, standard error 0.058
    base = np.repeat([10.0, 20.0, 30.0, 25.0, 32.0], 3)  # drops 5 mAP from 4 to 8 %
    issues = trust_issues(Anchors.from_pairs(x, base + jitter))
    assert any("falls from 4 % to 8 % by 5.00" in i for i in issues)
    small = np.repeat([10.0, 20.0, 30.0, 29.95, 40.0], 3)  # 0.05 < 2 * hypot(0.058, 0.058)
    assert not any("falls" in i for i in trust_issues(Anchors.from_pairs(x, small + jitter)))
    # One slice per fraction: no spread known, any drop counts.
    single = trust_issues(Anchors.from_pairs([1, 2, 4, 8, 16], [10, 20, 30, 29.95, 40]))
    assert any("no per-fraction spread" in i for i in single)


def test_too_few_fractions_and_no_bend() -> None:
    issues = trust_issues(Anchors.from_pairs([1, 2, 4, 8], [5.0, 10.0, 20.0, 40.0]))
    assert issues[0] == "only 4 fractions in the fit range; a backtest needs 5"
    # Accelerating on the log axis: the last doubling is the steepest.
    assert issues[1].startswith("the fit range has not passed the curve's inflection")
