"""The downstream keypoint test (paper §5.2): a heatmap network trained on a built dataset, tested on real images,
beside the paper's baseline, the same network trained on the annotated images alone.

    evaluate_keypoint_downstream(dataset, test, settings, workspace) -> KeypointDownstreamResult

- Generated: the kept samples (``train.txt``) with their points from the dataset's ``keypoints.json`` (COCO
  keypoints: ``images[].file_name`` "images/<id>.png", one annotation per image, ``[x, y, v] * K``).
- Baseline: the workspace's annotations with keypoints (``AnnotationRecord.keypoints``; images not annotated
  for keypoints are left out), their exported images, the same settings. Fair budget (``baseline_budget``):
  "steps" (default) gives it as many optimizer steps and checkpoints as the generated run, so both get the
  same compute and the same number of candidates for selection (a few images seen many times, as a person
  training on their own annotations would); "epochs" gives it as many passes (a few steps each).
- Test set: every LabelMe file in ``test`` with the image flag ``keypoints`` ticked (unticked files are not
  annotated for keypoints and are skipped); truth from its point shapes (``occluded`` flag: v = 1; a name
  without a point: v = 0). PCK relative to each image's longer side (``dgan_al.keypoint_metrics``).
- Protocol: the test images are cut in 5 folds (``k_folds``, the settings' seed); in turn each fold picks
  the checkpoint with its best mean PCK@0.1 (over all visible points; ties: the earliest) and the other
  folds are scored there. Both networks use the same folds, so the difference is paired: mean over folds
  with a t interval (95 %; the scored sets overlap, so it shows the spread, it is not an exact test).
- sigma of the targets: the settings', else the dataset's ``[keypoints] sigma``, the workspace's, or 2.
- Presence (a point predicted at all): peak value >= ``presence`` (default the dataset's
  ``prefill_confidence``, else 0.5); it only counts ``missed`` and false positives, never PCK.
Results: ``<dataset>/evaluation/downstream_keypoints.json`` and ``downstream_keypoints.png``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from dgan_al.errors import UserError, quote
from dgan_al.files import atomic_write_json
from dgan_al.keypoint_metrics import PCK_THRESHOLDS, PCKCounts, pck_counts
from dgan_al.labelme import LabelMeError, read_image, read_labelme
from dgan_al.metrics import k_folds
from dgan_al.progress import ProgressCallback, prefixed, silent
from dgan_al.report.figures import pyplot, save_figure
from dgan_al.segmenter.heatmaps import DEFAULT_SIGMA, HeatmapRun, HeatmapSettings, train_heatmap_network
from dgan_al.workflows.downstream import TEST_FOLDS, problems_error

KEYPOINTS_FILE = "keypoints.json"
RESULT_FILE = "downstream_keypoints.json"
PLOT_FILE = "downstream_keypoints.png"
SELECT_AT = 0.1  # the PCK threshold that selects the checkpoint
DEFAULT_PRESENCE = 0.5
BUDGETS = ("steps", "epochs")


@dataclass
class KeypointDataset:
    names: list[str]
    skeleton: list[list[int]]
    ids: list[str]
    images: np.ndarray  # uint8 [N, H, W, 3]
    keypoints: np.ndarray  # float32 [N, K, 3]
    settings: dict  # dataset.json's keypoint settings (sigma, prefill_confidence, ...), {} if none


@dataclass
class KeypointTestSet:
    files: list[str]  # stems of the files annotated for keypoints, in order
    images: list[np.ndarray]  # uint8 [h, w, 3] each
    truth: np.ndarray  # float32 [N, K, 3]
    sizes: np.ndarray  # [N] each image's longer side
    skipped: list[str]  # files not annotated for keypoints (flag unticked)


@dataclass
class NetworkFigures:
    """One network's 5-fold figures. ``fold_counts[f]``: the counts of the images outside fold f at its checkpoint."""

    name: str
    n_train: int
    steps_per_epoch: int
    chosen_epochs: list[int]  # 1-based
    fold_counts: list[PCKCounts]
    epoch_pck: list[float]  # mean PCK@0.1 over every test image per checkpoint (the curve, not the figure)
    losses: list[float]
    seconds: float

    def fold_mean(self) -> np.ndarray:
        """float [F, T]: each fold's mean PCK per threshold (over all visible points)."""
        return np.stack([c.mean_pck() for c in self.fold_counts])

    def fold_pck(self) -> np.ndarray:
        """float [F, T, K]: each fold's PCK per threshold and name (NaN: no visible truth)."""
        return np.stack([c.pck() for c in self.fold_counts])

    def pooled(self) -> PCKCounts:
        total = self.fold_counts[0]
        for counts in self.fold_counts[1:]:
            total = total + counts
        return total

    def to_dict(self) -> dict:
        names, thresholds = self.fold_counts[0].names, self.fold_counts[0].thresholds
        fold_pck, fold_mean, pooled = self.fold_pck(), self.fold_mean(), self.pooled()
        return {
            "n_train": self.n_train, "steps_per_epoch": self.steps_per_epoch, "chosen_epochs": self.chosen_epochs,
            "mean_pck": {f"{t:g}": {"mean": _num(np.mean(fold_mean[:, i])), "std": _num(np.std(fold_mean[:, i])),
                                    "folds": [_num(x) for x in fold_mean[:, i]]} for i, t in enumerate(thresholds)},
            "pck": {f"{t:g}": {n: {"mean": _num(_nanmean(fold_pck[:, i, k])), "std": _num(_nanstd(fold_pck[:, i, k]))}
                               for k, n in enumerate(names)} for i, t in enumerate(thresholds)},
            "false_positive_rate": {n: _num(pooled.false_positive[k] / pooled.absent[k]) if pooled.absent[k] else None
                                    for k, n in enumerate(names)},
            "missed_rate": {n: _num(pooled.missed[k] / pooled.visible[k]) if pooled.visible[k] else None
                            for k, n in enumerate(names)},
            "fold_counts": [c.to_dict() for c in self.fold_counts],
            "epoch_pck_0.1": [_num(x) for x in self.epoch_pck], "train_loss": [_num(x) for x in self.losses],
            "seconds": round(self.seconds, 1),
        }


@dataclass
class KeypointDownstreamResult:
    names: list[str]
    test_files: list[str]
    folds: list[list[str]]
    generated: NetworkFigures
    baseline: NetworkFigures | None
    baseline_note: str  # why there is no baseline, or what budget it had
    settings: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)

    def difference(self) -> dict | None:
        """Generated minus baseline, mean PCK per threshold: per fold, mean and a 95 % t interval over folds."""
        if self.baseline is None:
            return None
        from scipy.stats import t as student

        diff = self.generated.fold_mean() - self.baseline.fold_mean()  # [F, T]
        out = {}
        for i, threshold in enumerate(self.generated.fold_counts[0].thresholds):
            d = diff[:, i]
            d = d[np.isfinite(d)]
            mean = float(d.mean()) if len(d) else float("nan")
            half = float(student.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
            out[f"{threshold:g}"] = {"mean": _num(mean), "low": _num(mean - half), "high": _num(mean + half),
                                     "folds": [_num(x) for x in diff[:, i]]}
        return out

    def to_dict(self) -> dict:
        return {"protocol": f"{len(self.folds)}-fold: each fold selects the checkpoint by mean PCK@{SELECT_AT:g}, "
                            "the rest is scored; PCK relative to the image's longer side",
                "names": self.names, "n_test": len(self.test_files), "generated": self.generated.to_dict(),
                "baseline": self.baseline.to_dict() if self.baseline else None, "baseline_note": self.baseline_note,
                "difference": self.difference(), "test_folds": self.folds, "settings": self.settings}


def _num(x) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


def _nanmean(x: np.ndarray) -> float:
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def _nanstd(x: np.ndarray) -> float:
    return float(np.nanstd(x)) if np.isfinite(x).any() else float("nan")


# --- reading -------------------------------------------------------------------------------------------


def read_keypoint_dataset(folder: Path, progress: ProgressCallback = silent) -> KeypointDataset:
    """The kept samples of a built dataset with their keypoints from ``keypoints.json`` (COCO layout)."""
    folder = Path(folder)
    path = folder / KEYPOINTS_FILE
    if not (folder / "train.txt").is_file():
        raise UserError("not a finished dgan-al dataset: train.txt is missing", path=folder,
                        fix="give the folder a finished `dgan-al build-dataset` wrote (a sharded one after `--merge`)")
    if not path.is_file():
        raise UserError(f"the dataset has no keypoints ({KEYPOINTS_FILE} is missing)", path=folder,
                        fix="build it from a workspace with [keypoints] names in dgan-al.toml, whose interpreter "
                            "was trained on annotated points (dgan-al next-round, then build-dataset)")
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
        category = coco["categories"][0]
        names = [str(n) for n in category["keypoints"]]
        files = {int(image["id"]): PurePosixPath(str(image["file_name"])).stem for image in coco["images"]}
        points = {files[int(a["image_id"])]: np.asarray(a["keypoints"], np.float32).reshape(len(names), 3)
                  for a in coco["annotations"]}
        skeleton = [list(map(int, pair)) for pair in category.get("skeleton", [])]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
        raise UserError(f"not the COCO keypoints file dgan-al writes ({type(error).__name__}: {error})", path=path,
                        fix="rerun build-dataset on this folder") from None
    if not names:
        raise UserError("the dataset's keypoints.json names no keypoints", path=path,
                        fix="build it from a workspace with [keypoints] names")
    ids = (folder / "train.txt").read_text().split()
    missing = [id for id in ids if id not in points]
    if not ids or missing:
        what = f"no keypoints for {len(missing)} kept sample(s), e.g. {missing[0]}" if missing else "no kept samples"
        raise UserError(f"{KEYPOINTS_FILE} has {what}", path=path, fix="rerun build-dataset on this folder")
    images = []
    for k, id in enumerate(ids):
        try:
            images.append(np.asarray(Image.open(folder / "images" / f"{id}.png").convert("RGB")))
        except OSError as error:
            raise UserError(f"cannot read sample {id}: {error}", path=folder,
                            fix="rerun build-dataset on this folder: it rewrites missing samples") from None
        progress("reading dataset", k + 1, len(ids))
    if len({i.shape for i in images}) != 1:
        raise UserError("the dataset's images differ in size", path=folder, fix="rebuild it")
    settings = {}
    try:
        settings = json.loads((folder / "dataset.json").read_text()).get("keypoints") or {}
    except (OSError, ValueError, AttributeError):
        pass
    return KeypointDataset(names, skeleton, ids, np.stack(images), np.stack([points[id] for id in ids]),
                           settings if isinstance(settings, dict) else {})


def dataset_classes(folder: Path) -> list[str]:
    path = Path(folder) / "labels.txt"
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] if path.is_file() else []


def read_keypoint_test_set(folder: Path, names: list[str], classes: list[str],
                           progress: ProgressCallback = silent) -> KeypointTestSet:
    """The LabelMe files in ``folder`` annotated for keypoints (flag ticked); all problems in one error."""
    folder = Path(folder)
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not paths:
        raise UserError("no LabelMe files (*.json) in the test folder", path=folder,
                        fix="annotate real images in LabelMe there (toy-faces: dgan-al toy real-test DIR --keypoints)")
    _check_names(folder, paths, names, classes)
    kept, images, truth, skipped, problems = [], [], [], [], []
    for k, path in enumerate(paths):
        try:
            annotation = read_labelme(path, classes, names)
            if annotation.keypoints_ticked:
                images.append(read_image(annotation))
                table = annotation.keypoint_table(names)
                truth.append([table[n] for n in names])
                kept.append(path.stem)
            else:
                skipped.append(path.stem)
        except LabelMeError as error:
            problems.append(str(error))
        progress("reading test set", k + 1, len(paths))
    if problems:
        raise problems_error(problems, folder,
                                 "fix them in LabelMe (labels must be the dataset's classes and keypoint names)")
    if len(kept) < 2:
        raise UserError(f"{len(kept)} of {len(paths)} test file(s) are annotated for keypoints (image flag "
                        "'keypoints' ticked, points placed); the test protocol needs at least 2", path=folder,
                        fix="place the points in LabelMe and tick the 'keypoints' flag (toy-faces: dgan-al toy "
                            "real-test DIR --keypoints)")
    sizes = np.array([max(image.shape[:2]) for image in images], dtype=np.float64)
    return KeypointTestSet(kept, images, np.asarray(truth, np.float32), sizes, skipped)


def _check_names(folder: Path, paths: list[Path], names: list[str], classes: list[str]) -> None:
    """UserError when the test points use names the dataset lacks, or its labels.txt lacks dataset names."""
    known = set(names) | set(classes) | {"_background_", "__ignore__"}
    unknown: dict[str, list[str]] = {}
    for path in paths:
        try:
            shapes = json.loads(path.read_text(encoding="utf-8")).get("shapes", [])
            labels = {s.get("label") for s in shapes if isinstance(s, dict) and s.get("shape_type") == "point"}
        except (OSError, ValueError, AttributeError):
            continue  # read_labelme names it with the rest
        for label in labels:
            if isinstance(label, str) and label not in known:
                unknown.setdefault(label, []).append(path.name)
    if unknown:
        listed = ", ".join(f"{quote(label)} ({len(files)} file(s), e.g. {files[0]})" for label, files in unknown.items())
        raise UserError(f"the test set's points are labelled {listed}, not keypoints of the dataset (its keypoints: "
                        f"{', '.join(names)})", path=folder,
                        fix="name the points as the dataset does (rename them in LabelMe), or test a dataset built "
                            "with these keypoint names")
    labels_file = folder / "labels.txt"
    if labels_file.is_file():
        offered = {line.strip() for line in labels_file.read_text(encoding="utf-8").splitlines()}
        lacking = [n for n in names if n not in offered]
        if lacking and len(lacking) < len(names):  # none offered: not a keypoint test set (said later)
            raise UserError(f"the test set's labels lack the dataset's keypoints {', '.join(lacking)}: its files were "
                            "not annotated for them, and a missing point would count as not visible",
                            path=labels_file, fix="annotate the test images with every keypoint of the dataset "
                                                  f"({', '.join(names)}), or test a dataset built with these names")


def read_baseline(workspace, names: list[str], progress: ProgressCallback = silent
                  ) -> tuple[list[str], np.ndarray | None, np.ndarray | None, str]:
    """(ids, images uint8 [N, H, W, 3], keypoints float32 [N, K, 3], note) of the workspace's annotations
    with keypoints; None arrays (and the note says why) when it has none."""
    from dgan_al.interpreter.keypoints import keypoint_array
    from dgan_al.workspace.annotations import AnnotationStore

    ws_names = list(workspace.config.keypoints.names)
    if ws_names != list(names):
        if not ws_names:
            return [], None, None, "no baseline: the workspace has no [keypoints] names"
        raise UserError(f"the workspace's keypoints ({', '.join(ws_names)}) differ from the dataset's "
                        f"({', '.join(names)})", path=workspace.config_path,
                        fix="evaluate a dataset built from this workspace, or run without the workspace's baseline")
    store = AnnotationStore(workspace.annotations_dir)
    ids = [id for id in store.ids() if store.records[id].keypoints is not None]
    if not ids:
        return [], None, None, "no baseline: no annotation of the workspace is annotated for keypoints"
    images, points = [], []
    for k, id in enumerate(ids):
        try:
            images.append(np.asarray(Image.open(store.image_path(id)).convert("RGB")))
        except OSError as error:
            raise UserError(f"cannot read the annotated image {id}: {error}", path=store.image_path(id),
                            fix="run `dgan-al next-round`: it imports the annotations again") from None
        points.append(keypoint_array(store.records[id].keypoints, names))
        progress("reading annotations", k + 1, len(ids))
    if len({i.shape for i in images}) != 1:
        raise UserError("the annotated images differ in size", path=store.folder, fix="annotate the exported images")
    return ids, np.stack(images), np.stack(points), ""


# --- the protocol --------------------------------------------------------------------------------------


def select_and_score_pck(run: HeatmapRun, test: KeypointTestSet, names: list[str], folds: list[np.ndarray],
                         presence: float) -> tuple[list[int], list[PCKCounts], list[float]]:
    """Per fold: the checkpoint with the best mean PCK@0.1 on it (ties: earliest) and the counts of the rest
    there; and the mean PCK@0.1 of every test image per checkpoint."""
    at = PCK_THRESHOLDS.index(SELECT_AT)
    n, epochs = len(test.files), run.positions.shape[0]

    def counts(epoch: int, index: np.ndarray) -> PCKCounts:
        return pck_counts(run.positions[epoch, index], run.confidence[epoch, index] >= presence,
                          test.truth[index], test.sizes[index], names)

    chosen, scored = [], []
    for held in folds:
        rest = np.setdiff1d(np.arange(n), held)
        scores = np.array([counts(e, held).mean_pck()[at] for e in range(epochs)])
        best = int(np.argmax(np.where(np.isnan(scores), -np.inf, scores)))
        chosen.append(best + 1)
        scored.append(counts(best, rest))
    every = np.arange(n)
    curve = [float(counts(e, every).mean_pck()[at]) for e in range(epochs)]
    return chosen, scored, curve


def evaluate_keypoint_downstream(dataset: Path, test: Path, settings: HeatmapSettings, workspace=None,
                                 out: Path | None = None, progress: ProgressCallback = silent,
                                 baseline_budget: str = "steps", presence: float | None = None
                                 ) -> KeypointDownstreamResult:
    """Train on the dataset (and, with a ``workspace``, the baseline on its annotations), test both on ``test``."""
    if baseline_budget not in BUDGETS:
        raise UserError(f"unknown baseline budget {quote(baseline_budget)}", setting="baseline_budget",
                        fix=f"use one of: {', '.join(BUDGETS)}")
    dataset, test = Path(dataset), Path(test)
    out = Path(out) if out is not None else dataset / "evaluation"
    data = read_keypoint_dataset(dataset, progress)
    names = data.names
    tests = read_keypoint_test_set(test, names, dataset_classes(dataset), progress)
    baseline_data = read_baseline(workspace, names, progress) if workspace is not None else None
    sigma = settings.sigma or float(data.settings.get("sigma") or (workspace.config.keypoints.sigma if workspace
                                                                   is not None else DEFAULT_SIGMA))
    if presence is None:
        presence = data.settings.get("prefill_confidence")
    presence = float(presence if presence is not None else DEFAULT_PRESENCE)
    settings = replace(settings, sigma=sigma)
    folds = k_folds(len(tests.files), TEST_FOLDS, seed=settings.seed)

    def figures(name: str, images, keypoints, run_settings, report) -> NetworkFigures:
        t0 = time.perf_counter()
        run = train_heatmap_network(images, keypoints, names, run_settings, tests.images, progress=report)
        chosen, scored, curve = select_and_score_pck(run, tests, names, folds, presence)
        return NetworkFigures(name, len(images), run.steps, chosen, scored, curve, run.losses, time.perf_counter() - t0)

    generated = figures("generated", data.images, data.keypoints, settings, progress)
    baseline, note = None, "no baseline: no workspace given"
    if baseline_data is not None:
        ids, images, keypoints, note = baseline_data
        if images is not None:
            steps = generated.steps_per_epoch if baseline_budget == "steps" else None
            baseline = figures("baseline", images, keypoints, replace(settings, steps_per_epoch=steps),
                               prefixed(progress, "baseline: "))
            note = (f"{len(ids)} annotated images, {baseline.steps_per_epoch} steps per checkpoint "
                    f"(budget: same {baseline_budget} as the generated run)")
    result = KeypointDownstreamResult(
        names, tests.files, [[tests.files[i] for i in f] for f in folds], generated, baseline, note,
        settings={"model": settings.model, "epochs": settings.epochs, "batch": settings.batch, "lr": settings.lr,
                  "seed": settings.seed, "sigma": sigma, "flip": settings.flip, "presence": presence,
                  "baseline_budget": baseline_budget, "model_options": settings.model_options,
                  "dataset": str(dataset), "test": str(test), "skipped_test_files": tests.skipped})
    out.mkdir(parents=True, exist_ok=True)
    result.files = {"results": str(out / RESULT_FILE), "plot": str(out / PLOT_FILE)}
    atomic_write_json(out / RESULT_FILE, result.to_dict())
    plot_keypoint_downstream(result, out / PLOT_FILE)
    return result


def plot_keypoint_downstream(result: KeypointDownstreamResult, path: Path) -> Path:
    """Left: test PCK@0.1 per checkpoint. Right: per-keypoint PCK@0.1 (mean ± std over folds), generated vs baseline."""
    plt = pyplot()
    at = PCK_THRESHOLDS.index(SELECT_AT)
    runs = [r for r in (result.generated, result.baseline) if r is not None]
    colours = {"generated": "tab:blue", "baseline": "tab:orange"}
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4), dpi=100, gridspec_kw={"width_ratios": [1, 1.6]})
    for run in runs:
        left.plot(np.arange(1, len(run.epoch_pck) + 1), run.epoch_pck, marker="o", color=colours[run.name],
                  label=f"{run.name} ({run.n_train} images)")
    left.set_xlabel("checkpoint")
    left.xaxis.get_major_locator().set_params(integer=True)
    left.set_ylabel(f"PCK@{SELECT_AT:g}, all test images")
    left.set_ylim(0, 1)
    left.legend(fontsize=8)
    left.set_title(f"{len(result.test_files)} real test images", fontsize=10)
    k = len(result.names)
    width = 0.8 / len(runs)
    for j, run in enumerate(runs):
        pck = run.fold_pck()[:, at]  # [F, K]
        mean = np.array([_nanmean(c) for c in pck.T])
        std = np.array([_nanstd(c) for c in pck.T])
        fold_mean = run.fold_mean()[:, at]
        right.bar(np.arange(k) + (j - (len(runs) - 1) / 2) * width, np.nan_to_num(mean), width, yerr=np.nan_to_num(std),
                  capsize=2, color=colours[run.name],
                  label=f"{run.name}: {np.mean(fold_mean):.3f} ± {np.std(fold_mean):.3f}")
    right.set_xticks(range(k), result.names, rotation=45, ha="right", fontsize=8)
    right.set_ylim(0, 1.2)  # room for the legend above the bars
    right.set_ylabel(f"PCK@{SELECT_AT:g}")
    right.legend(fontsize=8, loc="upper center", ncol=2, framealpha=0.9)
    right.set_title(f"per keypoint, mean ± std over {len(result.folds)} folds", fontsize=10)
    right.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def read_keypoint_downstream(dataset: Path) -> dict | None:
    try:
        return json.loads((Path(dataset) / "evaluation" / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None
