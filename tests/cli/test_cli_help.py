"""Every ``--help`` reads well at 80 columns: no line wider, no hard line break inside a
paragraph, the example on one line."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tal_bench.cli import app

WIDTH = 80
runner = CliRunner()


def _paths(cmd: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    if _is_group(cmd):
        for name, sub in sorted(cmd.commands.items()):
            paths += _paths(sub, (*prefix, name))
    return paths


def _is_group(cmd: Any) -> bool:
    return hasattr(cmd, "commands")  # Typer 0.29 vendors click: no click.Group to test


COMMANDS = _paths(typer.main.get_command(app))


def _help(path: tuple[str, ...]) -> str:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(WIDTH)}, color=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _prose(text: str) -> list[str]:
    """The description between the usage line and the first panel, right-stripped."""
    lines = [line.rstrip() for line in text.splitlines()]
    start = next(i for i, line in enumerate(lines) if "Usage:" in line) + 1
    end = next((i for i, line in enumerate(lines) if line.startswith("╭")), len(lines))
    return lines[start:end]


def ragged_breaks(lines: list[str], width: int = WIDTH - 2) -> list[str]:
    """Lines broken although the next line's first word would have fitted: a hard break in
    the source, not the terminal's wrap (``width``: the text area, padding taken off)."""
    bad = []
    for line, nxt in zip(lines, lines[1:], strict=False):
        if line.strip() and nxt.strip():
            word = nxt.split()[0]
            if len(line) + 1 + len(word) <= width + 1:  # +1: rich's one-space left padding
                bad.append(f"{line!r} / {nxt!r}")
    return bad


def test_the_ragged_check_finds_a_hard_break():
    # an independent case: a break after "is" although "wrapped" fits on the line
    lines = [" This sentence is", " wrapped by hand.", "", " " + "word " * 15 + "end", " next"]
    assert ragged_breaks(lines) == [f"{lines[0]!r} / {lines[1]!r}"]


def test_every_command_is_covered():
    names = {p[-1] for p in COMMANDS if p}
    assert {"train", "evaluate", "data-scaling", "fit", "profile", "report"} <= names
    assert {("datasets", "check"), ("datasets", "synth"), ("ls", "models")} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "talbench")
def test_help_reads_well_at_80_columns(path: tuple[str, ...]):
    text = _help(path)
    wide = [line for line in text.splitlines() if len(line.rstrip()) > WIDTH]
    assert not wide, wide
    prose = _prose(text)
    assert ragged_breaks(prose) == []
    examples = [line for line in prose if "Example:" in line]
    if path and not _is_group(_command(path)):
        assert len(examples) == 1, prose  # every command ends with an example...
        # ...on one line: the next line is blank
        i = prose.index(examples[0])
        assert i + 1 == len(prose) or not prose[i + 1].strip(), prose[i : i + 2]


def _command(path: tuple[str, ...]) -> Any:
    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return cmd


def test_command_lists_show_one_line_summaries():
    for path in COMMANDS:
        cmd = _command(path)
        for sub in getattr(cmd, "commands", {}).values():
            summary = sub.short_help or sub.help or ""
            assert "\n" not in summary and len(summary) <= 90, summary


def test_written_out_fit_defaults_match_the_library():
    from tal_bench.cli import fit as cli_fit
    from tal_bench.fits import CURVES
    from tal_bench.pipelines.fit import DEFAULT_N_BOOT, DEFAULT_N_BOOT_BACKTEST

    assert cli_fit.N_BOOT == DEFAULT_N_BOOT
    assert cli_fit.N_BOOT_BACKTEST == DEFAULT_N_BOOT_BACKTEST
    listed = re.split(r",\s*", cli_fit.ALL_FAMILIES_HELP)
    assert listed == list(CURVES)
