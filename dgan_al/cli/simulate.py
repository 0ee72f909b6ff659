"""`simulate`: the paper's active-learning experiment on toy-faces with the oracle annotator."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.table import Table

from dgan_al.cli.app import app, console, handles_user_errors
from dgan_al.cli.progress import progress_bars


@app.command("simulate")
@handles_user_errors
def simulate_command(
    strategies: str = typer.Option("random,random-expert,uncertainty,coreset,al",
                                   help="Comma-separated: random, random-expert, uncertainty, coreset, al."),
    rounds: int = typer.Option(4, help="Annotation rounds after the mean image."),
    per_round: int = typer.Option(6, help="Images annotated per round (al and random-expert draw twice as many; the expert keeps these)."),
    repeats: int = typer.Option(3, help="Repeats with different seeds (and pools)."),
    pool_size: int = typer.Option(1000, help="Candidate latents per repeat."),
    val_size: int = typer.Option(40, help="Held-out GAN samples for choosing settings."),
    test_size: int = typer.Option(60, help="Held-out GAN samples for the reported figures."),
    embedding: str = typer.Option("activations", help="Coreset embedding: activations or w."),
    skip_top: float = typer.Option(0.10, help="al: drop this most-uncertain fraction."),
    band: float = typer.Option(0.10, help="al: the band below it."),
    centers: int = typer.Option(0, help="al: k-center centres (0 = twice --per-round)."),
    score_pixels: str = typer.Option("grid:8", help="Pixels of the pool's JS image score (grid:S)."),
    eval_pixels: str = typer.Option("grid:2", help="Pixels scored on the held-out sets: full, grid:S or subset:N."),
    members: int = typer.Option(10, help="Interpreter ensemble members."),
    epochs: int = typer.Option(8, help="Interpreter training epochs (at most)."),
    pixels_per_image: int = typer.Option(1024, help="Training pixels per annotated image (the loop's default is 2048)."),
    seed: int = typer.Option(0, help="Base seed; repeat r uses seed + r."),
    device: str = typer.Option("cpu", help="cpu, cuda or auto."),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads."),
    out: Path = typer.Option(Path("runs/simulate"), help="Output folder (resumable: finished runs are kept)."),
) -> None:
    """Compare selection strategies on toy-faces: the oracle annotates through the real LabelMe path and
    every strategy's interpreter is measured on fixed held-out GAN samples after every round."""
    import torch

    from dgan_al.generators import resolve_device
    from dgan_al.workflows.simulate import SimulateSettings, simulate

    if threads:
        torch.set_num_threads(threads)
    settings = SimulateSettings(tuple(s.strip() for s in strategies.split(",") if s.strip()), rounds, per_round,
                                repeats, pool_size, val_size, test_size, embedding, skip_top, band, centers,
                                score_pixels, eval_pixels, members, epochs, pixels_per_image, seed,
                                str(resolve_device(device)))
    with progress_bars() as report:
        result = simulate(out, settings, progress=report)
    summary = result.summary
    console.print(_table(f"test mIoU (mean ± std over {repeats} repeat(s)) by annotated images", summary, "test"))
    console.print(_table("validation mIoU (for choosing settings)", summary, "val"))
    if result.reused:
        console.print(f"{result.reused} run(s) were already finished in {out} and reused")
    for name, path in result.files.items():
        console.print(f"{name}: {path}")


def _table(title: str, summary: dict, split: str) -> Table:
    """Strategies (rows) x numbers of annotated images (columns): mean ± std of mIoU on ``split``."""
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1))
    table.add_column("strategy", no_wrap=True)
    for n in next(iter(summary.values()))["n_annotations"]:
        table.add_column(str(n), justify="right", no_wrap=True, min_width=10)
    for strategy, entry in summary.items():
        table.add_row(strategy, *(_cell(m, s) for m, s in zip(entry[f"{split}_mean"], entry[f"{split}_std"])))
    return table


def _cell(mean: float, std: float) -> str:
    """"0.237±.002": mean and standard deviation, narrow enough for five columns in 80."""
    return f"{mean:.3f}±{std:.3f}".replace("±0.", "±.")
