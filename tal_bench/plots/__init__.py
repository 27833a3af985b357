"""Figures and tables of the study and of ETAD from loaded records, and the report pages.

* :mod:`~tal_bench.plots.style`: fixed rcParams, machine footer, deterministic saving, ``Plot``;
* :mod:`~tal_bench.plots.figures`: learning curves, curve fits/extrapolation, DPS ratios;
* :mod:`~tal_bench.plots.compute`: latency/MACs/memory against length, utilisation timelines;
* :mod:`~tal_bench.plots.tables`: report tables (``Table``) and their Markdown/HTML rendering;
* :mod:`~tal_bench.plots.html`: the self-contained HTML page and the Markdown page.

Every ``plot_*`` function returns a ``Plot`` whose ``data`` is exactly what was drawn.
"""

from __future__ import annotations

from tal_bench.plots.style import Plot
from tal_bench.plots.tables import Table

__all__ = ["Plot", "Table"]
