"""The downstream keypoint test (dgan_al.workflows.downstream_keypoints) end to end on tiny data, and its errors."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from dgan_al.errors import UserError
from dgan_al.generators.toy_faces.classes import CLASSES
from dgan_al.generators.toy_faces.keypoints import KEYPOINTS, latent_keypoints
from dgan_al.generators.toy_faces.render import render_latents
from dgan_al.generators.toy_faces.scene import Z_DIM
from dgan_al.segmenter.heatmaps import HeatmapSettings
from dgan_al.workflows.downstream_keypoints import evaluate_keypoint_downstream, read_keypoint_downstream
from dgan_al.workflows.importing import import_annotations
from dgan_al.workflows.oracle import oracle_annotate
from dgan_al.workflows.toy_real_test import make_real_test
from dgan_al.workspace.annotations import AnnotationStore
from workspaces import make_workspace

NAMES = list(KEYPOINTS)
TINY = HeatmapSettings(epochs=2, model_options={"width": 8, "depth": 2})


def write_coco_dataset(folder, n=12, seed=5, names=NAMES):
    """A built dataset's folder as build-dataset writes it, with keypoints.json in the COCO keypoints layout
    (written from the format's definition): toy-faces renders with their exact points; the last sample is
    filtered out (not in train.txt)."""
    z = np.random.default_rng(seed).standard_normal((n, Z_DIM))
    images, masks = render_latents(z)
    points = latent_keypoints(z, "renderer")
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    ids = [f"d{seed}-{i:07d}" for i in range(n)]
    coco = {"info": {"description": "test"}, "images": [], "annotations": [],
            "categories": [{"id": 1, "name": "face", "supercategory": "face", "keypoints": names,
                            "skeleton": [[1, 2], [5, 8]]}]}
    for i, id in enumerate(ids):
        Image.fromarray(images[i]).save(folder / "images" / f"{id}.png")
        Image.fromarray(masks[i]).save(folder / "masks" / f"{id}.png")
        flat = []
        for name in names:  # a name toy-faces lacks is not visible
            x, y, v = points[i, NAMES.index(name)] if name in NAMES else (0, 0, 0)
            flat += [round(float(x), 2), round(float(y), 2), 2] if v > 0 else [0, 0, 0]
        coco["images"].append({"id": i + 1, "file_name": f"images/{id}.png", "width": 128, "height": 128,
                               "dgan_al_id": id})
        coco["annotations"].append({"id": i + 1, "image_id": i + 1, "category_id": 1, "keypoints": flat,
                                    "num_keypoints": sum(1 for v in flat[2::3] if v > 0), "bbox": [0, 0, 128, 128],
                                    "area": 128 * 128, "iscrowd": 0})
    (folder / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    (folder / "train.txt").write_text("\n".join(ids[:-1]) + "\n")
    (folder / "manifest.csv").write_text("id,seed,index,score,rank,kept\n" + "".join(
        f"{id},{seed},{i},0.1,{i},{int(i < n - 1)}\n" for i, id in enumerate(ids)))
    (folder / "dataset.json").write_text(json.dumps({"keypoints": {"names": names, "prefill_confidence": 0.4,
                                                                   "sigma": 2.0}}))
    (folder / "keypoints.json").write_text(json.dumps(coco))
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("kpdown")
    dataset = write_coco_dataset(root / "dataset")
    test = root / "real"
    make_real_test(test, n=5, keypoints=True)
    ws = make_workspace(root / "ws", pool_size=8, settings={"keypoints.names": NAMES})
    oracle_annotate(ws, 0)
    import_annotations(ws, AnnotationStore(ws.annotations_dir))
    return dataset, test, ws


def copy_dataset(dataset, tmp_path):
    return shutil.copytree(dataset, tmp_path / "dataset", ignore=shutil.ignore_patterns("evaluation"))


def test_generated_and_baseline_end_to_end(data, tmp_path):
    dataset, test, ws = data
    dataset = copy_dataset(dataset, tmp_path)
    result = evaluate_keypoint_downstream(dataset, test, TINY, workspace=ws)
    assert result.names == NAMES and len(result.test_files) == 5 and len(result.folds) == 5
    assert result.generated.n_train == 11 and result.generated.steps_per_epoch == 2
    assert result.baseline is not None and result.baseline.n_train == 1  # the mean image, annotated by the oracle
    assert result.baseline.steps_per_epoch == 2  # budget "steps": as many steps as the generated run
    assert all(1 <= e <= 2 for e in result.generated.chosen_epochs + result.baseline.chosen_epochs)
    saved = read_keypoint_downstream(dataset)
    assert saved["settings"]["presence"] == 0.4 and saved["settings"]["sigma"] == 2.0
    for run in ("generated", "baseline"):
        figures = saved[run]
        assert set(figures["pck"]) == {"0.05", "0.1"} and set(figures["pck"]["0.1"]) == set(NAMES)
        mean = figures["mean_pck"]["0.1"]
        assert 0 <= mean["mean"] <= 1 and len(mean["folds"]) == 5
        assert len(figures["fold_counts"]) == 5 and set(figures["false_positive_rate"]) == set(NAMES)
    difference = saved["difference"]["0.1"]
    assert difference["low"] <= difference["mean"] <= difference["high"]
    assert difference["folds"] == pytest.approx(np.subtract(saved["generated"]["mean_pck"]["0.1"]["folds"],
                                                            saved["baseline"]["mean_pck"]["0.1"]["folds"]).tolist())
    assert (dataset / "evaluation" / "downstream_keypoints.png").stat().st_size > 1000
    again = evaluate_keypoint_downstream(dataset, test, TINY, workspace=ws, out=tmp_path / "again",
                                         baseline_budget="epochs")
    assert again.baseline.steps_per_epoch == 1  # one pass over one image
    np.testing.assert_array_equal(again.generated.fold_mean(), result.generated.fold_mean())


def test_without_workspace_and_the_cli_table(data, tmp_path, capsys):
    from dgan_al.cli.evaluate_keypoints import keypoint_downstream

    dataset, test, _ = data
    dataset = copy_dataset(dataset, tmp_path)
    keypoint_downstream(dataset, test, TINY, None)
    out = capsys.readouterr().out
    assert "left_eye" in out and "mean" in out and "no baseline" in out and "downstream_keypoints.json" in out
    saved = read_keypoint_downstream(dataset)
    assert saved["baseline"] is None and saved["difference"] is None


def test_a_dataset_without_keypoints_json(data, tmp_path):
    dataset, test, _ = data
    dataset = copy_dataset(dataset, tmp_path)
    (dataset / "keypoints.json").unlink()
    with pytest.raises(UserError, match="has no keypoints") as error:
        evaluate_keypoint_downstream(dataset, test, TINY)
    assert error.value.path == dataset and "[keypoints] names" in error.value.fix


def test_test_files_without_points(data, tmp_path):
    dataset, _, _ = data
    bare = tmp_path / "bare"
    make_real_test(bare, n=3)  # parts only: no points, the keypoints flag unticked
    with pytest.raises(UserError, match="0 of 3 test file.s. are annotated for keypoints") as error:
        evaluate_keypoint_downstream(dataset, bare, TINY)
    assert "--keypoints" in error.value.fix


def test_test_points_with_unknown_names(data, tmp_path):
    dataset, test, _ = data
    bad = shutil.copytree(test, tmp_path / "bad")
    path = sorted(bad.glob("*.json"))[1]
    raw = json.loads(path.read_text())
    next(s for s in raw["shapes"] if s["label"] == "nose_tip")["label"] = "snout"
    path.write_text(json.dumps(raw))
    with pytest.raises(UserError, match="labelled 'snout' .1 file.s., e.g. real_0001.json., not keypoints of the "
                                        "dataset") as error:
        evaluate_keypoint_downstream(dataset, bad, TINY)
    assert error.value.path == bad


def test_names_differing_between_dataset_and_test_set(data, tmp_path):
    dataset, test, ws = data
    other = write_coco_dataset(tmp_path / "other", n=3, names=[*NAMES, "forehead"])
    with pytest.raises(UserError, match="labels lack the dataset's keypoints forehead") as error:
        evaluate_keypoint_downstream(other, test, TINY)
    assert error.value.path == test / "labels.txt"
    fewer = write_coco_dataset(tmp_path / "fewer", n=3, names=NAMES[:-1])
    with pytest.raises(UserError, match="'right_ear'"):  # the test set places a name the dataset lacks
        evaluate_keypoint_downstream(fewer, test, TINY)


def test_evaluate_on_a_dataset_build_dataset_wrote(data, tmp_path):
    """The command a user runs: ``evaluate --dataset --test`` on a real build-dataset folder with keypoints.json
    runs the segmentation test (the test files' points read apart) and the keypoint test with its baseline."""
    from typer.testing import CliRunner

    from dgan_al.cli import app
    from dgan_al.workflows import build_dataset as build

    _, test, ws = data
    built = tmp_path / "built"
    build.build_dataset(ws, built, size=12, chunk=6)
    result = CliRunner().invoke(app, ["evaluate", "-w", str(ws.root), "--dataset", str(built), "--test", str(test),
                                      "--epochs", "2", "--batch", "4", "--threads", "1"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "downstream: compact trained on" in result.output and "downstream keypoints" in result.output
    kept = (built / "train.txt").read_text().split()
    saved = read_keypoint_downstream(built)
    assert saved["names"] == NAMES and saved["generated"]["n_train"] == len(kept)
    assert saved["baseline"]["n_train"] == 1
    assert json.loads((built / "evaluation" / "downstream.json").read_text())["n_test"] == 5
