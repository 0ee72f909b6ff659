"""How good is the interpreter? k-fold cross-validation on the human annotations, kept per round.

Folds are over images: each annotated image is held out exactly once, and an ensemble trained on the
others (same settings as ``next-round``) predicts it; a fold's confusion matrix sums its held-out
images. 5 folds, leave-one-out below 5 annotations. Results (per-class IoU, mIoU mean ± std over folds,
see ``dgan_al.metrics``) are written to ``rounds/evaluation/cv-<n>-<set>.json``, one file per annotation
set, so every round's figure stays on record and is not recomputed; ``cv_history.png`` plots mIoU
against the number of annotated images over that history.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dgan_al.errors import UserError
from dgan_al.files import atomic_write_json
from dgan_al.device import resolve_device
from dgan_al.metrics import FoldSummary, confusion_matrix, k_folds, mean_iou, summarize_folds
from dgan_al.progress import ProgressCallback, prefixed, silent
from dgan_al.report.figures import pyplot, save_figure
from dgan_al.workflows.features import cached_features, load_maps
from dgan_al.workflows.interpreter import annotation_latents, train_on_annotations
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.layout import Workspace

EVALUATION_DIR = "evaluation"
FOLDS = 5


@dataclass
class CrossValidation:
    n_annotations: int
    annotation_set: str
    round: int | None  # the latest round these annotations come from
    folds: list[list[str]]
    summary: FoldSummary
    image_miou: dict[str, float] = field(default_factory=dict)  # held-out mIoU per annotated image
    seconds: float = 0.0
    reused: bool = False
    path: Path | None = None

    def to_dict(self) -> dict:
        return {"n_annotations": self.n_annotations, "annotation_set": self.annotation_set, "round": self.round,
                "folds": self.folds, **self.summary.to_dict(),
                "image_miou": {k: round(v, 6) for k, v in self.image_miou.items()}, "seconds": round(self.seconds, 1)}


def evaluation_dir(ws: Workspace) -> Path:
    return ws.rounds_dir / EVALUATION_DIR


def round_prefixes(store: AnnotationStore) -> list[tuple[int, list[str]]]:
    """(round, ids annotated in that round or before) for each round that has annotations."""
    rounds = sorted({r.round for r in store.records.values()})
    return [(n, sorted(i for i, r in store.records.items() if r.round <= n)) for n in rounds]


def cross_validate(ws: Workspace, ids: list[str] | None = None, k: int = FOLDS, device: str | None = None,
                   force: bool = False, progress: ProgressCallback = silent) -> CrossValidation:
    """Cross-validate the interpreter on the annotations ``ids`` (default: all); cached per set."""
    store = AnnotationStore(ws.annotations_dir)
    ids = sorted(ids if ids is not None else store.ids())
    if len(ids) < 2:
        raise UserError(f"cross-validation needs at least 2 annotated images, the workspace has {len(ids)}",
                        path=ws.annotations_dir, fix="annotate another round (dgan-al next-round, annotate)")
    cfg = ws.config
    set_hash = store.set_hash(ids)
    path = evaluation_dir(ws) / f"cv-{len(ids):04d}-{set_hash}.json"
    if path.is_file() and not force:
        cached = _read(path, cfg.classes)
        if cached is not None:
            return cached
    t0 = time.perf_counter()
    dev = resolve_device(device or cfg.run.device)
    generator = ws.load_generator(device=str(dev))
    folds = [[ids[i] for i in fold] for fold in k_folds(len(ids), k, seed=cfg.ensemble.seed)]
    paths = dict(zip(ids, cached_features(generator, ws.cache_dir, ids, annotation_latents(store, ids),
                                          batch=cfg.run.batch, progress=progress)))
    n_classes = len(cfg.classes)
    fold_confusions, image_miou = [], {}
    for f, held in enumerate(folds):
        progress("cross-validation folds", f, len(folds))
        train = [i for i in ids if i not in held]
        fold_progress = prefixed(progress, f"fold {f + 1}/{len(folds)}: ")  # each fold its own counter and ETA
        ensemble = train_on_annotations(ws, store, train, generator, dev, fold_progress)
        total = np.zeros((n_classes, n_classes), dtype=np.int64)
        for id in held:
            maps = [m[None].float().to(dev) for m in load_maps(paths[id])]
            labels = ensemble.predict(maps).labels[0].numpy()
            conf = confusion_matrix(labels, store.mask(id), n_classes)
            image_miou[id] = mean_iou(conf)
            total += conf
        fold_confusions.append(total)
    progress("cross-validation folds", len(folds), len(folds))
    result = CrossValidation(len(ids), set_hash, max(store.records[i].round for i in ids), folds,
                             summarize_folds(fold_confusions, cfg.classes), image_miou,
                             time.perf_counter() - t0, path=path)
    atomic_write_json(path, result.to_dict() | {"classes": cfg.classes,
                                               "fold_confusions": [c.tolist() for c in fold_confusions],
                                               "written": time.strftime("%Y-%m-%d %H:%M:%S")})
    return result


def _read(path: Path, classes: list[str]) -> CrossValidation | None:
    try:
        data = json.loads(path.read_text())
        confusions = [np.array(c, dtype=np.int64) for c in data["fold_confusions"]]
        if data.get("classes") != list(classes):
            return None
        return CrossValidation(data["n_annotations"], data["annotation_set"], data["round"], data["folds"],
                               summarize_folds(confusions, classes), data.get("image_miou", {}),
                               data.get("seconds", 0.0), reused=True, path=path)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable: recompute it


def history(ws: Workspace) -> list[CrossValidation]:
    """Every cross-validation on record, by number of annotations."""
    found = [_read(p, ws.config.classes) for p in sorted(evaluation_dir(ws).glob("cv-*.json"))]
    return sorted((c for c in found if c is not None), key=lambda c: (c.n_annotations, c.round or 0))


def plot_history(runs: list[CrossValidation], path: Path, classes: list[str]) -> Path:
    """Left: mIoU ± std against annotated images. Right: per-class IoU of the latest set."""
    plt = pyplot()

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=100, gridspec_kw={"width_ratios": [1, 1.4]})
    x = [c.n_annotations for c in runs]
    y = [c.summary.miou_mean for c in runs]
    e = [c.summary.miou_std for c in runs]
    left.errorbar(x, y, yerr=e, marker="o", capsize=3)
    for c in runs:
        if c.round is not None:
            left.annotate(f"r{c.round}", (c.n_annotations, c.summary.miou_mean), textcoords="offset points",
                          xytext=(4, -10), fontsize=7)
    left.set_xlim(0, max(x) * 1.1 + 1)
    left.xaxis.get_major_locator().set_params(integer=True)
    left.set_xlabel("annotated images")
    left.set_ylabel(f"cross-validated mIoU ({FOLDS}-fold)")
    left.set_ylim(0, 1)
    left.grid(alpha=0.3)
    left.set_title("interpreter quality per round")
    latest = runs[-1]
    iou = latest.summary.class_iou
    right.bar(range(len(classes)), np.nan_to_num(iou), color="tab:blue")
    for k in np.flatnonzero(~np.isfinite(iou)):
        right.text(k, 0.02, "n/a", ha="center", fontsize=7, rotation=90)  # in no held-out image, never predicted
    right.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    right.set_ylim(0, 1)
    right.set_ylabel("IoU")
    right.set_title(f"per class, {latest.n_annotations} annotations (mIoU {latest.summary.miou_mean:.3f})")
    right.grid(axis="y", alpha=0.3)
    save_figure(fig, path)
    return path
