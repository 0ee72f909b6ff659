"""`evaluate --dataset --test` for a dataset with keypoints: the heatmap network against the paper's baseline.

``keypoint_downstream(dataset, test, settings, ws)`` runs ``evaluate_keypoint_downstream`` with progress bars
and prints one table: per keypoint PCK@0.05 and PCK@0.1 (mean over the folds) of the network trained on
the generated dataset and, with a workspace holding keypoint annotations, of the baseline trained on those
alone; the mean over all visible points with its std over the folds; then the paired difference, false
positives and misses, the chosen checkpoints and where the files went.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.table import Table

from dgan_al.cli.app import console
from dgan_al.cli.progress import progress_bars
from dgan_al.keypoint_metrics import PCK_THRESHOLDS


def keypoint_downstream(dataset: Path, test: Path, settings, ws=None, baseline_budget: str = "steps") -> None:
    """Run the keypoint downstream test (``settings``: a ``HeatmapSettings``; ``ws``: a Workspace or None)."""
    from dgan_al.workflows.downstream_keypoints import evaluate_keypoint_downstream

    with progress_bars() as report:
        result = evaluate_keypoint_downstream(dataset, test, settings, workspace=ws, progress=report,
                                              baseline_budget=baseline_budget)
    console.print(keypoint_table(result))
    if result.baseline is None:
        console.print(f"[yellow]note:[/] {result.baseline_note}")
    else:
        console.print(f"baseline: {result.baseline_note}", highlight=False, soft_wrap=True)
        for threshold, d in result.difference().items():
            if d["mean"] is not None:
                interval = f" [{d['low']:+.3f}, {d['high']:+.3f}]" if d["low"] is not None else ""
                console.print(f"generated - baseline, mean PCK@{threshold}: {d['mean']:+.3f}{interval} "
                              f"(95 % t interval over {len(result.folds)} paired folds)", highlight=False)
    runs = [r for r in (result.generated, result.baseline) if r is not None]
    for run in runs:
        pooled = run.pooled()
        if pooled.absent.sum():
            console.print(f"{run.name}: predicted present where not visible: {pooled.false_positive.sum()} of "
                          f"{pooled.absent.sum()}; visible but predicted absent: {pooled.missed.sum()} of "
                          f"{pooled.visible.sum()} (confidence < {result.settings['presence']:g}, over the scored "
                          "folds)", highlight=False)
    console.print("checkpoints chosen by the folds: " + "; ".join(f"{r.name} {r.chosen_epochs}" for r in runs)
                  + f"; trained in {sum(r.seconds for r in runs) / 60:.1f} min", highlight=False)
    for name, path in result.files.items():
        console.print(f"{name}: {path}", highlight=False, soft_wrap=True)


def keypoint_table(result) -> Table:
    """Per keypoint: PCK@0.05 and @0.1 (mean over the folds) per network; the mean over all visible points,
    and its std over the folds."""
    runs = [r for r in (result.generated, result.baseline) if r is not None]
    table = Table(title=f"downstream keypoints: {len(result.test_files)} real test images, "
                        f"{len(result.folds)} folds", caption="-: no visible truth in any scored fold")
    table.add_column("keypoint")
    for run in runs:
        for threshold in PCK_THRESHOLDS:
            table.add_column(f"{run.name}\nPCK@{threshold:g}", justify="right")
    pck = {run.name: run.fold_pck() for run in runs}  # [F, T, K]
    for k, name in enumerate(result.names):
        row = [name]
        for run in runs:
            for i in range(len(PCK_THRESHOLDS)):
                column = pck[run.name][:, i, k]
                row.append(f"{np.nanmean(column):.3f}" if np.isfinite(column).any() else "-")
        table.add_row(*row)
    means = [run.fold_mean() for run in runs]  # [F, T] each
    table.add_row("mean", *[f"{np.mean(m[:, i]):.3f}" for m in means for i in range(len(PCK_THRESHOLDS))],
                  style="bold", end_section=False)
    table.add_row("± std (folds)", *[f"{np.std(m[:, i]):.3f}" for m in means for i in range(len(PCK_THRESHOLDS))])
    return table
