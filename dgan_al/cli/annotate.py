"""`dgan-al annotate [ROUND]`: open a round's images in LabelMe at the first unfinished one, with its
labels file and our flags, and say how many are left. LabelMe runs in the round's ``annotate/`` folder, so
its file list shows the file names; a LabelMe that cannot start or is killed ends in one line (exit 2)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.text import Text

from dgan_al.cli.app import app, console, handles_user_errors
from dgan_al.errors import UserError
from dgan_al.workspace.layout import ANNOTATE_DIR, LABELS_FILE, RoundFiles

ROUND_FOLDER = re.compile(r"round_(\d+)")


def find_round_folder(spec: Optional[str], root: Path) -> Path:
    """The round folder ``spec`` names: a round number N (``rounds/round_NNN`` under ``root``), a folder
    path (a round's folder or its ``annotate/`` folder), or None for the highest-numbered round."""
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
    if folder.name == ANNOTATE_DIR and (folder / LABELS_FILE).is_file():
        return folder.parent
    return folder


@app.command("annotate")
@handles_user_errors
def annotate(
    round_spec: Optional[str] = typer.Argument(
        None, metavar="ROUND", help="Round number or folder (default: the latest round)."),
    print_only: bool = typer.Option(
        False, "--print-command", help="Print the LabelMe command (cd to the round's annotate folder, then "
                                       "labelme ...) instead of running it."),
) -> None:
    """Open a round's images in LabelMe: tick 'done' on each finished image, 'unrealistic' to skip one."""
    from dgan_al.labelme import LabelMeNotInstalled, find_labelme, labelme_command, launch_labelme
    from dgan_al.labelme.launch import shell_command
    from dgan_al.workflows.status import find_workspace, round_files_status

    folder = find_round_folder(round_spec, Path("."))
    images = RoundFiles(folder).annotate
    labels_file = images / LABELS_FILE
    if not labels_file.is_file():
        raise UserError(f"no {LABELS_FILE} in {images}", fix="export the round again with dgan-al next-round")
    install = find_labelme()
    if install is None:
        raise LabelMeNotInstalled()
    ws = find_workspace(folder)
    files = round_files_status(folder, ws)
    left = [f for f in files if not f.finished]
    start = left[0].image_path if left else None
    keypoints = ws.config.keypoints.names if ws is not None else ()
    argv = labelme_command(images, labels_file, install=install, start=start, keypoints=keypoints)  # 5 or newer
    if print_only:
        console.print(shell_command(images, argv), markup=False, highlight=False, soft_wrap=True)
        return
    problems = sum(f.state == "problem" for f in left)
    if left:
        where = "at" if install.major >= 6 else "(LabelMe 5 opens the first image; the first unfinished is"
        first = escape(left[0].image_path.name) + ("" if install.major >= 6 else ")")
        console.print(f"{len(left)} of {len(files)} images left"
                      + (f" ({problems} with a problem: `dgan-al status` says what)" if problems else "")
                      + f". Opening LabelMe {install.version} on [bold]{escape(str(images))}[/] {where} {first}.",
                      highlight=False)  # fmt: skip
    else:
        console.print(f"All {len(files)} images of this round are finished. Opening LabelMe {install.version} "
                      f"on [bold]{escape(str(images))}[/].", highlight=False)  # fmt: skip
    console.print("Tick [bold]done[/] when an image is finished, [bold]unrealistic[/] to skip it; LabelMe saves as "
                  "you go. (LabelMe ticks every file that has a JSON, so its own ticks do not say what is finished.)",
                  highlight=False)  # fmt: skip
    console.print(Text(shell_command(images, argv), style="dim"), soft_wrap=True)
    launch_labelme(images, labels_file, install=install, start=start, keypoints=keypoints)  # failing: one line, exit 2
