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


def test_simulate_table_reads_at_80_columns():
    """simulate's result table: one row per strategy and round, every header and number whole at 80 columns."""
    import io

    import numpy as np
    from rich.console import Console

    from dgan_al.cli.simulate import _table
    from dgan_al.workflows.simulate_analysis import analyse

    rng = np.random.default_rng(0)
    strategies = ["random", "random-expert", "uncertainty", "al"]
    r, s, t, n, k = 3, len(strategies), 4, 6, 3
    conf = rng.integers(0, 50, size=(r, s, t, n, k, k))
    images = np.broadcast_to(np.arange(t) * 6 + 1, (r, s, t)).astype(float)
    clicks = {"prefill": images * 150, "scratch": images * 200}
    test = analyse(conf, images, clicks, strategies, n_boot=50)
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(_table("test mIoU by round", test))
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    header = next(line for line in text.splitlines() if line.startswith("strategy"))
    assert header.split() == ["strategy", "round", "mIoU", "images", "clicks", "vs", "random", "90%", "interval"]
    al = [line for line in text.splitlines() if line.startswith("al ")][0].split()
    curve = test["curves"]["al"]
    lo, hi = curve["diff_interval"][0]
    assert al == ["al", "0", f"{curve['miou'][0]:.3f}", "1", f"{curve['clicks_prefill'][0]:.0f}",
                  f"{curve['diff_to_random'][0]:+.3f}", f"[{lo:+.3f},", f"{hi:+.3f}]"]
