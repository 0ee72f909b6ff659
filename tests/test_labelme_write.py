"""Export for annotation: the real LabelMe reads what we write, we read what the real LabelMe writes,
images carry no EXIF, the labels file follows LabelMe's convention, and writes are atomic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from dgan_al.labelme import (
    IGNORE,
    mask_to_polygons,
    rasterize,
    read_labelme,
    write_labelme,
    write_labels_file,
)

lm_utils = pytest.importorskip("labelme.utils", reason="the real LabelMe (pip install labelme) is the reference")
lm_file = pytest.importorskip("labelme._label_file", reason="the real LabelMe (pip install labelme) is the reference")
pytest.importorskip("loguru").logger.disable("labelme")

CLASSES = ["background", "skin", "eye", "mouth"]
H, W = 20, 28
BITMAP = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1]], dtype=bool)
SHAPES = [
    {"label": "skin", "points": [[1, 1], [26, 2], [25, 18], [2, 17]], "shape_type": "polygon"},
    {"label": "eye", "points": [[np.float32(6.5), np.float64(5.25)], [9, 8]], "shape_type": "rectangle",
     "group_id": 3, "description": "left", "flags": {"occluded": True}},  # fmt: skip
    {"label": "mouth", "points": [[12, 12], [14, 14]], "shape_type": "mask", "mask": BITMAP, "score": 0.9},
    {"label": "__ignore__", "points": [[20, 4]], "shape_type": "point"},
]
EXTRA = {"latent_id": 77, "round": 1, "scores": {"js": 0.125, "rank": 3}}


def pixels() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)


def labelme_mask(json_path: Path, height: int, width: int) -> np.ndarray:
    values = {**{c: i for i, c in enumerate(CLASSES)}, "_background_": 0, "__ignore__": -1}
    cls, _ = lm_utils.shapes_to_label((height, width), lm_file.read_label_file(str(json_path)).shapes, values)
    return np.where(cls == -1, IGNORE, cls).astype(np.uint8)


def test_labelme_reads_what_we_write(tmp_path):
    json_path = tmp_path / "img_0007.json"
    png = write_labelme(json_path, pixels(), SHAPES, extra=EXTRA)
    assert png == tmp_path / "img_0007.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img_0007.json", "img_0007.png"]  # no temp files

    label_file = lm_file.LabelFile(str(json_path))  # the real reader: no error
    assert label_file.image_path == "img_0007.png"
    assert label_file.image_data == png.read_bytes()
    assert label_file.flags == {"done": False, "unrealistic": False}
    assert label_file.other_data == EXTRA
    assert [s["label"] for s in label_file.shapes] == [s["label"] for s in SHAPES]
    assert [s["shape_type"] for s in label_file.shapes] == [s["shape_type"] for s in SHAPES]
    assert label_file.shapes[1]["points"] == [[6.5, 5.25], [9, 8]]
    assert (label_file.shapes[1]["group_id"], label_file.shapes[1]["description"]) == (3, "left")
    assert label_file.shapes[1]["flags"] == {"occluded": True}
    np.testing.assert_array_equal(label_file.shapes[2]["mask"], BITMAP)
    assert label_file.shapes[2]["other_data"] == {"score": 0.9}

    raw = json.loads(json_path.read_text())
    assert raw["imageData"] is None and (raw["imageHeight"], raw["imageWidth"]) == (H, W)
    assert set(raw["shapes"][0]) == {"label", "points", "group_id", "description", "shape_type", "flags", "mask"}
    np.testing.assert_array_equal(
        rasterize(read_labelme(json_path, CLASSES), H, W, CLASSES), labelme_mask(json_path, H, W)
    )


def test_png_has_the_pixels_and_no_exif(tmp_path):
    png = write_labelme(tmp_path / "a.json", pixels(), [])
    with PIL.Image.open(png) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        assert "exif" not in image.info and not image.getexif()
        np.testing.assert_array_equal(np.asarray(image), pixels())


def test_we_read_what_labelme_writes(tmp_path):
    """A file saved by LabelMe's own writer (as its GUI saves: float points, encoded masks, its
    version, our extra keys carried through, the annotator's flags) reads back to LabelMe's mask."""
    PIL.Image.fromarray(pixels()).save(tmp_path / "img_0001.png")
    shapes = [
        {"label": "skin", "points": [(1.0, 1.0), (26.0, 2.0), (25.5, 18.5), (2.0, 17.0)], "group_id": None,
         "description": "", "shape_type": "polygon", "flags": {}, "mask": None},
        {"label": "eye", "points": [(10.0, 10.0), (12.0, 10.0)], "group_id": 1, "description": "",
         "shape_type": "circle", "flags": {}, "mask": None},
        {"label": "mouth", "points": [(3.0, 3.0), (5.0, 5.0)], "group_id": None, "description": "",
         "shape_type": "mask", "flags": {}, "mask": lm_utils.img_arr_to_b64(BITMAP.astype(np.uint8))},
        {"label": "mouth", "points": [(14.0, 15.0), (20.0, 15.0), (22.0, 13.0)], "group_id": None,
         "description": "", "shape_type": "linestrip", "flags": {}, "mask": None},
    ]  # fmt: skip
    json_path = tmp_path / "img_0001.json"
    lm_file.LabelFile().save(
        str(json_path), shapes=shapes, image_path="img_0001.png", image_height=H, image_width=W,
        other_data=EXTRA, flags={"done": True, "unrealistic": False},
    )  # fmt: skip

    annotation = read_labelme(json_path, CLASSES)
    assert annotation.done and not annotation.unrealistic
    assert annotation.version == lm_file.__version__
    assert annotation.extra == EXTRA
    mask = rasterize(annotation, H, W, CLASSES)
    np.testing.assert_array_equal(mask, labelme_mask(json_path, H, W))
    assert set(np.unique(mask)) == {0, 1, 2, 3}


def test_pre_filled_polygons_survive_labelme(tmp_path):
    """mask -> our polygons -> our file -> LabelMe's reader and rasteriser: the same mask as ours."""
    truth = np.zeros((H, W), np.uint8)
    truth[2:18, 3:25] = 1
    truth[5:9, 6:12] = 2
    truth[12:15, 8:20] = 3
    json_path = tmp_path / "pre.json"
    write_labelme(json_path, pixels(), mask_to_polygons(truth, CLASSES))
    ours = rasterize(read_labelme(json_path, CLASSES), H, W, CLASSES)
    np.testing.assert_array_equal(ours, labelme_mask(json_path, H, W))
    assert np.mean(ours == truth) > 0.95


def test_flags_and_extra(tmp_path):
    json_path = tmp_path / "a.json"
    write_labelme(json_path, pixels(), [], flags={"done": True, "unrealistic": False}, extra={"latent_id": 5})
    annotation = read_labelme(json_path, CLASSES)
    assert annotation.done and annotation.extra == {"latent_id": 5}


def test_writing_is_deterministic_and_keeps_int_coordinates(tmp_path):
    write_labelme(tmp_path / "a.json", pixels(), SHAPES, extra=EXTRA)
    write_labelme(tmp_path / "b.json", pixels(), SHAPES, extra=EXTRA)
    a, b = (tmp_path / "a.json").read_text(), (tmp_path / "b.json").read_text()
    assert a.replace("a.png", "b.png") == b
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    raw = json.loads(a)
    assert raw["shapes"][0]["points"][0] == [1, 1] and isinstance(raw["shapes"][0]["points"][0][0], int)


def test_image_none_keeps_the_exported_png(tmp_path):
    json_path = tmp_path / "a.json"
    png = write_labelme(json_path, pixels(), [])
    before = png.read_bytes()
    write_labelme(json_path, None, SHAPES[:1], flags={"done": True, "unrealistic": False})
    assert png.read_bytes() == before
    annotation = read_labelme(json_path, CLASSES)
    assert annotation.done and (annotation.height, annotation.width) == (H, W) and len(annotation.shapes) == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"extra": {"imagePath": "x.png"}}, "LabelMe's own keys"),
        ({"image": np.zeros((H, W), np.uint8)}, r"uint8 \[H, W, 3\]"),
        ({"image": np.zeros((H, W, 3), np.float32)}, r"uint8 \[H, W, 3\]"),
        ({"shapes": [{"label": "eye", "points": [[1, 1], [2, 2]], "shape_type": "points"}]}, "cannot be rasterised"),
        ({"shapes": [{"label": "eye", "points": [[1, 1], [2, float("nan")], [3, 1]]}]}, "non-finite"),
        ({"shapes": [{"label": "eye", "points": [[1, 1], [3, 3]], "shape_type": "mask", "mask": BITMAP[:2]}]},
         "does not fit"),
        ({"flags": {"done": 1}}, "flags must map names to bools"),
    ],
)
def test_write_refuses_what_labelme_could_not_use(tmp_path, kwargs, message):
    arguments = {"image": pixels(), "shapes": [], **kwargs}
    with pytest.raises(ValueError, match=message):
        write_labelme(tmp_path / "a.json", **arguments)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_failed_write_leaves_the_old_files_whole(tmp_path):
    json_path = tmp_path / "a.json"
    write_labelme(json_path, pixels(), SHAPES, extra=EXTRA)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(TypeError):
        write_labelme(json_path, pixels() // 2, [], extra={"scores": {1, 2}})  # a set is no JSON
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_labels_file_follows_labelme_convention(tmp_path):
    path = write_labels_file(tmp_path / "labels.txt", CLASSES)
    assert path.read_text() == "__ignore__\n_background_\nskin\neye\nmouth\n"
    # LabelMe reads a labels file as its non-empty lines; every one of them is a label we accept
    offered = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    json_path = tmp_path / "a.json"
    shapes = [{"label": name, "points": [[1, 1], [3, 3]], "shape_type": "rectangle"} for name in offered]
    write_labelme(json_path, pixels(), shapes)
    assert [s.label for s in read_labelme(json_path, CLASSES).shapes] == offered


@pytest.mark.parametrize(
    "classes", [[], ["background", "eye", "eye"], ["background", "left,eye"], ["background", ""],
                ["background", "__ignore__"], ["background"] + [f"c{i}" for i in range(255)]],
)  # fmt: skip
def test_labels_file_refuses_class_lists_labelme_cannot_carry(tmp_path, classes):
    with pytest.raises(ValueError):
        write_labels_file(tmp_path / "labels.txt", classes)
    assert not (tmp_path / "labels.txt").exists()
