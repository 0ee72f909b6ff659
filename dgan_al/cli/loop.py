"""The annotation loop: `init`, `next-round`, `status`, `remove`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from dgan_al.cli.app import app, console, err_console, handles_user_errors
from dgan_al.cli.generator import parse_crop, parse_ints
from dgan_al.cli.progress import progress_bars, rank_progress


def class_table(title: str, totals: dict) -> Table:
    """Images and labelled pixels per class; classes nobody has annotated yet in red."""
    table = Table(title=title)
    table.add_column("class")
    table.add_column("images", justify="right")
    table.add_column("pixels", justify="right")
    for name, (images, pixels) in totals.items():
        table.add_row(name, str(images), f"{pixels:,}", style=None if images else "red")
    return table


@app.command("init")
@handles_user_errors
def init_command(
    directory: Path = typer.Argument(Path("."), help="Folder of the new workspace (created if missing)."),
    generator: str = typer.Option("toy-faces", help="toy-faces, the path of a StyleGAN checkpoint (.pt / .pkl), or "
                                  "with --images a guided-diffusion (ADM) UNet .pt (its flags in <file>.json) or "
                                  "toy-faces-adm (the shipped UNet of toy-faces renders)."),
    classes: Optional[str] = typer.Option(
        None, help="Class names: a file with one per line (LabelMe's labels.txt works) or a,b,c. "
        "Background first. Default for toy-faces: its 15 classes."),
    pool_size: int = typer.Option(10_000, help="Candidate latents scored each round."),
    seed: int = typer.Option(0, help="Pool seed: latent i comes from (seed, i)."),
    label_resolution: Optional[int] = typer.Option(None, help="Label at this resolution (1024px generators: 512)."),
    crop: Optional[str] = typer.Option(None, help="Crop of the labelled image: top,left,height,width."),
    truncation_psi: float = typer.Option(1.0, help="Truncation towards the mean w (1 = none)."),
    keypoints: Optional[str] = typer.Option(
        None, help="Keypoint names, a,b,c (e.g. left_eye,right_eye,nose_tip; left and right are the subject's): "
        "LabelMe point labels beside the classes. Alone with a checkpoint: a keypoint-only workspace."),
    images: Optional[Path] = typer.Option(
        None, help="A folder of photos as the pool, read by the ADM UNet of --generator (ddpm-segmentation's "
        "features): label your own images. Settings in [photos]."),
    photo_size: int = typer.Option(0, help="With --images: the UNet reads each photo resized (shorter side) and "
                                   "centre-cropped to this square (0: its image_size)."),
    label_size: int = typer.Option(0, help="With --images: label (and annotate) the photos at this square, the "
                                   "features upsampled to it (0: --photo-size, as ddpm-segmentation labels)."),
    steps: Optional[str] = typer.Option(None, help="With --images: diffusion steps the features are read at, a,b,c "
                                        "(default 50,150,250, ddpm-segmentation's)."),
    blocks: Optional[str] = typer.Option(None, help="With --images: the UNet's output blocks read at each step, a,b,c "
                                         "(default 5,6,7,8,12, ddpm-segmentation's for 256 px UNets)."),
) -> None:
    """Create a workspace: settings, the candidate pool, and round 000 (the mean-latent image, or with --images the
    photo nearest the pool's mean feature, to annotate)."""
    from dgan_al.workflows.init import init_workspace, read_classes, read_keypoint_names

    with progress_bars() as report:
        result = init_workspace(directory, generator, read_classes(classes) if classes else None, pool_size, seed,
                                label_resolution, parse_crop(crop), truncation_psi, progress=report,
                                keypoints=read_keypoint_names(keypoints) if keypoints else None, images=images,
                                photo_size=photo_size, steps=parse_ints(steps, "steps"), blocks=parse_ints(blocks, "blocks"),
                                label_size=label_size)
    ws = result.workspace
    table = Table(title=f"new workspace {ws.root}", show_header=False)
    table.add_row("settings", str(ws.config_path))
    table.add_row("generator", f"{result.generator} (feature width {result.feature_width})")
    table.add_row("classes", ", ".join(ws.config.classes))
    if ws.config.keypoints.names:
        table.add_row("keypoints", ", ".join(ws.config.keypoints.names))
    if ws.config.photo_pool:
        table.add_row("pool", f"the photos in {ws.photos_folder()} (index: {ws.photo_index_path})")
        table.add_row("round 000", f"{result.round_folder}: the photo nearest the pool's mean feature")
    else:
        table.add_row("pool", f"{ws.config.pool.size} latents, seed {ws.config.pool.seed} ({ws.pool_dir})")
        table.add_row("round 000", f"{result.round_folder}: the mean-latent image")
    console.print(table)
    console.print("Next: annotate it with [bold]dgan-al annotate[/] (tick 'done'), then run [bold]dgan-al next-round[/].")


@app.command("next-round")
@handles_user_errors
def next_round_command(
    pool_size: Optional[int] = typer.Option(None, help="Score this many pool latents (grows the pool)."),
    skip_top: Optional[float] = typer.Option(None, help="Drop this most-uncertain fraction (default 0.10)."),
    band: Optional[float] = typer.Option(None, help="Width of the band below it (default 0.10)."),
    centers: Optional[int] = typer.Option(None, help="Images the k-center coreset picks (default 12)."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
    seed: Optional[int] = typer.Option(None, help="Interpreter training seed."),
    score_pixels: Optional[str] = typer.Option(None, help="Pixels for the image score: full, grid:N or subset:N."),
    embedding: Optional[str] = typer.Option(None, help="Coreset embedding: activations or w."),
    prefill: Optional[bool] = typer.Option(None, "--prefill/--no-prefill", help="Pre-fill the LabelMe files with predicted polygons "
                                           "(once the interpreter has learnt from run.prefill_min_annotations images)."),
    workspace: Path = typer.Option(Path("."), "--workspace", "-w", help="The workspace (default: the current folder)."),
) -> None:
    """Import finished annotations, retrain the interpreter, score the pool and export the next images."""
    from dgan_al.workflows.next_round import RoundOverrides, next_round
    from dgan_al.workspace.layout import Workspace

    overrides = RoundOverrides(pool_size, skip_top, band, centers, device, seed, prefill, score_pixels, embedding)
    with rank_progress() as (reports, report):  # under torchrun only rank 0 reports
        ws = Workspace.find(workspace)
        result = next_round(ws, overrides, progress=report)
    if not reports:
        return
    imp = result.imports
    console.print(f"imported {len(imp.imported)} new, {len(imp.reimported)} changed, {len(imp.skipped)} skipped as "
                  f"unrealistic; {len(imp.pending)} file(s) still pending")
    if result.pool_changes:
        console.print(f"the photo pool changed since the last round: {result.pool_changes}", highlight=False)
    for path in imp.pending[:12]:
        console.print(f"  pending: {path}", highlight=False)
    if result.status == "up-to-date":
        console.print(result.message)
        return
    console.print(class_table(f"annotated so far: {result.n_annotations} images", result.class_totals))
    q = result.quantiles
    console.print("pool image scores (JS sum): " + "  ".join(f"{k} {v:.1f}" for k, v in q.items()))
    chosen = Table(title=f"round {result.round:03d}: chosen for annotation")
    for col in ("#", "id", "score", "rank", "coreset distance", "pre-filled shapes / vertices"):
        chosen.add_column(col, justify="right" if col != "id" else "left")
    for i, item in enumerate(result.chosen):
        dist = item.get("coreset_distance")
        chosen.add_row(str(i + 1), item["id"], f"{item['score']:.1f}", str(item["rank"]),
                       "-" if dist is None or dist == float("inf") else f"{dist:.2f}",
                       f"{item['prefilled_shapes']} / {item.get('prefilled_vertices', '-')}")
    console.print(chosen)
    if result.prefill_note:
        console.print("files " + result.prefill_note, highlight=False, markup=False, soft_wrap=True)
    times = "  ".join(f"{k} {v:.0f}s" for k, v in result.times.items())
    console.print(f"time: {times}  (pool chunks computed {result.chunks_computed}, reused {result.chunks_reused}; "
                  f"feature cache {result.cache_mb_per_image:.1f} MB per annotated image)")
    console.print(f"wrote {result.folder} (images to annotate in annotate/; contact_sheet.png, selection.json, "
                  "README.txt)")
    console.print(f"Next: [bold]dgan-al annotate {result.round}[/]  - annotate the "
                  f"{ws.config.selection.annotate} most realistic, tick 'done'; tick 'unrealistic' on the rest.")


def print_round_files(r) -> None:
    """One round's files by state, ids only; a file with a problem on its own line with the problem."""
    if not r.files:
        return
    console.print(f"round {r.number:03d} files:", style="bold", highlight=False)
    for state, style in (("done", "green"), ("unrealistic", "dim"), ("edited", "yellow"), ("untouched", None)):
        ids = [f.id + ("" if state != "done" or f.imported else " (not imported yet)") for f in r.files
               if f.state == state]
        if ids:
            console.print(f"  {state} ({len(ids)}): " + ", ".join(ids), style=style, highlight=False, soft_wrap=True)
    for f in r.files:
        if f.state == "problem":
            console.print(f"  problem: {f.json_path.name}: {f.problem}", style="red", markup=False, highlight=False,
                          soft_wrap=True)


@app.command("status")
@handles_user_errors
def status_command(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead (for scripts; its keys are "
                                 "documented in dgan_al/workflows/status.py)."),
    workspace: Path = typer.Option(Path("."), "--workspace", "-w", help="The workspace (default: the current folder)."),
) -> None:
    """Rounds, annotations per class, each round's files (done, unrealistic, problem, edited, untouched), next step.
    Exits 2 when a round's own file (state.json, selection.json) is damaged, after printing what it can."""
    import json

    from dgan_al.workflows.status import workspace_status
    from dgan_al.workspace.layout import Workspace

    st = workspace_status(Workspace.find(workspace))
    if as_json:
        typer.echo(json.dumps(st.to_json(), indent=1, ensure_ascii=False))
    else:
        _print_status(st)
    if st.damaged:
        for problem in st.damaged:
            err_console.print(f"[bold red]error:[/] {escape(problem)}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2)


def _print_photo_pool(pool: dict) -> None:
    """The photo pool's line, and the files changed since the last round (the next round records them)."""
    console.print(f"photo pool {pool['folder']}: {pool['photos']} photos" +
                  (f", {len(pool['unreadable'])} unreadable: " + ", ".join(pool["unreadable"][:5])
                   if pool.get("unreadable") else "") + (f" ({pool['problem']})" if pool.get("problem") else ""),
                  highlight=False, soft_wrap=True)
    changes = pool.get("changes") or {}
    for kind in ("added", "removed", "changed", "renamed"):
        names = [" -> ".join(n) if isinstance(n, list) else n for n in changes.get(kind, [])]
        if names:
            more = f" and {len(names) - 8} more" if len(names) > 8 else ""
            console.print(f"  {kind} since the last round ({len(names)}): " + ", ".join(names[:8]) + more,
                          highlight=False, soft_wrap=True)


def _print_status(st) -> None:
    console.print(f"workspace {st.root}  generator {st.generator}  annotations {st.annotations}  "
                  f"skipped {st.skipped}  removed {st.removed}", highlight=False)
    if st.photo_pool is not None:
        _print_photo_pool(st.photo_pool)
    # no vertical rules: 8 columns of whole words fit 80 columns; "open" (problem, edited, untouched) is
    # broken down by state in the file lists below
    rounds = Table(title="rounds", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                   collapse_padding=True)
    for col in ("round", "stage", "exported", "done", "imported", "unrealistic", "open", "median score"):
        rounds.add_column(col, justify="left" if col == "stage" else "right", no_wrap=col != "stage")
    for r in st.rounds:
        median = r.score_quantiles.get("median")
        rounds.add_row(f"{r.number:03d}", r.stage, str(r.exported), str(r.done), str(r.imported), str(r.unrealistic),
                       str(r.pending), "-" if not isinstance(median, (int, float)) else f"{median:.1f}")
    if console.measure(rounds, options=console.options.update_width(1000)).maximum <= console.width:
        console.print(rounds)
    else:  # narrower than the table: one line per round, whole words
        for r in st.rounds:
            median = r.score_quantiles.get("median")
            console.print(f"round {r.number:03d} {r.stage}: exported {r.exported}, done {r.done} ({r.imported} "
                          f"imported), unrealistic {r.unrealistic}, open {r.pending}"
                          + (f", median score {median:.1f}" if isinstance(median, (int, float)) else ""),
                          highlight=False)
    for r in st.rounds:
        print_round_files(r)
    console.print(class_table("annotations per class", st.class_totals))
    if st.keypoint_totals:  # images where each keypoint is placed (red: none yet), occluded, annotated for keypoints
        table = Table(title="keypoints per name")
        for col in ("keypoint", "images", "occluded", "annotated"):
            table.add_column(col, justify="left" if col == "keypoint" else "right")
        for name, k in st.keypoint_totals.items():
            table.add_row(name, str(k["images"]), str(k["occluded"]), str(k["annotated"]),
                          style=None if k["images"] else "red")
        console.print(table)
    if st.evaluation:
        console.print(st.evaluation)
    if not st.damaged:  # otherwise the error lines say what to fix
        console.print(f"next: {st.next_step}")


@app.command("remove")
@handles_user_errors
def remove_command(
    annotation_id: str = typer.Argument(..., help="The id of the annotation (e.g. s0-000123 or mean)."),
    workspace: Path = typer.Option(Path("."), "--workspace", "-w", help="The workspace (default: the current folder)."),
) -> None:
    """Take an annotation out of training: its files move to annotations/removed/ (never deleted)."""
    from dgan_al.workspace.annotations import AnnotationStore
    from dgan_al.workspace.layout import Workspace
    from dgan_al.workspace.lock import WorkspaceLock

    ws = Workspace.find(workspace)
    with WorkspaceLock(ws.root, "remove"):
        target = AnnotationStore(ws.annotations_dir).remove(annotation_id)
    console.print(f"moved {annotation_id} to {target}; the next round trains without it")
