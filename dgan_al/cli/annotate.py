"""`dgan-al annotate [ROUND]`: open a round's images in LabelMe, with its labels file and our flags."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.text import Text

from dgan_al.cli.app import app, console, handles_user_errors
from dgan_al.errors import UserError

ROUND_FOLDER = re.compile(r"round_(\d+)")
LABELS_FILE = "labels.txt"


def find_round_folder(spec: Optional[str], root: Path) -> Path:
    """The round folder ``spec`` names: a round number N (``rounds/round_NNN`` under ``root``), a folder
    path, or None for the highest-numbered ``rounds/round_*`` folder."""
    rounds = root / "rounds"
    if spec is None:
        numbered = sorted(
            (int(m.group(1)), p) for p in rounds.glob("round_*") if (m := ROUND_FOLDER.fullmatch(p.name)) and p.is_dir()
        )
        if not numbered:
            raise UserError(f"no round folders (rounds/round_NNN) in {root.resolve()}",
                            fix="run dgan-al in a workspace, or name a folder: dgan-al annotate PATH")  # fmt: skip
        return numbered[-1][1]
    if spec.isdigit():
        folder = rounds / f"round_{int(spec):03d}"
        if not folder.is_dir():
            raise UserError(f"round {int(spec)} does not exist: no folder {folder}",
                            fix="dgan-al status lists the rounds")  # fmt: skip
        return folder
    folder = Path(spec)
    if not folder.is_dir():
        raise UserError(f"{spec} is not a folder", fix="give a round number or a round's folder")
    return folder


@app.command("annotate")
@handles_user_errors
def annotate(
    round_spec: Optional[str] = typer.Argument(
        None, metavar="ROUND", help="Round number or folder (default: the latest round)."),
    print_only: bool = typer.Option(
        False, "--print-command", help="Print the LabelMe command instead of running it."),
) -> None:
    """Open a round's images in LabelMe: tick 'done' on each finished image, 'unrealistic' to skip one."""
    from dgan_al.labelme import LabelMeNotInstalled, find_labelme, labelme_command, launch_labelme

    folder = find_round_folder(round_spec, Path("."))
    labels_file = folder / LABELS_FILE
    if not labels_file.is_file():
        raise UserError(f"no {LABELS_FILE} in {folder}", fix="export the round again with dgan-al next-round")
    install = find_labelme()
    if install is None:
        raise LabelMeNotInstalled()
    argv = labelme_command(folder, labels_file, install=install)  # refuses LabelMe older than 5
    if print_only:
        console.print(shlex.join(argv), markup=False, highlight=False, soft_wrap=True)
        return
    images = sum(1 for _ in folder.glob("*.png"))
    console.print(f"Opening LabelMe {install.version} on [bold]{escape(str(folder))}[/] ({images} images). "
                  "Tick [bold]done[/] when an image is finished, [bold]unrealistic[/] to skip it; "
                  "LabelMe saves as you go.", highlight=False)  # fmt: skip
    console.print(Text(shlex.join(argv), style="dim"), soft_wrap=True)
    code = launch_labelme(folder, labels_file, install=install)
    if code != 0:
        raise typer.Exit(code=code)
