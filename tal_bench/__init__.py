"""tal-bench: data- and compute-efficiency benchmarks for temporal action localization."""

__version__ = "0.1.0"
