"""How good is the interpreter? k-fold cross-validation on the human annotations, kept per round.

Folds are over images: each annotated image is held out exactly once, and an ensemble trained on the
others (same settings as ``next-round``) predicts it; a fold's confusion matrix sums its held-out
images. 5 folds, leave-one-out below 5 annotations. Results (per-class IoU, mIoU mean ± std over folds,
see ``dgan_al.metrics``) are written to ``rounds/evaluation/cv-<n>-<set>.json``, one file per annotation
set, so every round's figure stays on record and is not recomputed; ``cv_history.png`` plots mIoU
against the number of annotated images over that history.

In a workspace with ``[keypoints] names`` the same held-out predictions also score the keypoints (one predict
call gives both): each held-out image annotated for keypoints (its record's ``keypoints`` not None) adds its
PCK counts (``dgan_al.keypoint_metrics``: positions against the record's points, present = confidence at or
above ``[keypoints] prefill_confidence``, PCK distances relative to the label image's longer side), summed
per fold and in total, written under the file's ``keypoints`` key. A parts-only workspace's file has no such
key. A file on record without it (or with other names or another ``prefill_confidence``) is recomputed in a
keypoint workspace; the history keeps its mIoU and shows no PCK for it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dgan_al.errors import UserError
from dgan_al.files import atomic_write_json
from dgan_al.interpreter.keypoints import keypoint_array
from dgan_al.keypoint_metrics import PCKCounts, pck_counts
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
class KeypointCV:
    """Cross-validated keypoint counts: ``total`` over every held-out image annotated for keypoints, ``folds``
    the same per fold (they add up to ``total``), ``images`` / ``fold_images`` how many images were scored."""

    total: PCKCounts
    folds: list[PCKCounts]
    images: int
    fold_images: list[int]
    prefill_confidence: float

    @property
    def names(self) -> list[str]:
        return list(self.total.names)

    def fold_pck(self) -> np.ndarray:
        """float64 [F, T, K]: each fold's PCK; NaN where a fold has no visible truth of that name."""
        if not self.folds:
            return np.full((0, *self.total.hits.shape), np.nan)
        return np.stack([f.pck() for f in self.folds])

    def fold_mean_pck(self) -> np.ndarray:
        """float64 [F, T]: each fold's mean PCK over all its visible truths; NaN for a fold with none."""
        if not self.folds:
            return np.full((0, len(self.total.thresholds)), np.nan)
        return np.stack([f.mean_pck() for f in self.folds])

    def pck_spread(self) -> np.ndarray:
        """float64 [T, K]: std over the folds that measured a name (some truth visible); NaN below 2 folds."""
        if not self.folds:
            return np.full(self.total.hits.shape, np.nan)
        return np.apply_along_axis(_spread, 0, self.fold_pck())

    def mean_pck_spread(self) -> np.ndarray:
        """float64 [T]: std of the folds' mean PCK; NaN below 2 folds with visible truths."""
        if not self.folds:
            return np.full(len(self.total.thresholds), np.nan)
        return np.apply_along_axis(_spread, 0, self.fold_mean_pck())

    def to_dict(self) -> dict:
        return {**self.total.to_dict(), "images": self.images, "prefill_confidence": self.prefill_confidence,
                "folds": [f.to_dict() | {"images": n} for f, n in zip(self.folds, self.fold_images)]}

    @classmethod
    def from_dict(cls, data: dict) -> "KeypointCV":
        folds = [PCKCounts.from_dict(f) for f in data["folds"]]
        return cls(PCKCounts.from_dict(data), folds, int(data["images"]), [int(f["images"]) for f in data["folds"]],
                   float(data["prefill_confidence"]))


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
    keypoints: KeypointCV | None = None  # keypoint workspaces only

    def to_dict(self) -> dict:
        data = {"n_annotations": self.n_annotations, "annotation_set": self.annotation_set, "round": self.round,
                "folds": self.folds, **self.summary.to_dict(),
                "image_miou": {k: round(v, 6) for k, v in self.image_miou.items()}, "seconds": round(self.seconds, 1)}
        if self.keypoints is not None:
            data["keypoints"] = self.keypoints.to_dict()
        return data


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
    names = list(cfg.keypoints.names)
    if path.is_file() and not force:
        cached = _read(path, cfg.classes, names, cfg.keypoints.prefill_confidence)
        if cached is not None and (not names or cached.keypoints is not None):
            return cached  # a keypoint workspace's file from before the keypoints were scored: recomputed
    t0 = time.perf_counter()
    dev = resolve_device(device or cfg.run.device)
    generator = ws.load_generator(device=str(dev))
    folds = [[ids[i] for i in fold] for fold in k_folds(len(ids), k, seed=cfg.ensemble.seed)]
    paths = dict(zip(ids, cached_features(generator, ws.cache_dir, ids, annotation_latents(store, ids),
                                          batch=cfg.run.batch, progress=progress)))
    n_classes = len(cfg.classes)
    fold_confusions, image_miou = [], {}
    fold_points, fold_images = [], []
    for f, held in enumerate(folds):
        progress("cross-validation folds", f, len(folds))
        train = [i for i in ids if i not in held]
        fold_progress = prefixed(progress, f"fold {f + 1}/{len(folds)}: ")  # each fold its own counter and ETA
        ensemble = train_on_annotations(ws, store, train, generator, dev, fold_progress)
        total = np.zeros((n_classes, n_classes), dtype=np.int64)
        points, scored = PCKCounts(names), 0
        for id in held:
            maps = [m[None].float().to(dev) for m in load_maps(paths[id])]
            prediction = ensemble.predict(maps)
            mask = store.mask(id)
            conf = confusion_matrix(prediction.labels[0].numpy(), mask, n_classes)
            image_miou[id] = mean_iou(conf)
            total += conf
            truth = keypoint_array(store.records[id].keypoints, names) if names else None
            if truth is not None:
                points = points + _image_counts(prediction.keypoints, truth, max(mask.shape),
                                                cfg.keypoints.prefill_confidence)
                scored += 1
        fold_confusions.append(total)
        fold_points.append(points)
        fold_images.append(scored)
    progress("cross-validation folds", len(folds), len(folds))
    keypoints = None
    if names:
        keypoints = KeypointCV(sum(fold_points[1:], fold_points[0]), fold_points, sum(fold_images), fold_images,
                               float(cfg.keypoints.prefill_confidence))
    result = CrossValidation(len(ids), set_hash, max(store.records[i].round for i in ids), folds,
                             summarize_folds(fold_confusions, cfg.classes), image_miou,
                             time.perf_counter() - t0, path=path, keypoints=keypoints)
    atomic_write_json(path, result.to_dict() | {"classes": cfg.classes,
                                               "fold_confusions": [c.tolist() for c in fold_confusions],
                                               "written": time.strftime("%Y-%m-%d %H:%M:%S")})
    return result


def _image_counts(prediction, truth: np.ndarray, size: int, threshold: float) -> PCKCounts:
    """One held-out image's PCK counts: its predicted keypoints (a ``KeypointPrediction`` of one image) against
    the record's [K, 3] points; present = confidence at or above ``threshold``."""
    positions = prediction.positions[0].numpy()
    present = prediction.confidence[0].numpy() >= threshold
    return pck_counts(positions[None], present[None], truth[None], size, list(prediction.names))


def _read(path: Path, classes: list[str], names: list[str] | None = None,
          prefill_confidence: float | None = None) -> CrossValidation | None:
    """A cross-validation on record, or None (unreadable, or other classes: recompute it). Its ``keypoints``
    only when the workspace has keypoint names and the file scored exactly those at ``prefill_confidence``."""
    try:
        data = json.loads(path.read_text())
        confusions = [np.array(c, dtype=np.int64) for c in data["fold_confusions"]]
        if data.get("classes") != list(classes):
            return None
        keypoints = None
        if names and isinstance(data.get("keypoints"), dict) and "error_sum" in data["keypoints"]:
            keypoints = KeypointCV.from_dict(data["keypoints"])
            if keypoints.names != list(names) or len(keypoints.folds) != len(data["folds"]) or (
                    prefill_confidence is not None and keypoints.prefill_confidence != float(prefill_confidence)):
                keypoints = None
        return CrossValidation(data["n_annotations"], data["annotation_set"], data["round"], data["folds"],
                               summarize_folds(confusions, classes), data.get("image_miou", {}),
                               data.get("seconds", 0.0), reused=True, path=path, keypoints=keypoints)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable: recompute it


def history(ws: Workspace) -> list[CrossValidation]:
    """Every cross-validation on record, by number of annotations (in a keypoint workspace, ``keypoints``
    None for a file that did not score the current names)."""
    kp = ws.config.keypoints
    found = [_read(p, ws.config.classes, kp.names, kp.prefill_confidence)
             for p in sorted(evaluation_dir(ws).glob("cv-*.json"))]
    return sorted((c for c in found if c is not None), key=lambda c: (c.n_annotations, c.round or 0))


def plot_history(runs: list[CrossValidation], path: Path, classes: list[str]) -> Path:
    """Left: mIoU ± std against annotated images. Right: per-class IoU of the latest set. With keypoints (runs
    that scored them): a third panel, mean PCK@0.05 and PCK@0.1 ± std over folds against annotated images; in a
    keypoint-only workspace (classes = the background alone, whose IoU says nothing) the PCK history and the
    latest set's PCK per keypoint instead of the two IoU panels."""
    plt = pyplot()

    scored = [c for c in runs if c.keypoints is not None]
    parts = len(classes) > 1 or not scored
    ratios = ([1, 1.4] if parts else []) + ([1] if scored else []) + ([] if parts else [1.4])
    n = len(ratios)
    fig, axes = plt.subplots(1, n, figsize=(5.5 * n, 4), dpi=100, gridspec_kw={"width_ratios": ratios})
    axes = list(np.atleast_1d(axes))
    x = [c.n_annotations for c in runs]
    latest = runs[-1]
    if parts:
        left, right = axes[:2]
        y = [c.summary.miou_mean for c in runs]
        e = [c.summary.miou_std for c in runs]
        left.errorbar(x, y, yerr=e, marker="o", capsize=3)
        for c in runs:
            if c.round is not None:
                left.annotate(f"r{c.round}", (c.n_annotations, c.summary.miou_mean), textcoords="offset points",
                              xytext=(4, -10), fontsize=7)
        _history_axes(left, x, f"cross-validated mIoU ({FOLDS}-fold)", "interpreter quality per round")
        iou = latest.summary.class_iou
        right.bar(range(len(classes)), np.nan_to_num(iou), color="tab:blue")
        for k in np.flatnonzero(~np.isfinite(iou)):
            right.text(k, 0.02, "n/a", ha="center", fontsize=7, rotation=90)  # in no held-out image, never predicted
        right.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
        right.set_ylim(0, 1)
        right.set_ylabel("IoU")
        right.set_title(f"per class, {latest.n_annotations} annotations (mIoU {latest.summary.miou_mean:.3f})")
        right.grid(axis="y", alpha=0.3)
    if scored:
        ax = axes[2 if parts else 0]
        sx = [c.n_annotations for c in scored]
        for t, (threshold, marker) in enumerate(zip(scored[0].keypoints.total.thresholds, "os^v")):
            y = [c.keypoints.total.mean_pck()[t] for c in scored]
            e = [c.keypoints.mean_pck_spread()[t] for c in scored]
            ax.errorbar(sx, y, yerr=np.nan_to_num(e), marker=marker, capsize=3, label=f"PCK@{threshold:g}")
        ax.legend(fontsize=8, loc="lower right")
        _history_axes(ax, x, f"cross-validated mean PCK ({FOLDS}-fold)", "keypoints per round")
    if not parts:
        ax = axes[-1]
        kp = latest.keypoints if latest.keypoints is not None else scored[-1].keypoints
        pck = kp.total.pck()
        names = kp.names
        width = 0.8 / len(kp.total.thresholds)
        for t, threshold in enumerate(kp.total.thresholds):
            ax.bar(np.arange(len(names)) + (t - (len(kp.total.thresholds) - 1) / 2) * width, np.nan_to_num(pck[t]),
                   width=width, label=f"PCK@{threshold:g}")
        for k in np.flatnonzero(~np.isfinite(pck[0])):
            ax.text(k, 0.02, "n/a", ha="center", fontsize=7, rotation=90)  # visible in no held-out image
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("PCK")
        ax.legend(fontsize=8)
        ax.set_title(f"per keypoint, {latest.n_annotations} annotations")
        ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)
    return path


def _history_axes(ax, x: list[int], ylabel: str, title: str) -> None:
    ax.set_xlim(0, max(x) * 1.1 + 1)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("annotated images")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title)


def _spread(values: np.ndarray) -> float:
    """Population std of the finite values (as the folds' IoU spread); NaN below 2 of them."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.std()) if len(finite) > 1 else float("nan")
