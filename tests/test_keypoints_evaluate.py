"""Issue 32 item 6 (cross-validation part): evaluate scores the held-out keypoints (PCK@0.05, PCK@0.1 per name,
missed and false positives apart) in keypoint workspaces, keypoint-only ones included; parts-only files keep
their keys. Real runs on tiny toy-faces workspaces annotated by the toy oracle."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from dgan_al.cli import app
from dgan_al.generators.toy_faces import KEYPOINTS
from dgan_al.interpreter.keypoints import keypoint_array
from dgan_al.keypoint_metrics import PCKCounts
from dgan_al.labelme import write_labelme
from dgan_al.labelme.format import KEYPOINTS_FLAG, OCCLUDED_FLAG, TOP_LEVEL_KEYS
from dgan_al.workflows.cross_validation import cross_validate, history
from dgan_al.workflows.export import latent_tensor, read_selection
from dgan_al.workflows.importing import import_annotations
from dgan_al.workflows.next_round import next_round
from dgan_al.workflows.oracle import oracle_annotate
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.layout import Workspace
from workspaces import make_workspace

NAMES = list(KEYPOINTS)
runner = CliRunner()


def annotated_workspace(path, settings=None, keep=3):
    """Round 000 (the mean image) and ``keep`` images of round 001, annotated by the oracle and imported."""
    ws = make_workspace(path, pool_size=40, settings={"selection.annotate": keep, **(settings or {})})
    oracle_annotate(ws, 0)
    next_round(Workspace.find(path))
    ws = Workspace.find(path)
    oracle_annotate(ws, 1, keep=keep)
    import_annotations(ws, AnnotationStore(ws.annotations_dir))
    return Workspace.find(path)


@pytest.fixture(scope="module")
def keypointed(tmp_path_factory):
    return annotated_workspace(tmp_path_factory.mktemp("kp") / "ws", {"keypoints.names": NAMES})


@pytest.fixture(scope="module")
def parts_only(tmp_path_factory):
    return annotated_workspace(tmp_path_factory.mktemp("parts") / "ws", keep=1)


def test_held_out_keypoints_are_scored_per_fold_and_in_total(keypointed, tmp_path):
    shutil.copytree(keypointed.root, tmp_path / "ws")
    ws = Workspace.find(tmp_path / "ws")
    store = AnnotationStore(ws.annotations_dir)
    ids = store.ids()
    assert len(ids) == 4 and all(store.records[i].keypoints is not None for i in ids)
    cv = cross_validate(ws)
    kp = cv.keypoints
    assert kp is not None and kp.names == NAMES and len(kp.folds) == len(cv.folds) == 4
    assert kp.images == 4 and kp.fold_images == [1, 1, 1, 1]
    assert kp.prefill_confidence == ws.config.keypoints.prefill_confidence
    truths = {i: keypoint_array(store.records[i].keypoints, NAMES) for i in ids}
    for fold, counts in zip(cv.folds, kp.folds):  # each fold's visible truths: the held-out records' v = 2
        assert counts.visible.tolist() == sum((truths[i][:, 2] == 2).astype(int) for i in fold).tolist()
        assert counts.absent.tolist() == sum((truths[i][:, 2] == 0).astype(int) for i in fold).tolist()
    total = kp.folds[0] + kp.folds[1] + kp.folds[2] + kp.folds[3]
    for name in ("hits", "visible", "missed", "absent", "false_positive"):
        assert np.array_equal(getattr(kp.total, name), getattr(total, name)), name
    assert kp.total.visible.sum() == sum(int((t[:, 2] == 2).sum()) for t in truths.values()) > 0
    assert kp.total.hits.shape == (2, len(NAMES)) and (kp.total.hits[0] <= kp.total.hits[1]).all()
    assert (kp.total.missed <= kp.total.visible).all() and (kp.total.false_positive <= kp.total.absent).all()
    pck = kp.total.pck()
    assert np.all((pck[np.isfinite(pck)] >= 0) & (pck[np.isfinite(pck)] <= 1))
    mean = kp.total.mean_pck()
    assert np.isfinite(mean).all() and (0 <= mean).all() and (mean <= 1).all()
    assert kp.fold_pck().shape == (4, 2, len(NAMES)) and kp.pck_spread().shape == (2, len(NAMES))
    # on disk under "keypoints", the parts' keys beside it; read back equal, not recomputed
    data = json.loads(cv.path.read_text())
    part = data["keypoints"]
    assert part["names"] == NAMES and part["thresholds"] == [0.05, 0.1] and part["images"] == 4
    assert np.array(part["hits"]).shape == (2, len(NAMES)) and len(part["visible"]) == len(NAMES)
    assert set(part["pck"]) == {"0.05", "0.1"} and set(part["pck"]["0.1"]) == set(NAMES)
    assert len(part["folds"]) == 4 and [f["images"] for f in part["folds"]] == [1, 1, 1, 1]
    assert PCKCounts.from_dict(part["folds"][2]).visible.tolist() == kp.folds[2].visible.tolist()
    again = cross_validate(ws)
    assert again.reused and np.array_equal(again.keypoints.total.hits, kp.total.hits)
    assert history(ws)[-1].keypoints is not None
    # a file on record from before the keypoints were scored is recomputed, not trusted
    del data["keypoints"]
    cv.path.write_text(json.dumps(data))
    old = cv.path.read_text()
    redone = cross_validate(ws)
    assert not redone.reused and redone.keypoints is not None and "keypoints" in json.loads(cv.path.read_text())
    assert cv.path.read_text() != old
    # another pre-fill confidence changes missed / false positives: recomputed too
    (ws.config_path).write_text(ws.config_path.read_text().replace("prefill_confidence = 0.2",
                                                                   "prefill_confidence = 0.0"))
    ws = Workspace.find(ws.root)
    assert ws.config.keypoints.prefill_confidence == 0.0
    zero = cross_validate(ws)
    assert not zero.reused and zero.keypoints.total.missed.sum() == 0  # everything predicted present
    assert zero.keypoints.total.false_positive.sum() == zero.keypoints.total.absent.sum()


def test_a_parts_only_workspace_keeps_exactly_its_keys(parts_only):
    ws = parts_only
    cv = cross_validate(ws)
    assert cv.keypoints is None
    data = json.loads(cv.path.read_text())
    assert set(data) == {"n_annotations", "annotation_set", "round", "folds", "classes", "class_iou",
                         "fold_miou", "miou_mean", "miou_std", "image_miou", "seconds", "fold_confusions", "written"}


def test_evaluate_prints_the_per_keypoint_table_and_plots_pck(keypointed, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(keypointed.root, root)
    result = runner.invoke(app, ["evaluate", "-w", str(root)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "per-class IoU" in out and "per-keypoint PCK" in out and "PCK@0.05" in out and "PCK@0.1" in out
    assert out.index("per-class IoU") < out.index("per-keypoint PCK")
    cv = cross_validate(Workspace.find(root))
    assert cv.reused
    table = [line for line in out.splitlines() if line.startswith("│")]
    assert all(len(line) <= 80 for line in table)  # toy-faces' names fit 80 columns, one line per row
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("│").split("│")] for line in table)}
    assert set(NAMES) <= set(rows)
    counts = cv.keypoints.total
    for k, name in enumerate(NAMES):
        pck05, pck10, visible, missed, fp, images = rows[name]
        assert visible == str(counts.visible[k]) and missed == str(counts.missed[k])
        assert fp == f"{counts.false_positive[k]}/{counts.absent[k]}" and images == "4"
        if counts.visible[k]:
            assert pck10.startswith(f"{counts.pck()[1, k]:.3f}")
        else:
            assert pck05 == pck10 == "-"
    mean = rows["mean"]
    assert mean[0].startswith(f"{counts.mean_pck()[0]:.3f}") and mean[2] == str(counts.visible.sum())
    assert Image.open(root / "rounds" / "evaluation" / "cv_history.png").size[0] > 1500  # the third panel


def test_cross_validation_in_a_keypoint_only_workspace(tmp_path):
    """classes = the background alone (init --classes background --keypoints ...): the toy oracle refuses such a
    workspace, so its points (the oracle's truth) are written here as LabelMe would, and imported. next-round
    trains the one-class interpreter with its heads and selects by keypoint uncertainty (JS is 0 everywhere)."""
    from dgan_al.workflows.init import init_workspace
    from dgan_al.workspace.config import CONFIG_NAME, load_config, render_config
    from workspaces import SMALL

    root = tmp_path / "only"
    names = ["left_eye", "right_eye", "nose_tip", "chin"]
    init_workspace(root, classes=["background"], keypoints=names, pool_size=40)
    config = load_config(root / CONFIG_NAME)
    for key, value in {**SMALL, "selection.annotate": 2}.items():
        section, name = key.split(".")
        setattr(getattr(config, section), name, value)
    (root / CONFIG_NAME).write_text(render_config(config.validate()))
    ws = Workspace.find(root)
    place_points(ws, 0, names)
    next_round(ws)
    ws = Workspace.find(root)
    place_points(ws, 1, names)
    import_annotations(ws, AnnotationStore(ws.annotations_dir))
    store = AnnotationStore(ws.annotations_dir)
    selection = read_selection(ws.round_dir(1))
    assert selection["settings"]["keypoint_score"]
    exported = len(selection["items"])  # every exported file was placed and ticked
    assert len(store.ids()) == 1 + exported
    cv = cross_validate(ws)
    assert cv.summary.classes == ["background"] and cv.summary.miou_mean == 1.0  # trivially
    assert cv.keypoints.images == 1 + exported and cv.keypoints.total.visible.sum() == sum(
        v == 2 for i in store.ids() for _, _, v in store.records[i].keypoints.values())
    result = runner.invoke(app, ["evaluate", "-w", str(root)], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "keypoint-only workspace" in result.output and "per-keypoint PCK" in result.output
    assert "per-class IoU" not in result.output and "mIoU" not in result.output
    assert Image.open(root / "rounds" / "evaluation" / "cv_history.png").size[0] > 800


def test_a_keypoint_only_run_renders_pck_without_the_trivial_iou(tmp_path):
    """What evaluate shows of a keypoint-only cross-validation (the background's IoU is 1 by construction):
    the 1-class summary, the PCK table, and a plot of PCK history and PCK per keypoint."""
    from rich.console import Console

    from dgan_al.cli.evaluate import keypoint_pck_table
    from dgan_al.keypoint_metrics import pck_counts
    from dgan_al.metrics import summarize_folds
    from dgan_al.workflows.cross_validation import CrossValidation, KeypointCV, plot_history

    names = ["nose_tip", "chin", "left_eye"]
    nan = [np.nan] * 3
    truth = np.array([[[10, 10, 2], [20, 30, 0], [5, 5, 2]], [[40, 40, 2], [50, 60, 2], [0, 0, 0]],
                      [[12, 12, 1], [20, 20, 2], nan]], float)
    guess = np.array([[[11, 10], [0, 0], [5, 15]], [[60, 40], [50, 61], [3, 3]], [[0, 0], [20, 21], [9, 9]]], float)
    present = np.array([[True, True, True], [True, False, False], [False, True, True]])
    folds = [pck_counts(guess[[k]], present[[k]], truth[[k]], 128, names) for k in range(3)]
    kp = KeypointCV(folds[0] + folds[1] + folds[2], folds, 3, [1, 1, 1], 0.5)
    summary = summarize_folds([np.array([[128 * 128]])] * 3, ["background"])
    assert summary.miou_mean == 1.0
    runs = [CrossValidation(n, "set", n - 1, [[str(i)] for i in range(n)], summary, keypoints=kp if n == 3 else None)
            for n in (2, 3)]
    assert kp.total.visible.tolist() == [2, 2, 1] and kp.total.hits.tolist() == [[1, 2, 0], [1, 2, 1]]
    assert kp.total.missed.tolist() == [0, 1, 0] and kp.total.false_positive.tolist() == [0, 1, 0]
    assert kp.total.absent.tolist() == [0, 1, 1]
    console = Console(record=True, width=120)
    console.print(keypoint_pck_table(runs[-1], {n: {"annotated": 3 - (n == "left_eye")} for n in names}))
    text = console.export_text()
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("│").split("│")]
                                               for line in text.splitlines() if line.startswith("│"))}
    assert rows["nose_tip"] == ["0.500±0.500", "0.500±0.500", "2", "0", "0/0", "3"]
    assert rows["chin"] == ["1.000±0.000", "1.000±0.000", "2", "1", "1/1", "3"]
    assert rows["left_eye"] == ["0.000", "1.000", "1", "0", "0/1", "2"]  # visible in one fold only: no spread
    # mean over all visible truths (3/5, 4/5); spread of the folds' means (0.05: 1/2, 1/2, 1; 0.1: 1, 1/2, 1)
    assert rows["mean"] == ["0.600±0.236", "0.800±0.236", "5", "1", "1/2", "3"]
    path = plot_history(runs, tmp_path / "cv_history.png", ["background"])
    assert Image.open(path).size[0] > 800


def place_points(ws, number, names):
    """Round ``number``'s exported files: the oracle's true points, ticked done and keypoints."""
    generator = ws.load_generator()
    folder = ws.round_dir(number)
    items = read_selection(folder)["items"]
    known = list(generator.keypoints)
    points = generator.oracle_keypoints(torch.stack([latent_tensor(item) for item in items]))
    for item, rows in zip(items, points):
        path = ws.round_files(number).annotate / item["json"]
        raw = json.loads(path.read_text())
        extra = {k: v for k, v in raw.items() if k not in TOP_LEVEL_KEYS}
        shapes = [{"label": n, "points": [[float(x), float(y)]], "group_id": None, "description": "",
                   "shape_type": "point", "flags": {OCCLUDED_FLAG: bool(v == 1)}, "mask": None}
                  for n in names for x, y, v in [rows[known.index(n)]] if v > 0]
        write_labelme(path, None, shapes, flags={"done": True, "unrealistic": False, KEYPOINTS_FLAG: True},
                      extra=extra)
