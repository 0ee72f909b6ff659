"""build-dataset in a keypoint workspace: keypoints.json in the COCO keypoint format, the chunk rows behind it
(byte-identical through resumes and shards), refused mismatches; a parts-only workspace writes none of it."""

import csv
import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dgan_al.cli import app
from dgan_al.errors import UserError
from dgan_al.generators.toy_faces import KEYPOINTS
from dgan_al.workflows.build_dataset import build_dataset, merge_dataset
from dgan_al.workflows.coco_keypoints import coco_keypoints
from dgan_al.workflows.importing import import_annotations
from dgan_al.workflows.next_round import next_round
from dgan_al.workflows.oracle import oracle_annotate
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.config import CONFIG_NAME, load_config, render_config
from dgan_al.workspace.layout import Workspace
from workspaces import make_workspace, snapshot

runner = CliRunner()
NAMES = list(KEYPOINTS)
SKELETON = [["left_eye", "right_eye"], ["nose_tip", "chin"], ["mouth_left", "mouth_right"]]
SIZE, CHUNK = 13, 4  # 4 chunks, the last one short


def set_config(root: Path, **values) -> None:
    """Set ``section.key`` (written section__key) values in the workspace's dgan-al.toml."""
    config = load_config(root / CONFIG_NAME)
    for key, value in values.items():
        section, name = key.split("__")
        setattr(getattr(config, section), name, value)
    (root / CONFIG_NAME).write_text(render_config(config.validate()))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """toy-faces with its 10 keypoint names: the oracle annotated two rounds with points; round 002's
    interpreter (heads included) is trained on both annotations."""
    root = tmp_path_factory.mktemp("kp") / "faces"
    ws = make_workspace(root, pool_size=48, settings={"keypoints.names": NAMES, "keypoints.skeleton": SKELETON})
    oracle_annotate(ws, 0)
    next_round(Workspace.find(root))
    oracle_annotate(Workspace.find(root), 1, keep=1)
    next_round(Workspace.find(root))
    return root


@pytest.fixture(scope="module")
def reference(workspace, tmp_path_factory) -> Path:
    """One uninterrupted build, its threshold the median recorded confidence (so both v = 0 and v = 2 occur):
    a first build with threshold 0 gives the confidences, then the workspace is set to their median."""
    scratch = tmp_path_factory.mktemp("data") / "scratch"
    set_config(workspace, keypoints__prefill_confidence=0.0)
    build_dataset(Workspace.find(workspace), scratch, SIZE, filter_fraction=0.25, chunk=CHUNK)
    confidence = [c for row in rows_of(scratch) for _, _, c in row["keypoints"]]
    set_config(workspace, keypoints__prefill_confidence=round(statistics.median(confidence), 4))
    out = tmp_path_factory.mktemp("data") / "ref"
    result = build_dataset(Workspace.find(workspace), out, SIZE, filter_fraction=0.25, chunk=CHUNK)
    assert result.chunks_computed == 4 and result.merge is not None and result.messages == []
    assert "round 002's" in result.interpreter_source
    assert result.merge.files["keypoints"] == str(out / "keypoints.json")
    return out


def rows_of(out: Path) -> list[dict]:
    return [row for p in sorted((out / "parts").glob("chunk_*.json")) for row in json.loads(p.read_text())["rows"]]


def manifest(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_keypoints_json_has_the_coco_keypoint_fields(workspace, reference):
    doc = json.loads((reference / "keypoints.json").read_text())
    settings = json.loads((reference / "dataset.json").read_text())
    threshold = settings["keypoints"]["prefill_confidence"]
    assert settings["keypoints"] == {"names": NAMES, "skeleton": SKELETON, "prefill_confidence": threshold}
    assert set(doc) >= {"info", "images", "annotations", "categories"}
    assert doc["info"]["prefill_confidence"] == threshold and doc["info"]["generator"] == settings["generator"]
    assert "centres at integers" in doc["info"]["coordinates"]
    # categories: one, its names in order, the skeleton as 1-based index pairs
    (category,) = doc["categories"]
    assert category["id"] == 1 and isinstance(category["name"], str) and isinstance(category["supercategory"], str)
    assert category["keypoints"] == NAMES
    assert category["skeleton"] == [[NAMES.index(a) + 1, NAMES.index(b) + 1] for a, b in SKELETON]
    # images: every sample of manifest.csv, in its order, id = the latent index
    rows = manifest(reference)
    assert [im["file_name"] for im in doc["images"]] == [r["image"] for r in rows]
    assert [im["id"] for im in doc["images"]] == [int(r["latent_index"]) for r in rows]
    assert [im["kept"] for im in doc["images"]] == [int(r["kept"]) for r in rows]
    assert len({im["id"] for im in doc["images"]}) == SIZE
    for im in doc["images"]:
        assert all(isinstance(im[k], int) for k in ("id", "width", "height"))
        image, mask = Image.open(reference / im["file_name"]), Image.open(reference / im["mask"])
        assert image.size == mask.size == (im["width"], im["height"])  # one pixel frame
    # annotations: one per image, in the same order, unique ids (none 0)
    anns = doc["annotations"]
    assert [a["image_id"] for a in anns] == [im["id"] for im in doc["images"]]
    assert len({a["id"] for a in anns}) == SIZE and min(a["id"] for a in anns) >= 1
    chunk_rows = rows_of(reference)
    v_seen = set()
    for ann, row, im in zip(anns, chunk_rows, doc["images"]):
        assert set(ann) >= {"id", "image_id", "category_id", "keypoints", "num_keypoints", "bbox", "area", "iscrowd"}
        assert ann["category_id"] == 1 and ann["iscrowd"] == 0
        kp = ann["keypoints"]
        assert isinstance(kp, list) and len(kp) == 3 * len(NAMES)
        xs, ys, vs = kp[0::3], kp[1::3], kp[2::3]
        assert set(vs) <= {0, 2} and all(isinstance(v, int) for v in vs)
        assert ann["num_keypoints"] == sum(v > 0 for v in vs)
        for x, y, v, (rx, ry, c) in zip(xs, ys, vs, row["keypoints"]):
            assert (v == 2) == (c >= threshold)
            if v == 0:
                assert x == 0 and y == 0
            else:
                assert (x, y) == (rx, ry) and 0 <= x <= im["width"] - 1 and 0 <= y <= im["height"] - 1
        v_seen |= set(vs)
        assert len(ann["bbox"]) == 4 and all(isinstance(b, (int, float)) for b in ann["bbox"])
        assert isinstance(ann["area"], (int, float)) and ann["area"] >= 0
        # bbox and area: the mask's object (non-background) pixels
        obj = np.asarray(Image.open(reference / im["mask"])) > 0
        assert obj.any() and ann["area"] == obj.sum()
        cols, lines = np.flatnonzero(obj.any(0)), np.flatnonzero(obj.any(1))
        assert ann["bbox"] == [cols[0], lines[0], cols[-1] - cols[0] + 1, lines[-1] - lines[0] + 1]
    assert v_seen == {0, 2}  # the median threshold splits the points


def test_pycocotools_reads_it(reference):
    pytest.importorskip("pycocotools")
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    coco = COCO(str(reference / "keypoints.json"))
    (cat_id,) = coco.getCatIds()
    assert coco.loadCats(cat_id)[0]["keypoints"] == NAMES
    assert coco.getImgIds() == [im["id"] for im in json.loads((reference / "keypoints.json").read_text())["images"]]
    for image_id in coco.getImgIds()[:4]:
        (ann,) = coco.loadAnns(coco.getAnnIds(imgIds=[image_id], catIds=[cat_id], iscrowd=None))
        assert ann["image_id"] == image_id and len(ann["keypoints"]) == 3 * len(NAMES)
        image = coco.loadImgs(image_id)[0]
        # the box and area are what pycocotools itself computes for the object mask
        obj = (np.asarray(Image.open(reference / image["mask"])) > 0).astype(np.uint8)
        rle = mask_utils.encode(np.asfortranarray(obj))
        assert ann["bbox"] == mask_utils.toBbox(rle).tolist() and ann["area"] == int(mask_utils.area(rle))
    # a keypoint-area query, as COCOeval's keypoint ground truth uses
    assert len(coco.getAnnIds(areaRng=[0, 1e10])) == SIZE


def test_interrupted_build_resumes_to_identical_files(workspace, reference, tmp_path):
    out = tmp_path / "data"
    seen = []

    def stop(task, done, total):
        if task == "generating samples" and done > 0:
            seen.append(done)
            if len(seen) == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_dataset(Workspace.find(workspace), out, SIZE, filter_fraction=0.25, chunk=CHUNK, progress=stop)
    assert not (out / "keypoints.json").exists()
    finished = len(list((out / "parts").glob("chunk_*.json")))
    assert finished < 4
    result = build_dataset(Workspace.find(workspace), out, SIZE, filter_fraction=0.25, chunk=CHUNK)
    assert result.chunks_reused == finished
    assert _relative(snapshot(out), out) == _relative(snapshot(reference), reference)


def test_shards_merge_to_the_unsharded_result(workspace, reference, tmp_path):
    ws = Workspace.find(workspace)
    a, b = tmp_path / "a", tmp_path / "b"
    assert build_dataset(ws, a, SIZE, filter_fraction=0.25, chunk=CHUNK, shard=(0, 2)).merge is None
    assert build_dataset(ws, b, SIZE, filter_fraction=0.25, chunk=CHUNK, shard=(1, 2)).merge is None
    assert not (a / "keypoints.json").exists() and not (b / "keypoints.json").exists()
    for sub in ("images", "masks", "parts"):
        shutil.copytree(b / sub, a / sub, dirs_exist_ok=True)
    result = runner.invoke(app, ["build-dataset", "--merge", str(a), "--filter", "0.25"])
    assert result.exit_code == 0, result.output
    assert "keypoints.json" in result.output and "keypoints labelled" in result.output
    assert _relative(snapshot(a), a) == _relative(snapshot(reference), reference)


def test_a_resume_or_shard_with_other_keypoint_settings_is_refused(workspace, reference, tmp_path):
    root = tmp_path / "faces"
    shutil.copytree(workspace, root)
    before = snapshot(reference)
    threshold = json.loads((reference / "dataset.json").read_text())["keypoints"]["prefill_confidence"]
    for change, named in (({"keypoints__prefill_confidence": min(1.0, threshold + 0.1)}, "another keypoints"),
                          ({"keypoints__skeleton": []}, "another keypoints"),
                          ({"keypoints__skeleton": [], "keypoints__names": NAMES[:3]}, "keypoint heads"),
                          ({"keypoints__skeleton": [], "keypoints__names": []}, "another keypoints")):
        shutil.copy(workspace / CONFIG_NAME, root / CONFIG_NAME)
        set_config(root, **change)
        with pytest.raises(UserError, match=named):
            build_dataset(Workspace.find(root), reference, SIZE, filter_fraction=0.25, chunk=CHUNK, shard=(0, 2))
    result = runner.invoke(app, ["build-dataset", "-w", str(root), "--out", str(reference), "--size", str(SIZE),
                                 "--chunk", str(CHUNK)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert snapshot(reference) == before


def test_v_follows_the_threshold_and_the_box_falls_back_to_the_points(reference):
    rows = rows_of(reference)
    confidence = sorted(c for row in rows for _, _, c in row["keypoints"])
    kept = [True] * len(rows)
    common = dict(names=NAMES, skeleton=[], width=128, height=128, info={})
    everything = coco_keypoints(rows, kept, threshold=0.0, **common)
    assert all(a["num_keypoints"] == len(NAMES) for a in everything["annotations"])
    nothing = coco_keypoints(rows, kept, threshold=confidence[-1] + 1e-4, **common)
    assert all(a["num_keypoints"] == 0 and not any(a["keypoints"]) for a in nothing["annotations"])
    # no object pixels (a keypoint-only workspace's masks): the box of the pixels holding the labelled points
    row = {"id": "d1-0000000", "index": 0, "bbox": [0, 0, 0, 0], "area": 0,
           "keypoints": [[10.4, 20.6, 0.9], [30.5, 5.0, 0.8], [99.0, 99.0, 0.1]] + [[0.0, 0.0, 0.0]] * 7}
    (ann,) = coco_keypoints([row], [True], threshold=0.5, **common)["annotations"]
    assert ann["keypoints"][:9] == [10.4, 20.6, 2, 30.5, 5.0, 2, 0, 0, 0]
    assert ann["bbox"] == [10, 5, 22, 17] and ann["area"] == 22 * 17  # pixels 10..31 (30.5 rounds up), 5..21
    (none,) = coco_keypoints([row], [True], threshold=0.95, **common)["annotations"]
    assert none["bbox"] == [0, 0, 0, 0] and none["area"] == 0 and none["num_keypoints"] == 0


def test_a_parts_only_workspace_writes_no_keypoints(tmp_path):
    root = tmp_path / "faces"
    ws = make_workspace(root, pool_size=8)
    oracle_annotate(ws, 0)
    import_annotations(ws, AnnotationStore(ws.annotations_dir))
    out = tmp_path / "data"
    result = build_dataset(Workspace.find(root), out, 5, chunk=CHUNK)
    assert result.merge is not None and result.merge.keypoint_share is None and "keypoints" not in result.merge.files
    assert not (out / "keypoints.json").exists()
    assert "keypoints" not in json.loads((out / "dataset.json").read_text())
    assert all(set(row) == {"id", "index", "score_sum", "score_top10"} for row in rows_of(out))
    # a parts-only dataset is not resumed by a keypoint workspace
    set_config(root, keypoints__names=NAMES)
    with pytest.raises(UserError, match="no keypoint heads"):
        build_dataset(Workspace.find(root), out, 5, chunk=CHUNK)


def _relative(files: dict[str, bytes], root: Path) -> dict[str, bytes]:
    return {str(Path(k).relative_to(root)): v for k, v in files.items()}
