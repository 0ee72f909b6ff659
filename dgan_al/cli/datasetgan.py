"""`import-datasetgan`: the DatasetGAN paper's released annotations (and test set) into this workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from dgan_al.cli.app import app, console, handles_user_errors
from dgan_al.cli.progress import progress_bars


@app.command("import-datasetgan")
@handles_user_errors
def import_datasetgan_command(
    folder: Optional[Path] = typer.Argument(
        None, help="datasetGAN_release training-data folder (image_mask{i}.npy + image_{i}.jpg|png)."),
    latents: Optional[Path] = typer.Option(None, help="Its latents, row i = image i (latent_stylegan1.npy)."),
    avg_latent: Optional[Path] = typer.Option(
        None, help="The release's avg_latent_stylegan1.npy: checked against the generator's average latent."),
    classes: Optional[Path] = typer.Option(
        None, help="Class names, one a line, line i = mask value i (default: the workspace's classes)."),
    test: Optional[Path] = typer.Option(None, help="A release testing-data folder (images + .npy masks) to convert."),
    test_out: Optional[Path] = typer.Option(None, help="New folder for the converted test set (LabelMe files)."),
) -> None:
    """Import a datasetGAN_release folder as annotations (checked against the generator first), and/or
    convert its testing data into a LabelMe test set for `evaluate --test`."""
    from dgan_al.workflows.import_datasetgan import DatasetGANImport, convert_test_set, import_datasetgan
    from dgan_al.workflows.import_datasetgan import read_classes as read_class_file
    from dgan_al.workspace.layout import Workspace

    if folder is None and test is None:
        raise typer.BadParameter("give a training-data FOLDER (with --latents), --test DIR, or both")
    if folder is not None and latents is None:
        raise typer.BadParameter("the training-data folder needs --latents FILE", param_hint="--latents")
    if (test is None) != (test_out is None):
        raise typer.BadParameter("give both --test DIR and --test-out DIR", param_hint="--test/--test-out")
    ws = Workspace.find() if folder is not None or classes is None else None
    if folder is not None:
        with progress_bars() as report:
            result = import_datasetgan(ws, DatasetGANImport(folder=folder, latents=latents, avg_latent=avg_latent,
                                                            classes=classes), progress=report)
        table = Table(title=f"{folder}: latents {result.latent_kind}")
        for column in ("row", "image", "PSNR own latent", "PSNR best other", "imported"):
            table.add_column(column, justify="right" if "PSNR" in column or column == "row" else "left")
        for c in result.checks:
            table.add_row(str(c.row), c.image, f"{c.own_psnr:.2f} dB", f"{c.best_other_psnr:.2f} dB",
                          "yes" if c.matches else "[red]no: another latent matches better[/]")
        console.print(table)
        console.print(f"imported {len(result.imported)} annotation(s) into {ws.annotations_dir}"
                      + (f"; skipped {len(result.skipped)}" if result.skipped else "")
                      + (f"; {result.cleaned_pixels:,} pixels of regions under 30 px set to background"
                         if result.cleaned_pixels else ""))
        for note in result.notes:
            console.print(f"[yellow]note:[/] {note}")
    if test is not None:
        names = read_class_file(classes) if classes is not None else ws.config.classes
        with progress_bars() as report:
            converted = convert_test_set(test, test_out, names, progress=report)
        console.print(f"wrote {len(converted.written)} LabelMe test files to {converted.folder} "
                      f"(use: dgan-al evaluate --dataset DIR --test {converted.folder})")
