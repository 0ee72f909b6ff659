"""The paper's downstream test: train a segmentation network on a built dataset, test it on real images.

    evaluate_downstream(dataset_dir, test_dir, settings) -> DownstreamResult

- Training pairs: the kept samples of ``build-dataset`` (``train.txt``; the filtered-out ones are not used).
- Test set: a folder of real images annotated in LabelMe (every ``*.json`` in it, read and validated like
  an annotation round, labels checked against the dataset's ``labels.txt``; ticked ``done`` or not — a
  test file is finished by definition; shapes rasterised as LabelMe does, ``__ignore__`` not scored).
- Protocol (paper §5): the test images are cut into 5 folds; in turn each fold selects the checkpoint
  (the epoch with the best mIoU on it) and the other four are scored at that checkpoint; mIoU mean ± std
  over the 5 turns. Background counts in mIoU; absent classes as in ``dgan_al.metrics``. Every epoch's
  confusion matrix per test image is kept, so selection is arithmetic and no checkpoints are stored.
Results go to ``<dataset>/evaluation/``: ``downstream.json``, ``downstream.png``, ``segmenter.pt``.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dgan_al.errors import UserError
from dgan_al.files import atomic_write_bytes, atomic_write_json
from dgan_al.labelme import LabelMeError, rasterize, read_image, read_labelme
from dgan_al.metrics import FoldSummary, k_folds, mean_iou, select_and_score, summarize_folds
from dgan_al.progress import ProgressCallback, silent
from dgan_al.report.figures import pyplot, save_figure
from dgan_al.segmenter.train import SegmenterSettings, train_segmenter

TEST_FOLDS = 5


@dataclass
class DownstreamResult:
    summary: FoldSummary
    chosen_epochs: list[int]
    epoch_test_miou: list[float]  # over all test images, per epoch (for the curve; not the reported figure)
    losses: list[float]
    n_train: int
    n_test: int
    seconds: float
    settings: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"protocol": f"{TEST_FOLDS}-fold: each fold selects the epoch, the rest is scored",
                **self.summary.to_dict(), "chosen_epochs": self.chosen_epochs,
                "epoch_test_miou": [round(x, 6) for x in self.epoch_test_miou],
                "train_loss": [round(x, 6) for x in self.losses], "n_train": self.n_train, "n_test": self.n_test,
                "seconds": round(self.seconds, 1), "settings": self.settings}


def read_dataset(folder: Path, progress: ProgressCallback = silent) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(classes, images uint8 [N,H,W,3], masks uint8 [N,H,W]) of a built dataset's training list."""
    folder = Path(folder)
    for name in ("labels.txt", "train.txt"):
        if not (folder / name).is_file():
            raise UserError(f"not a finished dgan-al dataset: {name} is missing", path=folder,
                            fix="give the folder a finished `dgan-al build-dataset` wrote (a sharded one after `--merge`)")
    classes = [line for line in (folder / "labels.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    ids = (folder / "train.txt").read_text().split()
    if not ids:
        raise UserError("the dataset's training list is empty", path=folder / "train.txt",
                        fix="build a larger dataset, or filter fewer samples out")
    images, masks = [], []
    for k, id in enumerate(ids):
        try:
            images.append(np.asarray(Image.open(folder / "images" / f"{id}.png").convert("RGB")))
            masks.append(np.asarray(Image.open(folder / "masks" / f"{id}.png")))
        except OSError as error:
            raise UserError(f"cannot read sample {id}: {error}", path=folder,
                            fix="rerun build-dataset on this folder: it rewrites missing samples") from None
        progress("reading dataset", k + 1, len(ids))
    if len({m.shape for m in masks}) != 1 or any(i.shape[:2] != m.shape for i, m in zip(images, masks)):
        raise UserError("the dataset's images and masks differ in size", path=folder, fix="rebuild it")
    return classes, np.stack(images), np.stack(masks)


def dataset_keypoint_names(folder: Path) -> list[str]:
    """The keypoint names a built dataset was made with (``dataset.json``), [] for a parts-only one."""
    try:
        settings = json.loads((Path(folder) / "dataset.json").read_text())
    except (OSError, ValueError):
        return []
    return list((settings.get("keypoints") or {}).get("names") or [])


def problems_error(problems: list[str], folder: Path, fix: str) -> UserError:
    """One error for every problem of a test folder's LabelMe files (the first five listed)."""
    listed = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    return UserError(f"{len(problems)} test file(s) have problems: {listed}", path=folder, fix=fix)


def read_test_set(folder: Path, classes: list[str], progress: ProgressCallback = silent,
                  keypoints: list[str] = ()) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """Names, images and class-id masks of every LabelMe file in ``folder``; all problems in one error.
    ``keypoints``: the dataset's keypoint names, whose points are read apart and paint nothing."""
    folder = Path(folder)
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not paths:
        raise UserError("no LabelMe files (*.json) in the test folder", path=folder,
                        fix="annotate real images in LabelMe there (for toy-faces: dgan-al toy real-test DIR)")
    names, images, masks, problems = [], [], [], []
    for k, path in enumerate(paths):
        try:
            annotation = read_labelme(path, classes, keypoints=keypoints)
            image = read_image(annotation)
            mask = rasterize(annotation.shapes, annotation.height, annotation.width, classes)
        except LabelMeError as error:
            problems.append(str(error))
            continue
        names.append(path.stem)
        images.append(image)
        masks.append(mask)
        progress("reading test set", k + 1, len(paths))
    if problems:
        raise problems_error(problems, folder, "fix them in LabelMe (labels must be the dataset's labels.txt classes)")
    if len(paths) < 2:
        raise UserError("the test protocol needs at least 2 test images", path=folder, fix="annotate more")
    return names, images, masks


def evaluate_downstream(dataset: Path, test: Path, settings: SegmenterSettings, out: Path | None = None,
                        progress: ProgressCallback = silent) -> DownstreamResult:
    dataset, test = Path(dataset), Path(test)
    out = Path(out) if out is not None else dataset / "evaluation"
    classes, images, masks = read_dataset(dataset, progress)
    names, test_images, test_masks = read_test_set(test, classes, progress, keypoints=dataset_keypoint_names(dataset))
    t0 = time.perf_counter()
    run = train_segmenter(images, masks, len(classes), settings, test_images, test_masks, progress=progress)
    folds = k_folds(len(names), TEST_FOLDS, seed=settings.seed)
    chosen, scored = select_and_score(run.confusions, folds)
    summary = summarize_folds(scored, classes)
    result = DownstreamResult(summary, [int(e) + 1 for e in chosen],
                              [mean_iou(c) for c in run.confusions.sum(1)], list(run.losses), len(images),
                              len(names), time.perf_counter() - t0,
                              settings={"model": settings.model, "epochs": settings.epochs, "batch": settings.batch,
                                        "lr": settings.lr, "seed": settings.seed, "dataset": str(dataset),
                                        "test": str(test), "test_folds": [[names[i] for i in f] for f in folds]})
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save({"model": settings.model, "classes": classes,
                "state_dict": {k: v.detach().cpu() for k, v in run.model.state_dict().items()}}, buf)
    atomic_write_bytes(out / "segmenter.pt", buf.getvalue())
    result.files = {"results": str(out / "downstream.json"), "plot": str(out / "downstream.png"),
                    "segmenter (last epoch)": str(out / "segmenter.pt")}
    atomic_write_json(out / "downstream.json", result.to_dict() | {"classes": classes})
    plot_downstream(result, classes, out / "downstream.png")
    return result


def plot_downstream(result: DownstreamResult, classes: list[str], path: Path) -> None:
    """Left: training loss and test mIoU per epoch. Right: per-class IoU (mean ± std over the folds)."""
    plt = pyplot()

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=100, gridspec_kw={"width_ratios": [1, 1.4]})
    epochs = np.arange(1, len(result.losses) + 1)
    left.plot(epochs, result.losses, color="tab:red", label="training loss")
    left.set_xlabel("epoch")
    left.set_ylabel("cross-entropy", color="tab:red")
    twin = left.twinx()
    twin.plot(epochs, result.epoch_test_miou, marker="o", color="tab:blue", label="test mIoU (all images)")
    twin.set_ylabel("test mIoU", color="tab:blue")
    twin.set_ylim(0, 1)
    left.set_title(f"{result.n_train} generated pairs -> {result.n_test} real test images")
    iou = result.summary.fold_iou  # [F, K]
    mean = np.array([np.nanmean(c) if np.isfinite(c).any() else 0.0 for c in iou.T])
    std = np.array([np.nanstd(c) if np.isfinite(c).any() else 0.0 for c in iou.T])
    right.bar(range(len(classes)), mean, yerr=std, capsize=2, color="tab:blue")
    right.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    right.set_ylim(0, 1)
    right.set_ylabel("IoU")
    title = f"per class; mIoU {result.summary.miou_mean:.3f} ± {result.summary.miou_std:.3f} ({TEST_FOLDS} folds)"
    right.set_title(title, fontsize=10)
    right.grid(axis="y", alpha=0.3)
    save_figure(fig, path)


def read_downstream(dataset: Path) -> dict | None:
    try:
        return json.loads((Path(dataset) / "evaluation" / "downstream.json").read_text())
    except (OSError, ValueError):
        return None
