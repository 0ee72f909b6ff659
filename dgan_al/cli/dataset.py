"""The data factory: `build-dataset`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from dgan_al.cli.app import app, console, handles_user_errors
from dgan_al.cli.progress import rank_progress


@app.command("build-dataset")
@handles_user_errors
def build_dataset_command(
    out: Optional[Path] = typer.Option(None, help="Output folder (images/, masks/, manifest.csv, ...)."),
    size: int = typer.Option(10_000, help="Generated samples, before filtering."),
    filter_fraction: float = typer.Option(0.10, "--filter", help="Drop this most-uncertain fraction from train.txt."),
    seed: int = typer.Option(1, help="Dataset latent stream: sample i comes from (seed, i), never a pool latent."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda (default: the workspace's [run] device)."),
    shard: Optional[str] = typer.Option(None, help="Build only slice i of n (e.g. 0/4); merge with --merge when all are done. "
                                        "Under torchrun the ranks split the work (and the slice) by themselves."),
    merge: Optional[Path] = typer.Option(None, help="Merge the finished shards in this folder: apply the filter over all."),
    workers: int = typer.Option(4, help="Threads encoding PNGs while the next batch is generated."),
    chunk: Optional[int] = typer.Option(None, help="Samples per chunk (default 64): the unit of resumption and of the "
                                                   "split between shards and ranks; fixed once a dataset is started."),
    images: Optional[Path] = typer.Option(None, help="A photo workspace: label this folder's photos instead of the "
                                          "pool's (--size caps how many, by name)."),
    workspace: Path = typer.Option(Path("."), "--workspace", "-w", help="The workspace (default: the current folder)."),
) -> None:
    """Generate image + mask pairs with the interpreter; drop the most uncertain; resumable and shardable."""
    from dgan_al.workflows.build_dataset import CHUNK, build_dataset, merge_dataset, parse_shard
    from dgan_al.workspace.layout import Workspace

    if merge is not None:
        with rank_progress() as (reports, report):  # under torchrun rank 0 merges
            merged = merge_dataset(merge, filter_fraction, progress=report) if reports else None
        if reports:
            _print_merge(merge, merged)
        return
    if out is None:
        raise typer.BadParameter("give --out DIR (or --merge DIR)", param_hint="--out")
    with rank_progress() as (reports, report):  # under torchrun each rank builds its part, rank 0 merges and reports
        ws = Workspace.find(workspace)
        result = build_dataset(ws, out, size, seed, filter_fraction, device, parse_shard(shard), workers,
                               chunk=CHUNK if chunk is None else chunk, progress=report, images=images)
    if not reports:
        return
    console.print(f"interpreter: {result.interpreter_source}")
    for message in result.messages:
        console.print(f"[yellow]note:[/] {message}")
    what = f"shard {shard}" if shard else "dataset"
    console.print(f"{what}: {result.chunks_computed} chunks generated, {result.chunks_reused} already done"
                  + (f" ({result.samples_per_s:.1f} samples/s)" if result.samples_computed else ""))
    if result.merge is not None:
        _print_merge(result.out, result.merge)
    else:
        console.print(f"Next: finish the other shards; when all are done: [bold]dgan-al build-dataset --merge {out}[/]")


def _print_merge(out: Path, merged) -> None:
    table = Table(title=f"dataset {out}", show_header=False)
    table.add_column("what")
    table.add_column("value", overflow="fold")  # a long value wraps, never ends in '…'
    table.add_row("samples", f"{merged.size}")
    table.add_row("kept (train.txt)", f"{merged.kept}")
    table.add_row("filtered out", f"{merged.rejected} (top {merged.filter:.0%} by JS score"
                  + (f", score >= {merged.threshold:.4g})" if merged.rejected else ")"))
    q = merged.score_quantiles
    table.add_row("image score (JS)", f"median {q['median']:.4g}, p90 {q['p90']:.4g}")
    table.add_row("score range", f"{q['min']:.4g} to {q['max']:.4g}")
    if merged.keypoint_share is not None:
        labelled = merged.keypoint_share.values()
        table.add_row("keypoints labelled", f"{sum(labelled):.1f} of {len(labelled)} per image on average "
                      "(the others: predicted below \\[keypoints] prefill_confidence)")
    for name, path in merged.files.items():
        table.add_row(name.replace("_", " ") + (" (COCO)" if name == "keypoints" else ""), _inside(Path(path), Path(out)))
    console.print(table)
    shares = Table(title="pixel share per class")  # a row each: a class and its share are never split
    shares.add_column("class")
    shares.add_column("pixels", justify="right")
    for name, share in merged.class_share.items():
        shares.add_row(name, f"{share:.1%}", style=None if share else "red")
    console.print(shares)
    console.print(f"Next: [bold]dgan-al evaluate --dataset {out} --test TESTDIR[/] trains a segmenter on it and tests it "
                  "on real images with LabelMe files (toy-faces: [bold]dgan-al toy real-test TESTDIR[/] renders them).")


def _inside(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder`` (the table's title names it) where it lies inside."""
    try:
        return str(path.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(path)
