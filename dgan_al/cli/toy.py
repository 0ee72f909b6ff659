"""`dgan-al toy ...`: commands of the built-in toy-faces world."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from dgan_al.cli.app import console, handles_user_errors, toy_app
from dgan_al.cli.progress import progress_bars


@toy_app.command("distill")
@handles_user_errors
def distill_command(
    out: Path = typer.Option(Path("runs/toy-distill"), help="Folder for checkpoints, loss.png and toy_faces.pt."),
    steps: int = typer.Option(5000, min=1, help="Training steps; the cosine learning-rate decay spans them."),
    batch: int = typer.Option(16, min=1, help="Scenes per step."),
    lr: float = typer.Option(4e-3, help="Peak Adam learning rate."),
    minutes: Optional[float] = typer.Option(None, help="Stop after this many minutes of training."),
    n_train: int = typer.Option(40_000, min=1, help="Rendered training scenes."),
    device: str = typer.Option("cpu", help="cpu, cuda or auto."),
    seed: int = typer.Option(0, help="Initialisation and batch-order seed."),
    threads: Optional[int] = typer.Option(None, help="CPU threads (1 is fastest when the cores are busy)."),
    workers: Optional[int] = typer.Option(None, min=1, help="Processes rendering the training scenes (default: every core)."),
    rare_boost: float = typer.Option(
        0.0, min=0.0, max=1.0,
        help="Fraction of the training scenes given one extra rare part (glasses, hat, beard or earrings)."),
    part_weight: float = typer.Option(
        1.0, min=0.01,
        help="Loss weight of the small and rare parts' pixels (eyes, brows, nose, mouth, ears, glasses, hat, "
             "beard, earrings) against the rest; 1 weighs every pixel alike."),
    init: Optional[str] = typer.Option(
        None, help="Start from these weights: a toy_faces.pt, or 'toy-faces' for the shipped ones (fine-tuning)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint.pt."),
) -> None:
    """Distil the toy-faces StyleGAN2 from the renderer (reproduces the shipped weights)."""
    from dgan_al.device import resolve_device
    from dgan_al.generators.toy_faces.distill import DistillSettings, distill

    settings = DistillSettings(steps=steps, batch=batch, lr=lr, minutes=minutes, n_train=n_train, seed=seed,
                               threads=threads, workers=workers, device=str(resolve_device(device)),
                               rare_boost=rare_boost, part_weight=part_weight, init=init)
    with progress_bars() as report:
        info = distill(out, settings, resume=resume, progress=report)
    table = Table(title="toy-faces distillation", show_header=False)
    table.add_row("steps", str(info["steps"]))
    table.add_row("held-out PSNR", f"{info['held_out_psnr_db']:.2f} dB")
    table.add_row("weights", str(out / "toy_faces.pt"))
    table.add_row("loss curve", str(out / "loss.png"))
    console.print(table)
    console.print("Copy the weights into dgan_al/generators/toy_faces/ to ship them.")


@toy_app.command("diffusion")
@handles_user_errors
def diffusion_command(
    out: Path = typer.Option(Path("runs/toy-diffusion"), help="Folder for checkpoints, loss.png and adm.pt (+ adm.pt.json)."),
    steps: int = typer.Option(4000, min=1, help="Training steps."),
    batch: int = typer.Option(16, min=1, help="Renders per step."),
    lr: float = typer.Option(3e-4, help="Adam learning rate (after a linear warm-up)."),
    image_size: int = typer.Option(64, help="Training resolution: the 128 px renders box-downscaled (128, 64, 32 or 16)."),
    num_channels: int = typer.Option(32, min=32, help="The UNet's base width (guided-diffusion's num_channels)."),
    num_res_blocks: int = typer.Option(1, min=1, help="ResBlocks per level (guided-diffusion's num_res_blocks)."),
    minutes: Optional[float] = typer.Option(None, help="Stop after this many minutes of training (then --resume)."),
    seed: int = typer.Option(0, help="Initialisation and draw seed."),
    threads: Optional[int] = typer.Option(None, help="CPU threads (1 is fastest when the cores are busy)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoint.pt."),
) -> None:
    """Train a small guided-diffusion (ADM) UNet on toy-faces renders: the offline test bed of the diffusion
    features (epsilon-prediction DDPM loss, linear schedule, 1000 steps). Writes OUT/adm.pt and adm.pt.json."""
    from dgan_al.errors import UserError
    from dgan_al.generators.adm.train import RENDER_SIZE, ADMTrainSettings, train_adm

    if image_size < 16 or RENDER_SIZE % image_size:
        raise UserError(f"--image-size must be 128, 64, 32 or 16, got {image_size}", fix="e.g. --image-size 64")
    if num_channels % 32:
        raise UserError(f"--num-channels must be a multiple of 32 (GroupNorm's 32 groups), got {num_channels}",
                        fix="e.g. --num-channels 32")
    mult = (1, 2, 2, 2) if image_size >= 32 else (1, 2)
    settings = ADMTrainSettings(image_size=image_size, num_channels=num_channels, num_res_blocks=num_res_blocks,
                                channel_mult=mult, attention_resolutions=(8,), steps=steps, batch=batch, lr=lr,
                                minutes=minutes, seed=seed, threads=threads)
    with progress_bars() as report:
        info = train_adm(out, settings, resume=resume, progress=report)
    table = Table(title="toy-faces diffusion model", show_header=False)
    table.add_row("steps", str(info["steps"]))
    table.add_row("final loss (smoothed)", f"{info['final_loss']:.4f}")
    table.add_row("training time", f"{info['train_minutes']:.1f} min (all runs)")
    table.add_row("weights", f"{out / 'adm.pt'} (+ .json)")
    table.add_row("loss curve", str(out / "loss.png"))
    console.print(table)


@toy_app.command("renders")
@handles_user_errors
def renders_command(
    folder: Path = typer.Argument(..., help="New (or PNG-free) folder for the renders."),
    n: int = typer.Option(200, help="Number of renders."),
    seed: int = typer.Option(0, help="Latent stream of the scenes (render i is latent i of it)."),
) -> None:
    """Write toy-faces renders as PNG files, a "photo pool" whose exact masks can be re-rendered (the toy
    oracle for photo pools); the seed and each file's index go to FOLDER/toy-renders.json."""
    from dgan_al.generators.toy_faces.render_pool import RECORD, write_render_pool

    with progress_bars() as report:
        result = write_render_pool(folder, n, seed, progress=report)
    console.print(f"{len(result.files)} renders ({result.files[0]} .. {result.files[-1]}) and {RECORD} "
                  f"in {result.folder} (seed {result.seed})", highlight=False)


@toy_app.command("oracle")
@handles_user_errors
def oracle_command(
    round_number: Optional[int] = typer.Argument(None, metavar="ROUND", help="Round to annotate (default: the latest)."),
    keep: Optional[int] = typer.Option(
        None, min=0, help="Annotate only the KEEP most realistic open files, tick 'unrealistic' on the rest "
                          "(default: as many as the round asks for in its README.txt, less those already done)."),
    workspace: Path = typer.Option(Path("."), "--workspace", "-w", help="The workspace (default: the current folder)."),
    truth: str = typer.Option(
        "visible", help="visible: label what the GAN image shows (parts G does not draw are left out); "
                        "renderer: the scene's exact mask."),
) -> None:
    """Annotate a round from the toy-faces ground truth as the round asks a person to (the K most realistic,
    the rest ticked 'unrealistic'), exactly as a person's LabelMe files come back; prints the clicks each file
    took (from scratch, and correcting its pre-fill) and records them in the round's clicks.json."""
    from dgan_al.workflows.oracle import oracle_annotate
    from dgan_al.workspace.layout import Workspace
    from dgan_al.workspace.lock import WorkspaceLock

    from dgan_al.errors import UserError, quote
    from dgan_al.generators.toy_faces.visible import TRUTHS

    if truth not in TRUTHS:
        raise UserError(f"--truth must be one of {', '.join(TRUTHS)}, got {quote(truth)}", fix="use --truth visible")
    ws = Workspace.find(workspace)
    with WorkspaceLock(ws.root, "toy oracle"):
        result = oracle_annotate(ws, round_number, keep, truth=truth, as_asked=keep is None)
    table = Table(title=f"oracle annotations in {result.folder} ({truth} truth)")
    for col in ("id", "flag", "from scratch", "re-trace", "edit", "MSE"):
        table.add_column(col, justify="right")
    for id in result.annotated:
        table.add_row(id, "done", str(result.vertices[id]), str(result.prefill_clicks[id]), str(result.edit_clicks[id]),
                      f"{result.realism_mse[id]:.0f}")
    for id in result.unrealistic:
        table.add_row(id, "unrealistic", "-", "-", "-", f"{result.realism_mse[id]:.0f}")
    if result.annotated:
        total = result.clicks
        table.add_row("total", "", str(total["scratch"]), str(total["prefill"]), str(total["edit"]), "")
    console.print(table)
    console.print("clicks: drawing every part; correcting the pre-fill by re-tracing what is wrong; by editing its "
                  "polygons (dgan_al/labelme/clicks.py). MSE: GAN image against the scene's render.", highlight=False)
    if result.untouched:
        console.print(f"left alone (already done or skipped): {', '.join(result.untouched)}")
    console.print(_what_it_did(result, keep), highlight=False)
    console.print("Next: [bold]dgan-al next-round[/] imports them.")


def _what_it_did(result, keep: Optional[int]) -> str:
    """One line: what the oracle annotated and why that many."""
    did = f"annotated {len(result.annotated)}, ticked 'unrealistic' on {len(result.unrealistic)}"
    if keep is not None:
        return f"{did} (--keep {keep}: the {keep} most realistic of the open files)"
    before = f"; {result.done_before} already done" if result.done_before else ""
    return (f"{did}: {result.folder.name} asks for the {result.asked} most realistic of its {result.exported} "
            f"images (README.txt){before}; --keep N annotates another number")


@toy_app.command("real-test")
@handles_user_errors
def real_test_command(
    folder: Path = typer.Argument(..., help="New folder for the test images and their LabelMe files."),
    n: int = typer.Option(100, help="Number of test images."),
    seed: int = typer.Option(3000, help="Latent stream of the test scenes (apart from pools and datasets)."),
    keypoints: bool = typer.Option(
        False, "--keypoints",
        help="Also place the toy-faces keypoints (renderer's exact points) and tick the 'keypoints' flag: for a "
             "workspace with [keypoints] names (without them the points would be refused as unknown classes)."),
) -> None:
    """Render a "real" annotated test set: crisp renderer images (not GAN-made) with LabelMe files."""
    from dgan_al.workflows.toy_real_test import make_real_test

    with progress_bars() as report:
        result = make_real_test(folder, n, seed, progress=report, keypoints=keypoints)
    console.print(f"{result.written} test images with LabelMe files in {result.folder}")
    console.print("classes present in: " + ", ".join(f"{c} {p:.0%}" for c, p in result.class_presence.items()))
    console.print(f"Next: [bold]dgan-al evaluate --dataset DATA --test {folder}[/]")
