"""Every command's --help: it works, and a flag (--help, --version, --force, --prefill/--no-prefill) shows no
value such as `<bool>` (typer 0.29's rich help prints one for every option unless told not to)."""

import click
import typer
from typer.testing import CliRunner

from dgan_al.cli import app

runner = CliRunner()


def command_paths(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The argument paths of every command and group below ``command`` (itself included)."""
    paths = [path]
    for name, sub in getattr(command, "commands", {}).items():
        paths += command_paths(sub, (*path, name))
    return paths


def test_no_help_shows_a_value_for_a_flag():
    paths = command_paths(typer.main.get_command(app))
    assert ("toy", "oracle") in paths and ("status",) in paths and len(paths) >= 15
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
        assert result.exit_code == 0, (path, result.output)
        assert "--help" in result.output, path
        assert "<bool>" not in result.output, (path, result.output)
        assert "[[" not in result.output, (path, result.output)  # a metavar bracketed twice
    root = runner.invoke(app, ["--help"], env={"COLUMNS": "100"}).output
    assert "--version" in root and "<bool>" not in root
    # options that take a value still show its type
    assert "<int>" in runner.invoke(app, ["next-round", "--help"], env={"COLUMNS": "100"}).output
