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


def parse_ints(text: Optional[str], option: str) -> Optional[list[int]]:
    """'50,150,250' -> [50, 150, 250]; None stays None."""
    if text is None:
        return None
    try:
        return [int(p) for p in text.split(",")]
    except ValueError:
        raise UserError(f"--{option} {quote(text)} is not a list of integers", fix=f"write it as a,b,c, e.g. --{option} 1,2,3") from None


@app.command("inspect-generator")
@handles_user_errors
def inspect_generator(
    spec: str = typer.Argument(..., help="toy-faces, or the path of a StyleGAN2 (.pt / .pkl) or datasetGAN "
                               "StyleGAN1 (.for_g_all.pt) checkpoint, or of a guided-diffusion (ADM) UNet "
                               "state dict with its flags in <checkpoint>.json."),
    label_resolution: Optional[int] = typer.Option(
        None, help="Label at this resolution (e.g. 512 for a 1024px generator)."),
    crop: Optional[str] = typer.Option(
        None, help="Crop of the labelled image: top,left,height,width (LSUN cars: 64,0,384,512)."),
    truncation_psi: float = typer.Option(1.0, help="Truncation towards the mean w (1 = none)."),
) -> None:
    """Print a generator's format, resolution, mapping depth, channels, feature width, conv clamp and where
    its average w comes from; for an ADM UNet, its architecture and diffusion settings as read."""
    from pathlib import Path

    from dgan_al.generators import load_generator

    if Path(f"{spec}.json").is_file() and Path(spec).is_file():
        _inspect_adm(Path(spec))
        return
    generator = load_generator(spec, truncation_psi=truncation_psi, label_resolution=label_resolution,
                               crop=parse_crop(crop))
    table = Table(title=f"generator {spec}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in generator.describe().items():
        table.add_row(key, str(value))
    console.print(table)
    console.print(f"Next: [bold]dgan-al init DIR --generator {spec}[/] makes a workspace on it.", highlight=False)


def _inspect_adm(path) -> None:
    """What ``load_adm_checkpoint`` read from an ADM state dict and ``<checkpoint>.json``, and its decoder blocks'
    feature shapes (what ddpm-segmentation's features are read from)."""
    from dgan_al.generators.adm import load_adm_checkpoint
    from dgan_al.generators.adm.features import DEFAULT_BLOCKS, DEFAULT_STEPS

    checkpoint, model = load_adm_checkpoint(path)
    unet = checkpoint.unet
    table = Table(title=f"guided-diffusion (ADM) UNet {path.name}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in vars(unet).items():
        table.add_row(key, ", ".join(map(str, value)) if isinstance(value, (tuple, list, frozenset)) else str(value))
    table.add_row("diffusion_steps", str(checkpoint.diffusion_steps))
    table.add_row("noise_schedule", checkpoint.noise_schedule)
    table.add_row("rescale_timesteps", str(checkpoint.rescale_timesteps))
    table.add_row("parameters", f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M")
    shapes = model.output_block_shapes()
    chosen = [b for b in DEFAULT_BLOCKS if b < len(shapes)]
    table.add_row("decoder blocks (channels @ size)", "; ".join(f"{i}: {c} @ {s}" for i, (c, s) in enumerate(shapes)))
    if chosen:
        table.add_row("default features", f"blocks {', '.join(map(str, chosen))} at steps "
                      f"{', '.join(map(str, DEFAULT_STEPS))}: {sum(shapes[b][0] for b in chosen) * len(DEFAULT_STEPS)} channels")
    else:
        table.add_row("default features", f"none: this UNet has {len(shapes)} decoder blocks, the defaults read "
                      f"blocks {', '.join(map(str, DEFAULT_BLOCKS))}")
    console.print(table)
    console.print("Workspaces on diffusion features (pools of real images) are not available yet.")
