"""`evaluate`: cross-validated interpreter quality per round, and the paper's downstream test."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from dgan_al.cli.app import app, console, handles_user_errors
from dgan_al.cli.progress import progress_bars
from dgan_al.errors import UserError
from dgan_al.progress import prefixed


@app.command("evaluate")
@handles_user_errors
def evaluate_command(
    dataset: Optional[Path] = typer.Option(None, help="A built dataset (build-dataset --out) to train a segmenter on."),
    test: Optional[Path] = typer.Option(None, help="Real test images with LabelMe JSON (toy-faces: dgan-al toy real-test)."),
    model: str = typer.Option("compact", help="Downstream network: compact (CPU-friendly U-Net) or deeplabv3 (needs torchvision)."),
    epochs: int = typer.Option(20, help="Downstream training epochs (each one a checkpoint candidate; the paper's 20)."),
    batch: int = typer.Option(8, help="Downstream batch size (the paper's 8)."),
    lr: float = typer.Option(1e-3, help="Downstream Adam learning rate (the paper's 1e-3)."),
    seed: int = typer.Option(0, help="Downstream initialisation, batch order and test folds."),
    all_rounds: bool = typer.Option(False, "--all-rounds", help="Cross-validate the annotations of every round so far, not only the current set."),
    folds: int = typer.Option(5, help="Cross-validation folds over the annotated images (leave-one-out below this)."),
    force: bool = typer.Option(False, "--force", help="Recompute cross-validations already on record."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads for the downstream training (1 is fastest on a busy machine)."),
    workspace: Path = typer.Option(Path("."), "--workspace", "-w", help="The workspace (default: the current folder)."),
) -> None:
    """How good are the labels: k-fold CV of the interpreter on the annotations (per-class IoU; PCK per keypoint
    in a keypoint workspace); with --dataset and --test, a segmentation network trained on the generated dataset and
    tested on real images (5-fold protocol), and for a dataset with keypoints.json a heatmap network against
    the same network trained on the workspace's annotations alone."""
    from dgan_al.workspace.layout import Workspace

    if (dataset is None) != (test is None):
        raise typer.BadParameter("give both --dataset DIR and --test DIR (or neither)", param_hint="--dataset/--test")
    try:
        ws = Workspace.find(workspace)
    except UserError:
        if dataset is None:
            raise
        ws = None
        console.print("[yellow]note:[/] not in a workspace: no cross-validation, only the downstream test")
    cv = _cross_validation(ws, all_rounds, folds, force, device) if ws is not None else None
    if dataset is not None:
        _downstream(dataset, test, model, epochs, batch, lr, seed, device, threads, cv, ws)
        console.print("Next: more annotations ([bold]dgan-al next-round[/]) or another dataset "
                      "([bold]dgan-al build-dataset --size / --filter[/]), then evaluate again to compare.")
    elif cv is not None:
        console.print("Next: [bold]dgan-al next-round[/] for more annotations (the history shows what each round "
                      "added), or [bold]dgan-al build-dataset --out DIR[/] and [bold]dgan-al evaluate --dataset DIR "
                      "--test TESTDIR[/] for the downstream test.")


def _cross_validation(ws, all_rounds: bool, folds: int, force: bool, device):
    from dgan_al.workflows.cross_validation import cross_validate, evaluation_dir, history, plot_history, round_prefixes
    from dgan_al.workspace.annotations import AnnotationStore
    from dgan_al.workspace.lock import WorkspaceLock

    store = AnnotationStore(ws.annotations_dir)
    if len(store.records) < 2:
        console.print(f"[yellow]note:[/] {len(store.records)} annotation(s): cross-validation needs 2 or more")
        return None
    sets = [ids for _, ids in round_prefixes(store) if len(ids) >= 2] if all_rounds else []
    sets = [ids for ids in sets if len(ids) < len(store.records)] + [store.ids()]
    with WorkspaceLock(ws.root, "evaluate"), progress_bars() as report:
        results = [cross_validate(ws, ids, folds, device, force,
                                  progress=prefixed(report, f"set {k + 1}/{len(sets)} ({len(ids)} images), ")
                                  if len(sets) > 1 else report)
                   for k, ids in enumerate(sets)]
        runs = history(ws)
        plot = plot_history(runs, evaluation_dir(ws) / "cv_history.png", ws.config.classes)
    current = results[-1]
    names = list(ws.config.keypoints.names)
    parts = len(ws.config.classes) > 1  # a keypoint-only workspace's one class, the background, has IoU 1 trivially
    table = Table(title="interpreter cross-validation history")
    columns = ["round", "annotations", "folds"] + (["mIoU", "± std"] if parts else []) \
        + (["PCK@0.1", "± std"] if names else []) + [""]
    for col in columns:
        table.add_column(col, justify="right")
    for run in runs:
        note = "now" if run.annotation_set == current.annotation_set else ""
        row = [f"{run.round:03d}" if run.round is not None else "-", str(run.n_annotations), str(len(run.folds))]
        if parts:
            row += [f"{run.summary.miou_mean:.3f}", f"{run.summary.miou_std:.3f}"]
        if names:
            row += _history_pck(run)
        table.add_row(*row, note)
    console.print(table)
    if parts:
        console.print(class_iou_table(current, store.class_totals(ws.config.classes)))
    else:
        console.print("keypoint-only workspace (classes: the background alone): no part IoU to measure, "
                      "the keypoints' PCK below", highlight=False)
    if names and current.keypoints is not None:
        console.print(keypoint_pck_table(current, store.keypoint_totals(names)))
    console.print(f"current set: {'on record' if current.reused else f'computed in {current.seconds:.0f} s'}"
                  f" -> {current.path}", highlight=False, soft_wrap=True)
    console.print(f"plot: {plot}", highlight=False, soft_wrap=True)
    return current


def _history_pck(run) -> list[str]:
    """A history row's mean PCK@0.1 and its spread over folds; '-' for a run that did not score the keypoints."""
    kp = run.keypoints
    if kp is None:
        return ["-", "-"]
    t = list(kp.total.thresholds).index(0.1) if 0.1 in kp.total.thresholds else len(kp.total.thresholds) - 1
    return [_fmt(kp.total.mean_pck()[t]), _fmt(kp.mean_pck_spread()[t])]


def keypoint_pck_table(cv, totals: dict | None = None) -> Table:
    """Per keypoint: cross-validated PCK at each threshold (over every held-out visible truth) ± its spread over
    the folds that measured it; visible truths; missed (visible, predicted absent); false positives over absent
    truths; images annotated for it (``totals``: ``AnnotationStore.keypoint_totals``). A 'mean' row over all
    visible truths. '-' where nothing was measured."""
    kp = cv.keypoints
    counts = kp.total
    pck, spread = counts.pck(), kp.pck_spread()
    mean, mean_spread = counts.mean_pck(), kp.mean_pck_spread()
    table = Table(title=f"per-keypoint PCK, {kp.images} of {cv.n_annotations} annotations scored, "
                        f"{len(cv.folds)} folds", pad_edge=False,
                  caption=f"PCK@a: visible truths within a x the image's longer side (± std over folds); mean "
                          f"error {_fmt_px(counts.mean_error()[-1])} px; missed: "
                          f"visible, predicted under confidence {kp.prefill_confidence:g}; false+: predicted present "
                          f"/ truths absent; -: none visible")
    table.add_column("keypoint")
    for threshold in counts.thresholds:
        table.add_column(f"PCK@{threshold:g}", justify="right")
    for col in ("visible", "missed", "false+", "images"):
        table.add_column(col, justify="right")
    totals = totals or {}
    for k, name in enumerate(counts.names):
        cells = [_with_spread(pck[t, k], spread[t, k]) for t in range(len(counts.thresholds))]
        low = counts.visible[k] > 0 and pck[-1, k] < 0.5
        table.add_row(name, *cells, str(counts.visible[k]), str(counts.missed[k]),
                      f"{counts.false_positive[k]}/{counts.absent[k]}",
                      str(totals.get(name, {}).get("annotated", "-")), style="red" if low else None)
    table.add_row("mean", *[_with_spread(mean[t], mean_spread[t]) for t in range(len(counts.thresholds))],
                  str(counts.visible.sum()), str(counts.missed.sum()),
                  f"{counts.false_positive.sum()}/{counts.absent.sum()}", str(kp.images), style="bold")
    return table


def _fmt_px(value: float) -> str:
    return "-" if value != value else f"{value:.2f}"


def _with_spread(value: float, spread: float) -> str:
    if value != value:
        return "-"
    return f"{value:.3f}" + (f"±{spread:.3f}" if spread == spread else "")


def class_iou_table(cv, totals: dict) -> Table:
    """Per class: cross-validated IoU (mean over the folds), its spread over them, and how many annotated images
    show the class; '-' where no fold measured it (in no held-out image and never predicted)."""
    iou = cv.summary.class_iou
    table = Table(title=f"per-class IoU, {cv.n_annotations} annotations, {len(cv.folds)} folds",
                  caption="-: in no held-out image and never predicted")
    for col in ("class", "IoU", "± std", "folds", "images"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for k, name in enumerate(cv.summary.classes):
        column = cv.summary.fold_iou[:, k]
        measured = column[np.isfinite(column)]
        spread = f"{measured.std():.3f}" if len(measured) > 1 else "-"
        table.add_row(name, _fmt(iou[k]), spread, str(len(measured)), str(totals.get(name, (0, 0))[0]),
                      style="red" if len(measured) and iou[k] < 0.5 else None)
    table.add_row("mIoU", f"{cv.summary.miou_mean:.3f}", f"{cv.summary.miou_std:.3f}", str(len(cv.folds)), "",
                  style="bold")
    return table


def _downstream(dataset: Path, test: Path, model: str, epochs: int, batch: int, lr: float, seed: int,
                device, threads, cv, ws=None) -> None:
    """The segmentation test (unless the dataset is keypoint-only) and, for a dataset with keypoints.json, the
    keypoint test against the baseline trained on ``ws``'s annotations alone (none without a workspace)."""
    from dgan_al.device import resolve_device
    from dgan_al.segmenter.train import SegmenterSettings
    from dgan_al.workflows.build_dataset import KEYPOINTS_FILE

    settings = SegmenterSettings(model=model, epochs=epochs, batch=batch, lr=lr, seed=seed,
                                 device=str(resolve_device(device or "auto")), threads=threads)
    if (Path(dataset) / "labels.txt").is_file() and len(read_dataset_classes(dataset)) < 2:
        console.print("[yellow]note:[/] a keypoint-only dataset (the background alone): no segmentation test")
    else:
        _segmentation_downstream(dataset, test, model, settings, cv)
    if (Path(dataset) / KEYPOINTS_FILE).is_file():
        from dataclasses import asdict

        from dgan_al.cli.evaluate_keypoints import keypoint_downstream
        from dgan_al.segmenter.heatmaps import HeatmapSettings

        keypoint_downstream(dataset, test, HeatmapSettings(**asdict(settings)), ws)  # the segmenter's, plus defaults


def read_dataset_classes(dataset: Path) -> list[str]:
    return [line for line in (Path(dataset) / "labels.txt").read_text(encoding="utf-8").splitlines() if line.strip()]


def _segmentation_downstream(dataset: Path, test: Path, model: str, settings, cv) -> None:
    from dgan_al.workflows.downstream import evaluate_downstream

    with progress_bars() as report:
        result = evaluate_downstream(dataset, test, settings, progress=report)
    classes = list(result.summary.classes)
    table = Table(title=f"downstream: {model} trained on {result.n_train} generated pairs, "
                        f"tested on {result.n_test} real images")
    table.add_column("class")
    table.add_column("IoU (test, 5-fold)", justify="right")
    if cv is not None:
        table.add_column("interpreter IoU (CV)", justify="right")
    downstream_iou = result.summary.class_iou
    cv_iou = cv.summary.class_iou if cv is not None else None
    for k, name in enumerate(classes):
        row = [name, _fmt(downstream_iou[k])]
        if cv_iou is not None:
            row.append(_fmt(cv_iou[k]) if k < len(cv_iou) else "-")
        table.add_row(*row)
    row = ["mIoU", f"{result.summary.miou_mean:.3f} ± {result.summary.miou_std:.3f}"]
    if cv is not None:
        row.append(f"{cv.summary.miou_mean:.3f} ± {cv.summary.miou_std:.3f}")
    table.add_row(*row, style="bold")
    console.print(table)
    console.print(f"epochs chosen by the folds: {result.chosen_epochs}; trained in {result.seconds / 60:.1f} min")
    for name, path in result.files.items():
        console.print(f"{name}: {path}")


def _fmt(x: float) -> str:
    return "-" if x != x else f"{x:.3f}"
