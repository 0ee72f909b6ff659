"""`dgan-al inspect-generator`: what a generator is, before you build a workspace on it."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from dgan_al.cli.app import app, console, handles_user_errors
from dgan_al.errors import UserError, quote


def parse_crop(text: Optional[str]) -> Optional[tuple[int, int, int, int]]:
    """'top,left,height,width' -> a tuple of four ints."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4:
        raise UserError(f"--crop {quote(text)} is not four integers", fix="write it as top,left,height,width, e.g. 64,0,384,512")
    return values  # type: ignore[return-value]


@app.command("inspect-generator")
@handles_user_errors
def inspect_generator(
    spec: str = typer.Argument(..., help="toy-faces, or the path of a StyleGAN2 (.pt / .pkl) or datasetGAN "
                               "StyleGAN1 (.for_g_all.pt) checkpoint."),
    label_resolution: Optional[int] = typer.Option(
        None, help="Label at this resolution (e.g. 512 for a 1024px generator)."),
    crop: Optional[str] = typer.Option(
        None, help="Crop of the labelled image: top,left,height,width (LSUN cars: 64,0,384,512)."),
    truncation_psi: float = typer.Option(1.0, help="Truncation towards the mean w (1 = none)."),
) -> None:
    """Print a generator's format, resolution, mapping depth, channels, feature width, conv clamp and where
    its average w comes from."""
    from dgan_al.generators import load_generator

    generator = load_generator(spec, truncation_psi=truncation_psi, label_resolution=label_resolution,
                               crop=parse_crop(crop))
    table = Table(title=f"generator {spec}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in generator.describe().items():
        table.add_row(key, str(value))
    console.print(table)
    console.print(f"Next: [bold]dgan-al init DIR --generator {spec}[/] makes a workspace on it.", highlight=False)
