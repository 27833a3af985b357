"""The Typer app, the error boundary and the output helpers every command uses."""

from __future__ import annotations

import inspect
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


def reflow(doc: str) -> str:
    """A docstring as terminal help: paragraphs kept, the line breaks inside each removed.

    Source lines stop at 100 columns; rich wraps help to the terminal, but only the first
    paragraph's own line breaks are removed by Typer, so later paragraphs came out ragged at 80
    columns (a hard break, then rich's break a few words later).
    """
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def tidy_help(group: typer.Typer) -> None:
    """Reflow the help of every command of ``group`` and its sub-groups; the first paragraph
    (one sentence) is the short help listed by ``talbench --help``."""
    for info in group.registered_commands:
        doc = info.help if isinstance(info.help, str) else inspect.getdoc(info.callback) or ""
        info.help = reflow(doc)
        info.short_help = info.help.split("\n\n")[0]
    for sub in group.registered_groups:
        tidy_help(sub.typer_instance)


def print_note(line: str) -> None:
    """One yellow ``note:`` line on stderr (something the user should know, not an error)."""
    console.print(f"[yellow]note:[/] {line}", highlight=False, soft_wrap=True)


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
