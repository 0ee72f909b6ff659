"""evaluate: cross-validation on a small toy-faces workspace, the toy real-test set, and the downstream
protocol end to end (tiny sizes), with bad inputs."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dgan_al.cli import app
from dgan_al.labelme import read_labelme
from dgan_al.metrics import confusion_matrix, mean_iou
from dgan_al.segmenter.train import SegmenterSettings
from dgan_al.workflows.build_dataset import build_dataset
from dgan_al.workflows.cross_validation import cross_validate, history, round_prefixes
from dgan_al.workflows.downstream import evaluate_downstream, read_test_set
from dgan_al.workflows.importing import import_annotations
from dgan_al.workflows.oracle import oracle_annotate
from dgan_al.workflows.toy_real_test import make_real_test
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.layout import Workspace
from workspaces import after_first_round, snapshot

runner = CliRunner()


@pytest.fixture(scope="module")
def annotated(tmp_path_factory) -> Path:
    """Mean image (round 0) + 3 oracle annotations from round 1: 4 annotations over 2 rounds."""
    root = tmp_path_factory.mktemp("ws") / "faces"
    ws = after_first_round(root, pool_size=40)
    oracle_annotate(ws, 1, keep=3)
    import_annotations(Workspace.find(root), AnnotationStore(ws.annotations_dir))
    return root


@pytest.fixture(scope="module")
def real_test(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("real") / "test"
    make_real_test(folder, n=6)
    return folder


def test_cross_validation_folds_hold_each_image_out_once(annotated):
    ws = Workspace.find(annotated)
    store = AnnotationStore(ws.annotations_dir)
    ids = store.ids()
    assert len(ids) == 4
    cv = cross_validate(ws, k=5)
    assert len(cv.folds) == 4  # leave-one-out below 5 annotations
    assert sorted(i for fold in cv.folds for i in fold) == ids
    assert set(cv.image_miou) == set(ids)
    assert 0.0 < cv.summary.miou_mean < 1.0 and len(cv.summary.fold_miou) == 4
    on_disk = json.loads(cv.path.read_text())
    # each fold's confusion matrix is the sum over its held-out images: pixels add up to the masks
    total = sum(np.array(c).sum() for c in on_disk["fold_confusions"])
    assert total == sum(int((store.mask(i) != 255).sum()) for i in ids)
    again = cross_validate(ws, k=5)
    assert again.reused and again.summary.miou_mean == cv.summary.miou_mean  # on record, not recomputed
    # the history keeps one entry per annotation set (e.g. per round)
    prefixes = round_prefixes(store)
    assert [n for n, _ in prefixes] == [0, 1] and len(prefixes[0][1]) == 1
    cross_validate(ws, ids=ids[:3], k=5)
    assert [c.n_annotations for c in history(ws)] == [3, 4]


def test_evaluate_cli_writes_history_plot_and_refuses_half_options(annotated, tmp_path):
    root = tmp_path / "faces"
    shutil.copytree(annotated, root)
    result = runner.invoke(app, ["evaluate", "-w", str(root), "--all-rounds"])
    assert result.exit_code == 0, result.output
    assert "cross-validation history" in result.output
    assert Image.open(root / "rounds" / "evaluation" / "cv_history.png").size[0] > 500
    status = runner.invoke(app, ["status", "-w", str(root)])
    said = " ".join(status.output.split())  # rich wraps long lines
    assert "cross-validated mIoU" in said and "on 4 annotations (the current annotations)" in said
    result = runner.invoke(app, ["evaluate", "-w", str(root), "--dataset", str(tmp_path)])
    assert result.exit_code == 2 and "--test" in result.output


def test_real_test_set_is_labelme_files_of_crisp_renders(real_test):
    from dgan_al.generators.toy_faces.classes import CLASSES
    from dgan_al.generators.toy_faces.render import render_latents
    from dgan_al.generators.protocol import sample_latents
    from dgan_al.workflows.toy_real_test import REAL_TEST_SEED

    names, images, masks = read_test_set(real_test, list(CLASSES))
    assert names == [f"real_{i:04d}" for i in range(6)]
    rgb, truth = render_latents(sample_latents(32, 6, seed=REAL_TEST_SEED).numpy())
    for k in range(6):
        assert np.array_equal(images[k], rgb[k])  # the renderer's own pixels
        assert mean_iou(confusion_matrix(masks[k], truth[k], len(CLASSES))) > 0.9  # polygons trace the truth
        assert read_labelme(real_test / f"{names[k]}.json", list(CLASSES)).done
    result = runner.invoke(app, ["toy", "real-test", str(real_test), "--n", "2"])
    assert result.exit_code == 2 and "already holds LabelMe files" in result.output


def test_downstream_protocol_end_to_end(annotated, real_test, tmp_path):
    ws = Workspace.find(annotated)
    data = tmp_path / "data"
    build_dataset(ws, data, size=12, chunk=6)
    settings = SegmenterSettings(epochs=2, batch=4, seed=0, model_options={"width": 8})
    result = evaluate_downstream(data, real_test, settings)
    assert result.n_train == 11 and result.n_test == 6  # 10% of 12 filtered out: 1
    assert len(result.summary.fold_miou) == 5 and all(1 <= e <= 2 for e in result.chosen_epochs)
    assert 0.0 <= result.summary.miou_mean <= 1.0 and len(result.losses) == 2
    saved = json.loads((data / "evaluation" / "downstream.json").read_text())
    assert saved["miou_mean"] == pytest.approx(result.summary.miou_mean, abs=1e-6)
    assert len(saved["settings"]["test_folds"]) == 5
    assert Image.open(data / "evaluation" / "downstream.png").size[0] > 500


def test_bad_test_sets_exit_2_naming_the_file(annotated, real_test, tmp_path):
    ws = Workspace.find(annotated)
    data = tmp_path / "data"
    build_dataset(ws, data, size=4, chunk=6)
    bad = tmp_path / "bad"
    shutil.copytree(real_test, bad)
    raw = json.loads((bad / "real_0003.json").read_text())
    raw["shapes"][0]["label"] = "skni"
    (bad / "real_0003.json").write_text(json.dumps(raw))
    before = snapshot(bad)
    result = runner.invoke(app, ["evaluate", "-w", str(annotated), "--dataset", str(data), "--test", str(bad),
                                 "--epochs", "1"])
    assert result.exit_code == 2, result.output
    assert "real_0003.json" in result.output and "skin" in result.output and "Traceback" not in result.output
    assert snapshot(bad) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["evaluate", "-w", str(annotated), "--dataset", str(data), "--test", str(empty)])
    assert result.exit_code == 2 and "no LabelMe files" in result.output
    result = runner.invoke(app, ["evaluate", "-w", str(annotated), "--dataset", str(empty), "--test", str(bad)])
    assert result.exit_code == 2 and "not a finished dgan-al dataset" in result.output


def test_evaluate_prints_per_class_iou_at_80_columns_names_each_fold_and_what_next(annotated, tmp_path):
    root = tmp_path / "faces"
    shutil.copytree(annotated, root)
    result = runner.invoke(app, ["evaluate", "-w", str(root), "--force"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    ws = Workspace.find(root)
    cv = cross_validate(ws)  # the run just recorded
    assert cv.reused and len(cv.folds) == 4
    lines = result.output.splitlines()
    table = [line for line in lines if line.startswith("│") and len(line) <= 80]
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("│").split("│")] for line in table)}
    totals = AnnotationStore(ws.annotations_dir).class_totals(ws.config.classes)
    for k, name in enumerate(ws.config.classes):  # every class, its IoU as recorded, images showing it
        iou = cv.summary.class_iou[k]
        assert rows[name][0] == ("-" if iou != iou else f"{iou:.3f}"), (name, rows[name])
        assert rows[name][3] == str(totals[name][0])
    assert rows["mIoU"][0] == f"{cv.summary.miou_mean:.3f}"
    assert "per-class IoU, 4 annotations, 4 folds" in result.output and "…" not in result.output
    # each fold's training counter is named, so its rate and ETA are its own
    for f in range(1, 5):
        assert f"fold {f}/4: training interpreter" in result.output
    assert "Next: dgan-al next-round" in " ".join(result.output.split())


def test_a_progress_counter_that_starts_over_gets_its_own_rate_and_eta():
    import io

    from dgan_al.cli.progress import LineProgress

    now = [0.0]
    out = io.StringIO()
    report = LineProgress(out, interval=0.0, clock=lambda: now[0])
    for done in range(0, 11):  # 10 steps/s, to the end
        now[0] = done / 10
        report("training interpreter", done, 10)
    now[0] = 60.0  # a minute later the same work runs again (the next fold): 10 steps/s again
    report("training interpreter", 0, 10)
    now[0] = 60.5
    report("training interpreter", 5, 10)
    last = out.getvalue().splitlines()[-1]
    assert "5/10 (50%) 10.0/s eta 0s" in last, last


def test_build_dataset_reads_at_80_columns_and_says_what_next(annotated, tmp_path):
    root = tmp_path / "faces"
    shutil.copytree(annotated, root)
    result = runner.invoke(app, ["build-dataset", "-w", str(root), "--size", "4", "--chunk", "4", "--out",
                                 str(tmp_path / "data")], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    shares = json.loads((tmp_path / "data" / "dataset.json").read_text())
    lines = [line.strip("│┃ ").split() for line in result.output.splitlines()]
    for name in Workspace.find(root).config.classes:  # a row per class: its name and share on one line
        assert any(cells[:1] == [name] and cells[-1].endswith("%") for cells in lines), name
    said = " ".join(result.output.split())
    assert f"Next: dgan-al evaluate --dataset {tmp_path / 'data'} --test TESTDIR" in said
    assert shares  # the dataset was written
