"""Learning-curve fits of mAP against training fraction: families, robust fits, extrapolation.

Pure numpy/scipy (no torch, no models). Units: fractions in percent, mAP in points 0-100.
The CLI front-end is ``talbench fit`` (``tal_bench.pipelines.fit``).
"""

from __future__ import annotations

from tal_bench.fits.curves import CURVES, Curve
from tal_bench.fits.extrapolate import (
    Anchors,
    bootstrap_projections,
    extrapolate,
    fit_range,
    select_family,
)
from tal_bench.fits.fit import FitResult, fit_curve, get_curve, goodness_of_fit

__all__ = [
    "CURVES",
    "Anchors",
    "Curve",
    "FitResult",
    "bootstrap_projections",
    "extrapolate",
    "fit_curve",
    "fit_range",
    "get_curve",
    "goodness_of_fit",
    "select_family",
]
