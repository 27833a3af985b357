"""The Typer app, the error boundary and the output helpers every command uses."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console

from tal_bench.errors import TalBenchError
from tal_bench.runtime import keep_freed_memory

app = typer.Typer(
    name="talbench",
    help="Data- and compute-efficiency benchmarks for temporal action localization.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Human-readable output goes to stderr so that `--json` output on stdout stays parseable.
console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Turn a TalBenchError into one red line on stderr and exit code 2 (no traceback)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TalBenchError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def emit_json(summary: Any) -> None:
    """Print the machine-readable summary of a command to stdout."""
    sys.stdout.write(json.dumps(summary, indent=2, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "__fspath__"):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def main() -> None:
    """Console-script entry point."""
    keep_freed_memory()
    app()
