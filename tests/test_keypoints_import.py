"""Keypoints in, issue 32 items 1, 2 and 7: the [keypoints] settings, init --keypoints, the strict import of
LabelMe point shapes (real files on disk, written by LabelMe's own ``LabelFile``, through the real import),
the ``keypoints`` image flag, ``occluded``, re-import, status counts, and that a workspace without keypoints
imports exactly as before."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from labelme import LabelFile
from typer.testing import CliRunner

from dgan_al.cli import app
from dgan_al.errors import UserError
from dgan_al.files import sha256_bytes
from dgan_al.labelme import labelme_command, rasterize, read_labelme, write_labelme, write_labels_file
from dgan_al.labelme.launch import LabelMeInstall
from dgan_al.workflows.importing import import_annotations
from dgan_al.workflows.status import workspace_status
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.config import KeypointSettings, WorkspaceConfig, load_config, render_config
from dgan_al.workspace.layout import Workspace

REPO = Path(__file__).resolve().parents[1]
OLD_SEED = Path(__file__).resolve().parent / "data" / "seed-2026-12-03"  # the seed set before keypoints
CLASSES = ["background", "skin", "eye"]
NAMES = ["left_eye", "right_eye", "nose_tip"]
H, W = 24, 32
runner = CliRunner()


# ---------------------------------------------------------------------------------------------------
# a workspace with one exported round, and files written the way LabelMe writes them


def make_workspace(root: Path, names=NAMES, classes=CLASSES, ids=("s0-000001", "s0-000002")) -> Workspace:
    """A workspace (no generator needed to import) whose round 001 exported ``ids`` as W x H images."""
    config = WorkspaceConfig(classes=list(classes), keypoints=KeypointSettings(names=list(names)))
    root.mkdir(parents=True, exist_ok=True)
    (root / "dgan-al.toml").write_text(render_config(config.validate()))
    AnnotationStore(root / "annotations").save()
    annotate = root / "rounds" / "round_001" / "annotate"
    annotate.mkdir(parents=True)
    write_labels_file(annotate / "labels.txt", classes, names)
    items = []
    for n, id in enumerate(ids):
        pixels = np.random.default_rng(n).integers(0, 256, (H, W, 3), dtype=np.uint8)
        PIL.Image.fromarray(pixels).save(annotate / f"{id}.png")
        items.append({"id": id, "image": f"{id}.png", "image_sha256": sha256_bytes((annotate / f"{id}.png").read_bytes()),
                      "latent": {"seed": 0, "index": n + 1}, "z": [0.5, -0.25]})
    (annotate.parent / "selection.json").write_text(json.dumps({"items": items}))
    return Workspace.find(root)


def shape(label, points, shape_type="point", flags=None) -> dict:
    """A shape as LabelMe's app hands it to ``LabelFile.save`` (its ``format_shape``)."""
    return {"label": label, "points": [list(p) for p in points], "group_id": None, "description": "",
            "shape_type": shape_type, "flags": flags or {}, "mask": None}


SKIN = shape("skin", [(2, 2), (20, 3), (18, 18), (3, 15)], "polygon")


def labelme_save(ws: Workspace, id: str, shapes, *, keypoints_flag=None, folder: Path | None = None) -> Path:
    """Save ``<id>.json`` with LabelMe's own writer, ticked done (and ``keypoints`` when given)."""
    folder = folder or ws.round_dir(1) / "annotate"
    flags = {"done": True, "unrealistic": False}
    if keypoints_flag is not None:
        flags["keypoints"] = keypoints_flag
    path = folder / f"{id}.json"
    LabelFile().save(str(path), shapes=list(shapes), image_path=f"{id}.png", image_height=H, image_width=W,
                     flags=flags)
    return path


def refused(ws: Workspace) -> str:
    """The one-line refusal of an import, after checking that it changed nothing."""
    before = {p: p.read_bytes() for p in sorted(ws.root.rglob("*")) if p.is_file()}
    with pytest.raises(UserError) as err:
        import_annotations(ws, AnnotationStore(ws.annotations_dir))
    assert {p: p.read_bytes() for p in sorted(ws.root.rglob("*")) if p.is_file()} == before
    return str(err.value)


# ---------------------------------------------------------------------------------------------------
# the import


def test_ticked_file_records_every_name_with_its_visibility(tmp_path):
    ws = make_workspace(tmp_path)
    path = labelme_save(ws, "s0-000001", [SKIN, shape("nose_tip", [(10.5, 12)]),
                                          shape("left_eye", [(7, 6)], flags={"occluded": True})], keypoints_flag=True)
    report = import_annotations(ws, AnnotationStore(ws.annotations_dir))
    assert report.imported == ["s0-000001"]
    store = AnnotationStore(ws.annotations_dir)  # as read back from index.json
    assert store.records["s0-000001"].keypoints == {
        "left_eye": [7, 6, 1], "right_eye": [0, 0, 0], "nose_tip": [10.5, 12, 2]}
    # the points paint nothing: the mask is the polygon's alone
    assert np.array_equal(store.mask("s0-000001"), rasterize([SKIN], H, W, CLASSES))
    assert store.json_path("s0-000001").read_bytes() == path.read_bytes()


def test_not_ticked_trains_the_parts_only_and_ticked_without_points_means_none_visible(tmp_path):
    ws = make_workspace(tmp_path)
    labelme_save(ws, "s0-000001", [SKIN])  # no keypoints flag at all: an older file
    labelme_save(ws, "s0-000002", [SKIN], keypoints_flag=True)  # annotated: no keypoint is visible
    import_annotations(ws, AnnotationStore(ws.annotations_dir))
    records = json.loads((ws.annotations_dir / "index.json").read_text())["annotations"]
    assert "keypoints" not in records["s0-000001"]
    assert records["s0-000002"]["keypoints"] == {name: [0, 0, 0] for name in NAMES}


def test_points_placed_without_the_keypoints_flag_are_refused(tmp_path):
    ws = make_workspace(tmp_path)
    labelme_save(ws, "s0-000001", [SKIN, shape("nose_tip", [(10, 12)])], keypoints_flag=False)
    message = refused(ws)
    assert "s0-000001.json" in message and "1 keypoint(s) placed, but the image flag 'keypoints' is not ticked" \
        in message and "tick 'keypoints'" in message and "\n" not in message


@pytest.mark.parametrize("shapes, expected", [
    ([shape("nose_tip", [(10, 12)]), shape("nose_tip", [(11, 12)])],
     "keypoint 'nose_tip' is placed 2 times (shapes 0, 1); an image has each keypoint at most once"),
    ([shape("nose_tip", [(W + 1, 12)])], f"shape 0 ('nose_tip'): the keypoint lies at [{W + 1}, 12], outside the "
                                         f"{W}x{H} image"),
    ([shape("nose_tip", [(5, -0.75)])], "outside the"),
    ([shape("nose_tp", [(10, 12)])], "shape 0: unknown label 'nose_tp' (closest known label: 'nose_tip')"),
    ([shape("left_eyes", [(10, 12)])], "closest known label: 'left_eye'"),
    ([shape("skn", [(2, 2), (20, 3), (18, 18)], "polygon")], "unknown label 'skn' (closest known label: 'skin')"),
    ([shape("bottle", [(10, 12)])], "unknown label 'bottle' (neither a class nor a keypoint of this workspace)"),
    ([shape("eye", [(10, 12)])], "shape 0 ('eye'): the class label 'eye' is on a point: in this workspace a point "
                                 "is a keypoint (left_eye, right_eye, nose_tip)"),
    ([shape("_background_", [(10, 12)])], "the class label '_background_' is on a point"),
    ([shape("nose_tip", [(2, 2), (20, 3), (18, 18)], "polygon")],
     "shape 0 ('nose_tip'): the keypoint label 'nose_tip' is on a polygon: a keypoint is a point shape"),
    ([shape("left_eye", [(2, 2), (6, 6)], "circle")], "the keypoint label 'left_eye' is on a circle"),
])
def test_strict_import_refuses_with_the_file_the_shape_and_the_fix(tmp_path, shapes, expected):
    ws = make_workspace(tmp_path)
    labelme_save(ws, "s0-000001", shapes, keypoints_flag=True)
    message = refused(ws)
    assert expected in message, message
    assert "rounds/round_001/annotate/s0-000001.json" in message and "nothing was imported" in message
    assert "fix the file in LabelMe" in message and "\n" not in message


def test_a_keypoint_on_the_image_edge_is_inside(tmp_path):
    """LabelMe keeps vertices within [0, W] x [0, H]; half a pixel more on each side is accepted."""
    ws = make_workspace(tmp_path)
    labelme_save(ws, "s0-000001", [shape("left_eye", [(0, 0)]), shape("right_eye", [(W, H)]),
                                   shape("nose_tip", [(-0.5, H + 0.5)])], keypoints_flag=True)
    import_annotations(ws, AnnotationStore(ws.annotations_dir))
    assert AnnotationStore(ws.annotations_dir).records["s0-000001"].keypoints == {
        "left_eye": [0, 0, 2], "right_eye": [W, H, 2], "nose_tip": [-0.5, H + 0.5, 2]}


def test_an_edited_annotation_gains_points_and_is_reimported_with_history(tmp_path):
    ws = make_workspace(tmp_path)
    labelme_save(ws, "s0-000001", [SKIN])
    import_annotations(ws, AnnotationStore(ws.annotations_dir))
    assert AnnotationStore(ws.annotations_dir).records["s0-000001"].keypoints is None
    first = (ws.annotations_dir / "s0-000001.json").read_bytes()
    # the person opens annotations/s0-000001.json in LabelMe, places a point and ticks keypoints
    edited = labelme_save(ws, "s0-000001", [SKIN, shape("right_eye", [(20, 7)])], keypoints_flag=True,
                          folder=ws.annotations_dir)
    edited_bytes = edited.read_bytes()
    report = import_annotations(ws, AnnotationStore(ws.annotations_dir))
    assert report.reimported == ["s0-000001"] and not report.imported
    record = AnnotationStore(ws.annotations_dir).records["s0-000001"]
    assert record.version == 2 and record.keypoints == {"left_eye": [0, 0, 0], "right_eye": [20, 7, 2],
                                                        "nose_tip": [0, 0, 0]}
    history = ws.annotations_dir / "history" / "s0-000001"
    assert (history / "v1.json").read_bytes() == first and (history / "v2.json").read_bytes() == edited_bytes
    assert edited.read_bytes() == edited_bytes  # the person's file is never rewritten
    assert not import_annotations(ws, AnnotationStore(ws.annotations_dir)).changed  # nothing new: nothing changes


def test_remove_keeps_the_keypoints_with_the_record_and_adds_no_key_without(tmp_path):
    ws = make_workspace(tmp_path)
    labelme_save(ws, "s0-000001", [SKIN, shape("nose_tip", [(10, 12)])], keypoints_flag=True)
    labelme_save(ws, "s0-000002", [SKIN])
    import_annotations(ws, AnnotationStore(ws.annotations_dir))
    for id in ("s0-000001", "s0-000002"):
        AnnotationStore(ws.annotations_dir).remove(id)
    removed = json.loads((ws.annotations_dir / "index.json").read_text())["removed"]
    assert removed["s0-000001"]["keypoints"]["nose_tip"] == [10, 12, 2] and "keypoints" not in removed["s0-000002"]


def test_without_keypoint_names_points_are_discs_and_the_flag_means_nothing(tmp_path):
    """A workspace without [keypoints] names imports as it always did: a point is a disc of its class."""
    ws = make_workspace(tmp_path, names=[])
    eye = shape("eye", [(10, 12)])
    labelme_save(ws, "s0-000001", [SKIN, eye], keypoints_flag=True)
    import_annotations(ws, AnnotationStore(ws.annotations_dir))
    store = AnnotationStore(ws.annotations_dir)
    mask = store.mask("s0-000001")
    assert np.array_equal(mask, rasterize([SKIN, eye], H, W, CLASSES)) and (mask == 2).sum() > 20
    assert "keypoints" not in json.loads(store.index_path.read_text())["annotations"]["s0-000001"]
    labelme_save(ws, "s0-000002", [shape("nose_tip", [(10, 12)])])
    assert "unknown label 'nose_tip' (not a class of this workspace)" in refused(ws)


def _round_from_the_seed(root: Path, seed: Path) -> None:
    """A seed folder's annotations put back where they were imported from (the round folders of the layout
    they were exported in: beside labels.txt, or in the round's annotate/), with each round's selection.json
    rebuilt from the index."""
    index = json.loads((seed / "index.json").read_text())
    items: dict[Path, list] = {}
    for id, record in index["annotations"].items():
        source = root / record["source"]
        source.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(seed / f"{id}.json", source)
        shutil.copyfile(seed / f"{id}.png", source.with_suffix(".png"))
        items.setdefault(source.parent, []).append({"id": id, "image": f"{id}.png", "latent": record["latent"],
                                                    "z": record["z"], "image_sha256": record["image_sha256"]})
    for folder, listed in items.items():
        (folder / "labels.txt").write_text("__ignore__\n")
        round_folder = folder.parent if folder.name == "annotate" else folder
        (round_folder / "selection.json").write_text(json.dumps({"items": listed}))


def _import_seed(tmp_path: Path, seed: Path, names: list[str], skeleton: list | None = None) -> dict:
    """Import ``seed``'s files afresh into a workspace with the repository's settings and these keypoint
    names; checks masks and index records against the seed's own (only the import time may differ)."""
    config = load_config(REPO / "dgan-al.toml")
    config.keypoints.names = names
    config.keypoints.skeleton = skeleton or []
    (tmp_path / "dgan-al.toml").write_text(render_config(config.validate()))
    _round_from_the_seed(tmp_path, seed)
    ws = Workspace.find(tmp_path)
    report = import_annotations(ws, AnnotationStore(ws.annotations_dir))
    shipped = json.loads((seed / "index.json").read_text())["annotations"]
    assert sorted(report.imported) == sorted(shipped)
    for id in shipped:
        assert (ws.annotations_dir / "masks" / f"{id}.png").read_bytes() == (seed / "masks" / f"{id}.png").read_bytes()

    def without_times(text: str) -> str:
        return re.sub(r'"imported_at": "[^"]*"', "", text)

    ours = json.loads((ws.annotations_dir / "index.json").read_text())["annotations"]
    assert without_times(json.dumps(ours, indent=2)) == without_times(json.dumps(shipped, indent=2))
    return ours


@pytest.mark.parametrize("names", [[], ["nose_tip", "chin"]])
def test_the_seed_annotations_from_before_keypoints_import_as_before(tmp_path, names):
    """The seed set shipped before keypoints (kept in tests/data): a fresh import gives byte-identical masks
    and the same index records, with or without keypoint names (old files: parts only, no keypoints)."""
    records = _import_seed(tmp_path, OLD_SEED, names)
    assert all("keypoints" not in record for record in records.values())


def test_the_shipped_seed_annotations_import_with_their_keypoints(tmp_path):
    """Today's seed set, made with toy-faces' keypoints through the loop: re-imported with the repository's
    settings it gives the shipped masks and records, keypoints included (every name of every image)."""
    config = load_config(REPO / "dgan-al.toml")
    records = _import_seed(tmp_path, REPO / "annotations", config.keypoints.names, config.keypoints.skeleton)
    assert len(records) == 7
    for record in records.values():
        assert sorted(record["keypoints"]) == sorted(config.keypoints.names)
        assert any(v == 2 for _, _, v in record["keypoints"].values())


def test_the_seed_index_and_masks_stay_byte_identical_through_a_mask_rebuild(tmp_path):
    """The shipped workspace, its derived masks deleted: the import rebuilds them and writes index.json
    again, byte for byte as shipped."""
    shutil.copyfile(REPO / "dgan-al.toml", tmp_path / "dgan-al.toml")
    shutil.copytree(REPO / "annotations", tmp_path / "annotations")
    shutil.rmtree(tmp_path / "annotations" / "masks")
    ws = Workspace.find(tmp_path)
    report = import_annotations(ws, AnnotationStore(ws.annotations_dir))
    assert sorted(report.masks_rebuilt) == sorted(json.loads((REPO / "annotations" / "index.json").read_text())
                                                  ["annotations"])
    for path in sorted((REPO / "annotations").rglob("*")):
        if path.is_file():
            assert (tmp_path / path.relative_to(REPO)).read_bytes() == path.read_bytes(), path


# ---------------------------------------------------------------------------------------------------
# status


def test_status_counts_keypoints_per_name_also_in_json(tmp_path):
    ws = make_workspace(tmp_path)
    labelme_save(ws, "s0-000001", [SKIN, shape("nose_tip", [(10, 12)]),
                                   shape("left_eye", [(7, 6)], flags={"occluded": True})], keypoints_flag=True)
    labelme_save(ws, "s0-000002", [SKIN, shape("nose_tip", [(11, 12)])], keypoints_flag=True)
    import_annotations(ws, AnnotationStore(ws.annotations_dir))
    expected = {"left_eye": {"images": 1, "occluded": 1, "annotated": 2},
                "right_eye": {"images": 0, "occluded": 0, "annotated": 2},
                "nose_tip": {"images": 2, "occluded": 0, "annotated": 2}}
    assert workspace_status(ws).to_json()["keypoints"] == expected
    result = runner.invoke(app, ["status", "--json", "-w", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["keypoints"] == expected and list(data["keypoints"]) == NAMES
    assert data["classes"]["skin"]["images"] == 2
    shown = runner.invoke(app, ["status", "-w", str(tmp_path)], env={"COLUMNS": "80"})
    assert "keypoints per name" in shown.output and "right_eye" in shown.output


def test_status_without_keypoints_has_no_keypoints_key(tmp_path):
    ws = make_workspace(tmp_path, names=[])
    labelme_save(ws, "s0-000001", [SKIN])
    import_annotations(ws, AnnotationStore(ws.annotations_dir))
    assert "keypoints" not in workspace_status(ws).to_json()


def test_status_shows_a_file_with_a_keypoint_problem(tmp_path):
    ws = make_workspace(tmp_path)
    labelme_save(ws, "s0-000001", [shape("nose_tip", [(10, 12)])], keypoints_flag=False)
    (files,) = [r.files for r in workspace_status(ws).rounds]
    assert files[0].state == "problem" and "is not ticked" in files[0].problem


# ---------------------------------------------------------------------------------------------------
# settings, init, LabelMe


def write_config(tmp_path: Path, classes=CLASSES, **keypoints) -> Path:
    text = render_config(WorkspaceConfig(classes=list(classes), keypoints=KeypointSettings(names=list(NAMES))))
    head, _, _ = text.partition("[keypoints]")
    body = "".join(f"{key} = {value}\n" for key, value in keypoints.items())
    path = tmp_path / "dgan-al.toml"
    path.write_text(f"{head}[keypoints]\n{body}")
    return path


def test_keypoint_settings_are_written_with_comments_and_read_back(tmp_path):
    config = WorkspaceConfig(classes=CLASSES, keypoints=KeypointSettings(
        names=NAMES, sigma=1.5, skeleton=[["left_eye", "nose_tip"], ["right_eye", "nose_tip"]],
        prefill_confidence=0.7, score=True))
    path = tmp_path / "dgan-al.toml"
    path.write_text(render_config(config))
    assert load_config(path) == config
    text = path.read_text()
    for key in ("names", "sigma", "skeleton", "prefill_confidence", "score"):
        assert re.search(rf"^{key} = .*  # \w", text, re.M), key
    assert 'skeleton = [["left_eye", "nose_tip"], ["right_eye", "nose_tip"]]' in text


def test_a_keypoint_only_workspace_is_accepted_and_no_keypoints_needs_a_part(tmp_path):
    assert load_config(write_config(tmp_path, ["background"], names='["front_left_wheel"]')).classes == ["background"]
    with pytest.raises(UserError, match="need the background and at least one part class"):
        load_config(write_config(tmp_path, ["background"], names="[]"))


@pytest.mark.parametrize("settings, expected", [
    ({"names": '["eye"]'}, "keypoints.names: 'eye' is already the label 'eye'"),
    ({"names": '["Skin"]'}, "keypoints.names: 'Skin' is already the label 'skin'"),
    ({"names": '["background"]'}, "'background' is already the label 'background'"),
    ({"names": '["_background_"]'}, "is not a keypoint name"),
    ({"names": '["__ignore__"]'}, "is not a keypoint name"),
    ({"names": '["nose_tip", "nose_tip"]'}, "keypoints.names: 'nose_tip' is listed twice"),
    ({"names": '["left eye"]'}, "'left eye' is not a keypoint name (a letter, then letters, digits or _"),
    ({"names": '"nose_tip"'}, "keypoints.names = 'nose_tip' should be of type list"),
    ({"names": '["nose_tip"]', "skeleton": '[["nose_tip", "chin"]]'},
     "keypoints.skeleton: 'chin' in ['nose_tip', 'chin'] is not in keypoints.names"),
    ({"names": '["nose_tip"]', "skeleton": '[["nose_tip"]]'}, "is not a pair [a, b] of keypoint names"),
    ({"names": '["nose_tip"]', "skeleton": '[["nose_tip", "nose_tip"]]'}, "joins a keypoint to itself"),
    ({"names": '["a", "b"]', "skeleton": '[["a", "b"], ["b", "a"]]'}, "keypoints.skeleton: ['b', 'a'] is listed twice"),
    ({"names": '["nose_tip"]', "skeleton": '[[1, 2]]'}, "keypoints.skeleton = [[1, 2]] should be of type list"),
    ({"skeleton": '[["nose_tip", "chin"]]'}, "'nose_tip' in ['nose_tip', 'chin'] is not in keypoints.names"),
    ({"sigma": "0"}, "keypoints.sigma = 0.0: must be > 0"),
    ({"prefill_confidence": "1.5"}, "keypoints.prefill_confidence = 1.5: must be in [0, 1]"),
    ({"score": "1"}, "keypoints.score = 1 should be of type bool"),
    ({"sigmma": "2.0"}, "unknown setting 'keypoints.sigmma' (did you mean 'keypoints.sigma'?)"),
])
def test_keypoint_setting_mistakes_name_the_file_the_key_and_the_fix(tmp_path, settings, expected):
    path = write_config(tmp_path, **settings)
    with pytest.raises(UserError) as err:
        load_config(path)
    message = str(err.value)
    assert expected in message and str(path) in message and "dgan-al.toml)" in message and "\n" not in message


def test_init_keypoints_writes_the_settings_and_the_labels(tmp_path):
    result = runner.invoke(app, ["init", str(tmp_path / "ws"), "--pool-size", "4", "--keypoints",
                                 "left_eye, right_eye,nose_tip"])
    assert result.exit_code == 0, result.output
    config = load_config(tmp_path / "ws" / "dgan-al.toml")
    assert config.keypoints.names == NAMES and len(config.classes) == 15
    labels = (tmp_path / "ws" / "annotations" / "labels.txt").read_text().splitlines()
    assert labels[:2] == ["__ignore__", "_background_"] and labels[-3:] == NAMES and len(labels) == 2 + 14 + 3
    # the exported round 000 offers the keypoint names to LabelMe and the image flag to tick, unticked
    annotate = tmp_path / "ws" / "rounds" / "round_000" / "annotate"
    assert (annotate / "labels.txt").read_text().splitlines()[-3:] == NAMES
    assert json.loads((annotate / "mean.json").read_text())["flags"] == {"done": False, "unrealistic": False,
                                                                          "keypoints": False}
    printed = runner.invoke(app, ["annotate", str(tmp_path / "ws" / "rounds" / "round_000"), "--print-command"])
    assert printed.exit_code == 0 and "done,unrealistic,keypoints" in printed.output, printed.output
    # keypoint-only
    result = runner.invoke(app, ["init", str(tmp_path / "only"), "--pool-size", "4", "--classes", "background",
                                 "--keypoints", "nose_tip"])
    assert result.exit_code == 0, result.output
    assert load_config(tmp_path / "only" / "dgan-al.toml").classes == ["background"]
    plain = json.loads((tmp_path / "only" / "rounds" / "round_000" / "annotate" / "mean.json").read_text())
    assert plain["flags"]["keypoints"] is False
    # a bad name: one line, exit 2, nothing written
    result = runner.invoke(app, ["init", str(tmp_path / "bad"), "--pool-size", "4", "--keypoints", "eye,nose_tip"])
    assert result.exit_code == 2 and "keypoints.names: 'eye' is already the label 'eye'" in result.output
    assert not (tmp_path / "bad" / "dgan-al.toml").exists()


def test_labelme_reads_our_point_shapes_with_their_flags(tmp_path):
    """Files with keypoint points as dgan-al writes them open in LabelMe's own reader, flags kept."""
    image = np.zeros((H, W, 3), dtype=np.uint8)
    path = tmp_path / "a.json"
    write_labelme(path, image, [shape("nose_tip", [(10, 12)]), shape("left_eye", [(7.5, 6)], flags={"occluded": True})],
                  flags={"done": False, "unrealistic": False, "keypoints": False})
    loaded = LabelFile(str(path))
    assert [(s["label"], s["shape_type"], s["points"], s["flags"]) for s in loaded.shapes] == [
        ("nose_tip", "point", [[10, 12]], {}), ("left_eye", "point", [[7.5, 6]], {"occluded": True})]
    assert loaded.flags == {"done": False, "unrealistic": False, "keypoints": False}
    annotation = read_labelme(path, CLASSES, NAMES)
    assert annotation.shapes == [] and annotation.keypoint_table(NAMES) == {
        "left_eye": [7.5, 6, 1], "right_eye": [0, 0, 0], "nose_tip": [10, 12, 2]}


def test_labelme_is_started_with_the_keypoints_flag_and_occluded_on_keypoint_labels():
    install = LabelMeInstall(("labelme",), "6.3.1")
    plain = labelme_command("r", "r/labels.txt", install=install)
    argv = labelme_command("r", "r/labels.txt", install=install, keypoints=NAMES)
    assert plain[plain.index("--flags") + 1] == "done,unrealistic"
    assert argv[argv.index("--flags") + 1] == "done,unrealistic,keypoints"
    label_flags = json.loads(argv[argv.index("--label-flags") + 1])
    # LabelMe gives a shape the flags of every pattern its label re.match-es
    offered = {label: [f for pattern, flags in label_flags.items() if re.match(pattern, label) for f in flags]
               for label in [*NAMES, "eye", "nose_tip_2"]}
    assert offered == {"left_eye": ["check", "occluded"], "right_eye": ["check", "occluded"],
                       "nose_tip": ["check", "occluded"], "eye": ["check"], "nose_tip_2": ["check"]}
