"""`simulate`: the paper's active-learning experiment on toy-faces with the oracle annotator.

Every option defaults to ``SimulateSettings`` (or to its ``quick`` preset with ``--quick``); the help
shows those defaults. The settings' errors name a setting, shown here as its flag.
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.table import Table

from dgan_al.cli.app import app, console, handles_user_errors
from dgan_al.cli.progress import progress_bars
from dgan_al.workflows.simulate_settings import SimulateSettings

D = SimulateSettings()


def _opt(name: str, text: str):
    """An option whose default (None: take the settings') is shown from ``SimulateSettings``."""
    return typer.Option(None, help=f"{text} (default: {getattr(D, name)!s})", show_default=False)


@app.command("simulate")
@handles_user_errors
def simulate_command(
    strategies: Optional[str] = typer.Option(
        None, help=f"Comma-separated: random, random-expert, uncertainty, coreset, al, rare, typical, typical-al. "
                   f"(default: {','.join(D.strategies)})",
        show_default=False),
    rounds: Optional[int] = _opt("rounds", "Annotation rounds after the first image."),
    per_round: Optional[int] = _opt("per_round", "Images annotated per round (al and random-expert export more; the expert keeps these)."),
    repeats: Optional[int] = _opt("repeats", "Repeats with different seeds (and pools)."),
    pool_size: Optional[int] = _opt("pool_size", "Candidate latents per repeat."),
    val_size: Optional[int] = _opt("val_size", "Held-out GAN samples for choosing settings."),
    test_size: Optional[int] = _opt("test_size", "Held-out GAN samples for the reported figures."),
    embedding: Optional[str] = _opt("embedding", "Coreset embedding: activations or w."),
    skip_top: Optional[float] = _opt("skip_top", "al: drop this most-uncertain fraction."),
    band: Optional[float] = _opt("band", "al: the band below it."),
    centers: Optional[int] = _opt("centers", "al: k-center centres (0 = twice --per-round)."),
    rare_power: Optional[float] = _opt("rare_power", "rare: class weights are (1 / predicted share) ** this."),
    switch_at: Optional[int] = _opt("switch_at", "typical-al: typical below this many annotated images, then al."),
    score_pixels: Optional[str] = _opt("score_pixels", "Pixels of the pool's image score, resolved as next-round does: auto, full or grid:S."),
    eval_pixels: Optional[str] = _opt("eval_pixels", "Pixels scored on the held-out sets: full, grid:S or subset:N."),
    members: Optional[int] = _opt("members", "Interpreter ensemble members."),
    epochs: Optional[int] = _opt("epochs", "Interpreter training epochs (at most)."),
    pixels_per_image: Optional[int] = _opt("pixels_per_image", "Training pixels per annotated image."),
    prefill: Optional[bool] = typer.Option(None, "--prefill/--no-prefill", show_default=False,
                                           help=f"Pre-fill the exported files with the prediction (default: {D.prefill})."),
    prefill_min_annotations: Optional[int] = _opt("prefill_min_annotations", "Pre-fill only from an interpreter trained on at least this many images."),
    truth: Optional[str] = _opt("truth", "What the oracle labels: visible (what G draws) or renderer."),
    seed: Optional[int] = _opt("seed", "Base seed; repeat r uses seed + r."),
    device: Optional[str] = _opt("device", "cpu, cuda or auto."),
    quick: bool = typer.Option(False, "--quick", help="Start from the smoke-run preset (minutes): "
                                                      "2 repeats x 2 rounds, small pool and held-out sets, "
                                                      "pre-fill from 4 annotations on."),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads."),
    out: Path = typer.Option(Path("runs/simulate"), help="Output folder (resumable: finished runs are kept)."),
) -> None:
    """Compare selection strategies on toy-faces: the oracle annotates through the real LabelMe path, its
    clicks are counted, and every strategy's interpreter is measured on fixed held-out GAN samples after
    every round; paired differences to random and savings come with bootstrap intervals."""
    import torch

    from dgan_al.device import resolve_device
    from dgan_al.workflows.simulate import simulate

    if threads:
        torch.set_num_threads(threads)
    given = {k: v for k, v in locals().items() if k in {f.name for f in fields(SimulateSettings)} and v is not None}
    if "strategies" in given:
        given["strategies"] = tuple(s.strip() for s in given["strategies"].split(",") if s.strip())
    if "device" in given:
        given["device"] = str(resolve_device(given["device"]))
    settings = replace(SimulateSettings.quick() if quick else D, **given)
    with progress_bars() as report:
        result = simulate(out, settings, progress=report)
    test = result.analysis["test"]
    console.print(_table(f"test mIoU by round (mean over {test['repeats']} repeats; clicks with the pre-fill; "
                         "difference to random)", test))
    if result.reused:
        console.print(f"{result.reused} run(s) were already finished in {out} and reused")
    for name, path in result.files.items():
        console.print(f"{name}: {path}")


def _table(title: str, analysis: dict) -> Table:
    """One row per strategy and round: mIoU, images, clicks editing the pre-fill (re-tracing for a folder
    made before the edit count), difference to random with its interval (7 narrow columns: reads at 80
    columns whatever the number of rounds)."""
    level = analysis.get("level", 0.9)
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for col in ("strategy", "round", "mIoU", "images", "clicks", "vs random", f"{level:.0%} interval"):
        table.add_column(col, justify="left" if col == "strategy" else "right", no_wrap=True)
    curves = analysis["curves"]
    clicks = "clicks_edit" if all("clicks_edit" in c for c in curves.values()) else "clicks_prefill"
    for name, c in curves.items():
        rounds = len(c["miou"])
        for t, m in enumerate(c["miou"]):
            diff, interval = "", ""
            if "diff_interval" in c:
                lo, hi = c["diff_interval"][t]
                diff, interval = f"{c['diff_to_random'][t]:+.3f}", f"[{lo:+.3f}, {hi:+.3f}]"
            table.add_row(name if t == 0 else "", str(t), f"{m:.3f}", f"{c['images'][t]:.0f}",
                          f"{c[clicks][t]:.0f}", diff, interval, end_section=t == rounds - 1)
    return table
