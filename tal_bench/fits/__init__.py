"""Learning-curve fits of mAP against training fraction: families, robust fits, backtests,
calibrated projections and the checks that say when not to trust them.

Pure numpy/scipy/pandas (no torch, no models). Units: fractions in percent, mAP in points 0-100.
The CLI front-end is ``talbench fit`` (``tal_bench.pipelines.fit``).
"""

from __future__ import annotations

from tal_bench.fits.anchors import Anchors, fit_range
from tal_bench.fits.backtest import ENSEMBLE, forecast, project, run_backtest
from tal_bench.fits.curves import BASELINES, CURVES, METHODS, Curve
from tal_bench.fits.diagnose import trust_issues, trust_warning
from tal_bench.fits.fit import FitResult, fit_curve, get_curve, goodness_of_fit

__all__ = [
    "BASELINES",
    "CURVES",
    "ENSEMBLE",
    "METHODS",
    "Anchors",
    "Curve",
    "FitResult",
    "fit_curve",
    "fit_range",
    "forecast",
    "get_curve",
    "goodness_of_fit",
    "project",
    "run_backtest",
    "trust_issues",
    "trust_warning",
]
