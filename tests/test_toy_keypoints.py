"""Issue 32 item 4: toy-faces keypoints from the scene geometry, their visible truth, the oracle placing
them (through the real import) with their clicks, and `toy real-test --keypoints`."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from dgan_al.cli import app
from dgan_al.generators.protocol import sample_latents
from dgan_al.generators.toy_faces import KEYPOINTS, load_toy_faces
from dgan_al.generators.toy_faces.classes import CLASS_ID, CLASSES
from dgan_al.generators.toy_faces.keypoints import latent_keypoints, scene_keypoints
from dgan_al.generators.toy_faces.render import render
from dgan_al.generators.toy_faces.scene import params_from_latent, with_coordinates
from dgan_al.generators.toy_faces.visible import without
from dgan_al.labelme import rasterize, read_labelme, write_labelme
from dgan_al.labelme.clicks import EDIT_MODEL, correction_clicks, edit_clicks, keypoint_clicks, scratch_clicks, trace
from dgan_al.workflows.importing import import_annotations
from dgan_al.workflows.init import init_workspace
from dgan_al.workflows.oracle import oracle_annotate
from dgan_al.workflows.toy_real_test import make_real_test
from dgan_al.workspace.annotations import AnnotationStore

runner = CliRunner()
K = {name: k for k, name in enumerate(KEYPOINTS)}
INSIDE = {"left_eye": "eye", "right_eye": "eye", "left_eyebrow": "eyebrow", "right_eyebrow": "eyebrow",
          "nose_tip": "nose", "left_ear": "ear", "right_ear": "ear"}
SUN_GLASSES, FULL_BEARD, TURNED_RIGHT = {27: 2.2}, {29: 1.4}, {4: 2.5}  # normalised latent coordinates


def latents(n=6, seed=5, coordinates=None):
    """n toy-faces latents of stream ``seed``, with the normalised ``coordinates`` {index: value} set."""
    z = sample_latents(32, n, seed=seed).numpy()
    return with_coordinates(z, coordinates) if coordinates else z


# ---------------------------------------------------------------------------------------------------
# where the keypoints lie


def test_keypoints_lie_on_their_parts_in_the_renderer_mask():
    turned = [latents(4, seed=6, coordinates={4: 2.0}), latents(4, seed=7, coordinates={4: -2.0})]
    z = np.concatenate([latents(12), *turned])
    seen = 0
    for zi in z:
        scene = params_from_latent(zi)
        _, mask = render(scene)
        points = scene_keypoints(scene)
        for name, part in INSIDE.items():  # a point inside its part: the pixel it lies in carries the part
            x, y, v = points[K[name]]
            if v == 2:
                assert mask[int(round(y)), int(round(x))] == CLASS_ID[part], name
                seen += 1
        for name in ("mouth_left", "mouth_right"):  # the mouth line's ends: at the mouth's edge
            x, y, v = points[K[name]]
            rows, cols = np.nonzero(mask == CLASS_ID["mouth"])
            assert v == 2 and np.hypot(cols - x, rows - y).min() <= 1.6
        rows, cols = np.nonzero(mask == CLASS_ID["skin"])  # the chin: the face's lowest point (no beard over it)
        x, y, v = points[K["chin"]]
        assert v == 1 if params_from_latent(zi).beard else (abs(rows.max() - y) <= 1.5
                                                             and np.hypot(cols - x, rows - y).min() <= 1.0)
    assert seen >= 0.8 * len(INSIDE) * len(z)  # not vacuous: most points show


def test_left_and_right_are_the_subjects_and_a_symmetric_face_is_mirrored():
    points = latent_keypoints(latents(8), "renderer")
    for left, right in (("left_eye", "right_eye"), ("left_eyebrow", "right_eyebrow"), ("mouth_left", "mouth_right"),
                        ("left_ear", "right_ear")):  # the subject's left is on the image's right
        assert np.all(points[:, K[left], 0] > points[:, K[right], 0] + 5), left
    # centred, no roll, no yaw: each left point is its right point mirrored (x -> 127 - x in label pixels)
    points = latent_keypoints(latents(4, coordinates={0: 0.0, 3: 0.0, 4: 0.0}), "renderer")
    for left, right in (("left_eye", "right_eye"), ("left_eyebrow", "right_eyebrow"), ("mouth_left", "mouth_right"),
                        ("left_ear", "right_ear")):
        np.testing.assert_allclose(points[:, K[left], 0] + points[:, K[right], 0], 127.0, atol=1e-9)
        np.testing.assert_allclose(points[:, K[left], 1], points[:, K[right], 1], atol=1e-9)
    np.testing.assert_allclose(points[:, K["nose_tip"], 0], 63.5, atol=1e-9)
    np.testing.assert_allclose(points[:, K["chin"], 0], 63.5, atol=1e-9)


# ---------------------------------------------------------------------------------------------------
# visibility


def test_a_keypoint_hidden_by_a_drawn_part_is_not_visible():
    # sunglasses over the eyes: occluded (v = 1) in the renderer's truth ...
    z = latents(4, coordinates=SUN_GLASSES)
    assert all(params_from_latent(zi).glasses == "sun" for zi in z)
    renderer = latent_keypoints(z, "renderer")
    assert np.all(renderer[:, [K["left_eye"], K["right_eye"]], 2] == 1)
    # ... and in the visible truth when G draws them (here: G's image is the render itself), visible (2)
    # when G leaves them out (G's image is the render without glasses); the points do not move
    drawn = np.stack([render(params_from_latent(zi))[0] for zi in z])
    left_out = np.stack([render(without(params_from_latent(zi), ["glasses"]))[0] for zi in z])
    assert np.array_equal(latent_keypoints(z, "visible", drawn), renderer)
    visible = latent_keypoints(z, "visible", left_out)
    assert np.all(visible[:, [K["left_eye"], K["right_eye"]], 2] == 2)
    assert np.array_equal(visible[..., :2], renderer[..., :2])
    # a full beard over the chin: occluded
    z = latents(4, coordinates=FULL_BEARD)
    assert np.all(latent_keypoints(z, "renderer")[:, K["chin"], 2] == 1)
    # the head turned to the image's right: the subject's left ear is behind the face (0), the right shows
    points = latent_keypoints(latents(4, coordinates=TURNED_RIGHT), "renderer")
    assert np.all(points[:, K["left_ear"], 2] == 0) and np.all(points[:, K["right_ear"], 2] == 2)


def test_the_generator_exposes_the_names_and_checks_the_truth():
    gen = load_toy_faces()
    assert gen.keypoints == list(KEYPOINTS) and len(KEYPOINTS) == 10
    z = gen.mean_latent()[None]
    points = gen.oracle_keypoints(z, truth="renderer")
    assert points.shape == (1, 10, 3)
    assert np.array_equal(points, latent_keypoints(z.numpy(), "renderer"))
    with pytest.raises(ValueError, match="truth"):
        gen.oracle_keypoints(z, truth="painted")


# ---------------------------------------------------------------------------------------------------
# the click model


def test_keypoint_clicks_on_hand_made_cases():
    truth = {"a": (10, 10, 2), "b": (20, 5, 2), "c": (3, 3, 1)}
    assert keypoint_clicks({}, truth).clicks == 3  # from scratch: 1 per point
    same = keypoint_clicks({"a": (10, 10), "b": (20.5, 5.5), "c": (3, 3, 1)}, truth)
    assert same.clicks == 0 and same.kept == 3  # equal, or within T = 1 px
    moved = keypoint_clicks({"a": (15, 10), "b": (20, 5), "c": (3, 3, 1)}, truth)
    assert moved.clicks == 1 and moved.moved == 1  # one moved 5 px
    missing = keypoint_clicks({"a": (10, 10), "c": (3, 3, 1)}, truth)
    assert missing.clicks == 1 and missing.added == 1
    extra = keypoint_clicks({"a": (10, 10), "b": (20, 5), "c": (3, 3, 1), "d": (1, 1)}, truth)
    assert extra.clicks == 1 and extra.deleted == 1
    not_placed = keypoint_clicks({"a": (10, 10), "b": (20, 5), "c": (3, 3, 1), "d": (1, 1)}, {**truth, "d": (1, 1, 0)})
    assert not_placed.deleted == 1  # v = 0 in the truth: the pre-filled point goes
    flag = keypoint_clicks({"a": (10, 10), "b": (20, 5), "c": (3, 3)}, truth)
    assert flag.clicks == 1 and flag.flagged == 1  # right place, occluded flag missing
    assert keypoint_clicks({"a": (11.5, 10)}, {"a": (10, 10)}, tolerance=2.0).clicks == 0


# ---------------------------------------------------------------------------------------------------
# the oracle


def test_the_oracle_places_the_keypoints_and_they_import_with_their_clicks(tmp_path):
    names = ["left_eye", "right_eye", "nose_tip", "left_ear", "right_ear", "chin"]  # a subset, in its own order
    ws = init_workspace(tmp_path / "ws", "toy-faces", pool_size=20, keypoints=names).workspace
    gen = load_toy_faces()
    z = gen.mean_latent()[None]
    points = gen.oracle_keypoints(z)[0]  # the visible truth, as the oracle uses it
    expected = {n: [*points[K[n], :2], int(points[K[n], 2])] for n in names}
    placed = {n: p for n, p in expected.items() if p[2] > 0}
    assert 0 < len(placed) <= len(names)
    result = oracle_annotate(ws, 0, generator=gen)
    assert result.keypoint_clicks["mean"] == {"scratch": len(placed), "edit": len(placed)}
    path = ws.round_files(0).annotate / "mean.json"
    annotation = read_labelme(path, ws.config.classes, names)
    assert annotation.flags == {"done": True, "unrealistic": False, "keypoints": True}
    assert {s.label: [*s.points[0], 1 if s.flags["occluded"] else 2] for s in annotation.keypoints} == placed
    record = json.loads((ws.round_dir(0) / "clicks.json").read_text())
    item = record["items"]["mean"]
    truth = gen.oracle_mask(z)[0]
    assert item["scratch"] == scratch_clicks(truth, ws.config.classes)  # the part counts: points not counted
    assert item["keypoints"]["scratch"] == item["keypoints"]["edit"] == len(placed)
    assert record["keypoint_total"] == {"scratch": len(placed), "edit": len(placed)}
    # through the real import: every name recorded in index.json, [0, 0, 0] where not placed
    import_annotations(ws, AnnotationStore(ws.annotations_dir))
    store = AnnotationStore(ws.annotations_dir)
    assert store.records["mean"].keypoints == {n: placed.get(n, [0, 0, 0]) for n in names}
    assert '"left_eye"' in (ws.annotations_dir / "index.json").read_text()
    # the points paint nothing: the mask is the polygons' alone
    assert np.array_equal(store.mask("mean"), rasterize(annotation.shapes, 128, 128, ws.config.classes))


def test_the_oracle_counts_corrections_of_prefilled_points(tmp_path):
    names = ["left_eye", "right_eye", "nose_tip"]
    ws = init_workspace(tmp_path / "ws", "toy-faces", pool_size=20, keypoints=names).workspace
    gen = load_toy_faces()
    z = gen.mean_latent()[None]
    points = gen.oracle_keypoints(z)[0]
    assert np.all(points[[K["left_eye"], K["right_eye"], K["nose_tip"]], 2] == 2)
    truth = gen.oracle_mask(z)[0]
    path = ws.round_files(0).annotate / "mean.json"
    raw = json.loads(path.read_text())

    def point(name, dx=0.0):
        x, y, _ = points[K[name]]
        return {"label": name, "points": [[x + dx, y]], "group_id": None, "description": "",
                "shape_type": "point", "flags": {"occluded": False}, "mask": None}

    # the right polygons, left_eye exact, nose_tip 5 px off, right_eye missing: 2 clicks, the parts 0
    write_labelme(path, None, trace(truth, ws.config.classes) + [point("left_eye"), point("nose_tip", 5.0)],
                  flags={"done": False, "unrealistic": False, "keypoints": False}, extra={"dgan_al": raw["dgan_al"]})
    oracle_annotate(ws, 0, generator=gen)
    item = json.loads((ws.round_dir(0) / "clicks.json").read_text())["items"]["mean"]
    assert item["prefill"] == item["edit"] == 0
    assert item["prefilled_shapes"] == len(trace(truth, ws.config.classes))
    assert item["keypoints"] == {"scratch": 3, "edit": 2, "occluded": 0, "prefilled": 2, "moved": 1, "added": 1,
                                 "deleted": 0, "flagged": 0}


def test_the_oracle_without_keypoint_names_writes_clicks_json_as_before(tmp_path):
    ws = init_workspace(tmp_path / "ws", "toy-faces", pool_size=20).workspace
    gen = load_toy_faces()
    z = gen.mean_latent()[None]
    truth = gen.oracle_mask(z)[0]
    classes = ws.config.classes
    path = ws.round_files(0).annotate / "mean.json"
    raw = json.loads(path.read_text())
    prefill = trace(truth, classes)[1:]  # a pre-fill missing its first polygon
    write_labelme(path, None, prefill, extra={"dgan_al": raw["dgan_al"]})
    result = oracle_annotate(ws, 0, generator=gen)
    record = json.loads((ws.round_dir(0) / "clicks.json").read_text())
    correction, edit = correction_clicks(prefill, truth, classes), edit_clicks(prefill, truth, classes)
    scratch = scratch_clicks(truth, classes)
    assert set(record) == {"items", "model", "edit_model", "total"} and record["edit_model"] == EDIT_MODEL
    assert record["items"] == {"mean": {
        "scratch": scratch, "prefill": correction.clicks, "edit": edit.clicks, "prefilled_shapes": len(prefill),
        "deleted": correction.deleted, "added_vertices": correction.vertices,
        "edits": {"deleted": edit.deleted, "moved": edit.moved, "inserted": edit.inserted, "drawn": edit.drawn},
        "truth": "visible"}}
    assert record["total"] == {"scratch": scratch, "prefill": correction.clicks, "edit": edit.clicks}
    assert result.keypoint_clicks == {}
    written = json.loads(path.read_text())
    assert written["flags"] == {"done": True, "unrealistic": False}
    assert all(s["shape_type"] == "polygon" for s in written["shapes"])


def test_the_oracle_refuses_keypoint_names_toy_faces_does_not_have(tmp_path):
    ws = init_workspace(tmp_path / "ws", "toy-faces", pool_size=20, keypoints=["left_eye", "tail_tip"]).workspace
    result = runner.invoke(app, ["toy", "oracle", "0", "--workspace", str(ws.root)])
    assert result.exit_code == 2 and "tail_tip" in result.output and "left_eye" in result.output, result.output
    assert json.loads((ws.round_files(0).annotate / "mean.json").read_text())["flags"]["done"] is False


# ---------------------------------------------------------------------------------------------------
# toy real-test


def test_real_test_writes_the_renderers_keypoints_when_asked(tmp_path):
    result = runner.invoke(app, ["toy", "real-test", str(tmp_path / "kp"), "--n", "3", "--keypoints"])
    assert result.exit_code == 0, result.output
    z = sample_latents(32, 3, seed=3000).numpy()
    points = latent_keypoints(z, "renderer")
    assert (tmp_path / "kp" / "labels.txt").read_text().splitlines()[-10:] == list(KEYPOINTS)
    for i in range(3):
        annotation = read_labelme(tmp_path / "kp" / f"real_{i:04d}.json", list(CLASSES), list(KEYPOINTS))
        assert annotation.keypoints_ticked
        table = annotation.keypoint_table(list(KEYPOINTS))
        for name, k in K.items():
            x, y, v = points[i, k]
            assert table[name] == ([x, y, int(v)] if v > 0 else [0, 0, 0]), name
    # without the flag: no points, as before (a parts-only reader takes the files)
    make_real_test(tmp_path / "plain", n=2)
    for i in range(2):
        raw = json.loads((tmp_path / "plain" / f"real_{i:04d}.json").read_text())
        assert "keypoints" not in raw["flags"] and all(s["shape_type"] == "polygon" for s in raw["shapes"])
        read_labelme(tmp_path / "plain" / f"real_{i:04d}.json", list(CLASSES))
