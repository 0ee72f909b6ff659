"""Segmentation metrics and the fold logic of the evaluations (pure functions over arrays).

Conventions, shared by ``dgan-al evaluate`` (cross-validation on annotations, downstream tests):

- A confusion matrix is int64 ``[K, K]``, rows = true class, columns = predicted class; pixels whose
  true label is the ignore value (255, LabelMe's ``__ignore__``) are not counted.
- IoU of class k = ``C[k,k] / (row_k + col_k - C[k,k])``. A class that is neither in the truth nor in the
  prediction has no IoU (NaN) and is left out of the mean; a class predicted but absent from the truth
  scores 0 (a false positive is an error). Background is a class like any other and counts in mIoU,
  as in the DatasetGAN reference.
- Figures over folds: each fold's mIoU (mean over its classes with an IoU), then mean and population
  standard deviation (ddof=0) over the folds. Per-class IoU over folds: nan-mean over the folds where the
  class has an IoU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE = 255


def confusion_matrix(pred: np.ndarray, truth: np.ndarray, n_classes: int, ignore: int = IGNORE) -> np.ndarray:
    """Counts of (true, predicted) class pairs over the pixels of ``pred`` / ``truth`` (same shape)."""
    pred = np.asarray(pred).reshape(-1).astype(np.int64)
    truth = np.asarray(truth).reshape(-1).astype(np.int64)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction and truth differ in size: {pred.size} vs {truth.size} pixels")
    keep = truth != ignore
    pred, truth = pred[keep], truth[keep]
    if truth.size and (truth.max() >= n_classes or pred.max() >= n_classes or min(truth.min(), pred.min()) < 0):
        raise ValueError(f"class ids must lie in 0..{n_classes - 1}")
    return np.bincount(truth * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def iou_per_class(conf: np.ndarray) -> np.ndarray:
    """float64 [K]: IoU per class, NaN where the class is in neither the truth nor the prediction."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)


def mean_iou(conf: np.ndarray) -> float:
    """Mean IoU over the classes that have one (see the module doc); NaN if the matrix is empty."""
    iou = iou_per_class(conf)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def k_folds(n: int, k: int = 5, seed: int = 0) -> list[np.ndarray]:
    """Held-out indices of each fold: a seeded shuffle of 0..n-1 cut into k near-equal folds.

    Every index is held out exactly once. Below k items it is leave-one-out (n folds of one).
    """
    if n < 2:
        raise ValueError(f"cross-validation needs at least 2 items, got {n}")
    k = min(k, n)
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(part) for part in np.array_split(order, k)]


@dataclass
class FoldSummary:
    """Per-fold figures and their mean / std over folds."""

    fold_miou: np.ndarray  # [F]
    fold_iou: np.ndarray  # [F, K] (NaN: class without IoU in that fold)
    classes: list[str]

    @property
    def miou_mean(self) -> float:
        return float(np.mean(self.fold_miou))

    @property
    def miou_std(self) -> float:
        return float(np.std(self.fold_miou))

    @property
    def class_iou(self) -> np.ndarray:
        """[K] nan-mean over folds."""
        out = np.full(self.fold_iou.shape[1], np.nan)
        seen = np.isfinite(self.fold_iou).any(0)
        out[seen] = np.nanmean(self.fold_iou[:, seen], axis=0)
        return out

    def to_dict(self) -> dict:
        def num(x):
            return None if not np.isfinite(x) else round(float(x), 6)

        return {
            "miou_mean": num(self.miou_mean), "miou_std": num(self.miou_std),
            "fold_miou": [num(x) for x in self.fold_miou],
            "class_iou": {c: num(x) for c, x in zip(self.classes, self.class_iou)},
        }


def summarize_folds(fold_confusions: list[np.ndarray], classes: list[str]) -> FoldSummary:
    """From one confusion matrix per fold (summed over that fold's held-out images)."""
    fold_iou = np.stack([iou_per_class(c) for c in fold_confusions])
    return FoldSummary(np.array([mean_iou(c) for c in fold_confusions]), fold_iou, list(classes))


def select_and_score(confusions: np.ndarray, folds: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The paper's test protocol: each fold in turn picks the checkpoint, the other folds are scored.

    confusions: int64 [E, N, K, K], per checkpoint (e.g. epoch) and per test image.
    Returns (chosen checkpoint per fold [F], the scored confusion per fold: sum over the images outside
    that fold at its chosen checkpoint). Ties go to the earliest checkpoint.
    """
    confusions = np.asarray(confusions)
    n = confusions.shape[1]
    chosen, scored = [], []
    for held in folds:
        rest = np.setdiff1d(np.arange(n), held)
        if len(rest) == 0:
            raise ValueError("a fold holds every test image: nothing is left to score")
        validation = confusions[:, held].sum(1)  # [E, K, K]
        scores = np.array([mean_iou(c) for c in validation])
        best = int(np.nanargmax(np.where(np.isnan(scores), -np.inf, scores)))
        chosen.append(best)
        scored.append(confusions[best, rest].sum(0))
    return np.array(chosen), scored
