"""The `talbench` command line: thin Typer commands that parse options and call one library
function each. Each command group lives in its own module and registers on ``app``."""

from __future__ import annotations

from tal_bench.cli.app import app, main, tidy_help

# Command modules register their commands on import; one line per module.
# (command modules are imported here)
# The order is the order of `talbench --help`.
from tal_bench.cli import train as _train  # noqa: E402,F401  isort: skip
from tal_bench.cli import evaluate as _evaluate  # noqa: E402,F401  isort: skip
from tal_bench.cli import grid as _grid  # noqa: E402,F401  isort: skip
from tal_bench.cli import fit as _fit  # noqa: E402,F401  isort: skip
from tal_bench.cli import profile as _profile  # noqa: E402,F401  isort: skip
from tal_bench.cli import report as _report  # noqa: E402,F401  isort: skip
from tal_bench.cli import ls as _ls  # noqa: E402,F401  isort: skip
from tal_bench.cli import datasets as _datasets  # noqa: E402,F401  isort: skip

tidy_help(app)

__all__ = ["app", "main"]
