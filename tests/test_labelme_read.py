"""Strict reading of LabelMe files: one test per validation error, every problem listed at once, EXIF
orientation as LabelMe applies it, and a fuzz test (random mutations only ever give our own error,
and what we accept the real LabelMe opens and rasterises the same)."""

from __future__ import annotations

import base64
import copy
import io
import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import PIL.Image
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dgan_al.errors import UserError
from dgan_al.labelme import (
    IGNORE,
    LabelMeError,
    closest_label,
    rasterize,
    read_image,
    read_labelme,
    write_labelme,
)


CLASSES = ["background", "skin", "eye", "mouth"]
H, W = 24, 32
BITMAP = np.array([[1, 0, 1], [0, 1, 1]], dtype=bool)
SHAPES = [
    {"label": "skin", "points": [[2, 2], [28, 3], [26, 20], [4, 21]], "shape_type": "polygon"},
    {"label": "eye", "points": [[5.5, 5.5], [11.25, 9.0]], "shape_type": "rectangle"},
    {"label": "eye", "points": [[20, 7], [22, 9]], "shape_type": "circle"},
    {"label": "mouth", "points": [[8, 16], [22, 17]], "shape_type": "line"},
    {"label": "mouth", "points": [[8, 18], [15, 19], [22, 18]], "shape_type": "linestrip"},
    {"label": "eye", "points": [[14, 12]], "shape_type": "point"},
    {"label": "skin", "points": [[1, 1], [4, 0], [5, 3], [2, 4]], "shape_type": "oriented_rectangle"},
    {"label": "mouth", "points": [[10, 10], [12, 11]], "shape_type": "mask", "mask": BITMAP, "score": 0.5},
    {"label": "__ignore__", "points": [[29, 20], [31, 23]], "shape_type": "rectangle"},
    {"label": "_background_", "points": [[3, 10], [4, 10], [3, 11]], "shape_type": "polygon"},
]
EXTRA = {"latent_id": 1234, "round": 2, "scores": {"js": 0.25}}


def image_pixels(height: int = H, width: int = W) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture()
def valid(tmp_path) -> Path:
    """A valid exported file with every shape type: round_001/img_0001.json + .png."""
    json_path = tmp_path / "round_001" / "img_0001.json"
    write_labelme(json_path, image_pixels(), SHAPES, extra=EXTRA)
    return json_path


def load(json_path: Path) -> dict:
    return json.loads(json_path.read_text())


def save(json_path: Path, raw: dict) -> None:
    json_path.write_text(json.dumps(raw))


def problems_of(json_path: Path) -> list[str]:
    with pytest.raises(LabelMeError) as caught:
        read_labelme(json_path, CLASSES)
    assert caught.value.path == json_path
    return caught.value.problems


@pytest.fixture(scope="module")
def lm():
    """The real LabelMe's reader and rasteriser, for the tests that compare with it."""
    reason = "the real LabelMe (pip install labelme) is the reference"
    modules = SimpleNamespace(
        utils=pytest.importorskip("labelme.utils", reason=reason),
        file=pytest.importorskip("labelme._label_file", reason=reason),
    )
    pytest.importorskip("loguru").logger.disable("labelme")  # LabelMe logs every image it loads
    return modules


def labelme_mask(lm, json_path: Path, height: int, width: int) -> np.ndarray:
    """The real LabelMe's reading and rasterisation of a file (its -1 for __ignore__ shown as IGNORE)."""
    values = {**{c: i for i, c in enumerate(CLASSES)}, "_background_": 0, "__ignore__": -1}
    data = lm.file.read_label_file(str(json_path))
    cls, _ = lm.utils.shapes_to_label((height, width), data.shapes, values)
    return np.where(cls == -1, IGNORE, cls).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------
# a valid file


def test_reads_every_field_of_a_valid_file(valid, lm):
    annotation = read_labelme(valid, CLASSES)
    assert (annotation.height, annotation.width) == (H, W)
    assert annotation.image_path == valid.with_suffix(".png").resolve()
    assert annotation.flags == {"done": False, "unrealistic": False}
    assert not annotation.done and not annotation.unrealistic
    assert annotation.extra == EXTRA
    assert annotation.raw == load(valid)
    assert [s.shape_type for s in annotation.shapes] == [s["shape_type"] for s in SHAPES]
    assert [s.label for s in annotation.shapes] == [s["label"] for s in SHAPES]
    assert annotation.shapes[1].points == [(5.5, 5.5), (11.25, 9.0)]
    np.testing.assert_array_equal(annotation.shapes[7].mask, BITMAP)
    assert annotation.shapes[7].extra == {"score": 0.5}
    assert annotation.orientation == 1 and annotation.image_data is None
    np.testing.assert_array_equal(read_image(annotation), image_pixels())
    np.testing.assert_array_equal(rasterize(annotation, H, W, CLASSES), labelme_mask(lm, valid, H, W))


def test_background_and_ignore_labels_are_known(valid):
    mask = rasterize(read_labelme(valid, CLASSES), H, W, CLASSES)
    assert mask[21, 30] == IGNORE  # the __ignore__ rectangle
    assert mask[10, 3] == 0  # the _background_ polygon over the skin


def test_embedded_image_data_is_measured(valid):
    raw = load(valid)
    buffer = io.BytesIO()
    PIL.Image.fromarray(image_pixels()).save(buffer, format="PNG")
    raw["imageData"] = base64.b64encode(buffer.getvalue()).decode()
    valid.with_suffix(".png").unlink()  # LabelMe uses the embedded image, not the file
    save(valid, raw)
    annotation = read_labelme(valid, CLASSES)
    assert annotation.image_data == buffer.getvalue()
    np.testing.assert_array_equal(read_image(annotation), image_pixels())


# ---------------------------------------------------------------------------------------------------
# one test per validation error


def set_key(key, value):
    def change(raw):
        raw[key] = value
    return change


def drop_key(key):
    def change(raw):
        del raw[key]
    return change


def set_shape(index, key, value):
    def change(raw):
        raw["shapes"][index][key] = value
    return change


def drop_shape_key(index, key):
    def change(raw):
        del raw["shapes"][index][key]
    return change


CASES = {
    "version not text": (set_key("version", 5), ["version must be text"]),
    "flags not an object": (set_key("flags", ["done"]), ["flags must be an object"]),
    "flag not a bool": (set_key("flags", {"done": "yes"}), ["flags values must be true or false"]),
    "imageHeight missing": (drop_key("imageHeight"), ["imageHeight is missing (the image's is 24)"]),
    "imageWidth not a number": (set_key("imageWidth", "32"), ["imageWidth must be a positive whole number"]),
    "imageWidth a float": (set_key("imageWidth", 32.0), ["imageWidth must be a positive whole number"]),
    "size mismatch": (set_key("imageHeight", 25), ["is 25x32 but the image img_0001.png is 24x32"]),
    "imageWidth missing": (drop_key("imageWidth"), ["imageWidth is missing (the image's is 32)"]),
    "imagePath missing": (drop_key("imagePath"), ["imagePath is missing"]),
    "imagePath empty": (set_key("imagePath", ""), ["imagePath must be a file name"]),
    "imagePath with a NUL": (set_key("imagePath", "img\x000001.png"), ["imagePath must be a file name"]),
    "imagePath not text": (set_key("imagePath", 7), ["imagePath must be a file name"]),
    "imagePath absolute": (set_key("imagePath", "/tmp/img_0001.png"), ["is absolute"]),
    "imagePath windows drive": (set_key("imagePath", "C:\\data\\img_0001.png"), ["is absolute"]),
    "imagePath up and back in": (set_key("imagePath", "../round_001/img_0001.png"), []),  # stays inside: fine
    "imagePath leaves folder": (set_key("imagePath", "../img_0001.png"), ["leaves this JSON's folder"]),
    "imagePath leaves folder, windows": (set_key("imagePath", "..\\img_0001.png"), ["leaves this JSON's folder"]),
    "image missing": (set_key("imagePath", "img_9999.png"), ["does not exist"]),
    "imageData missing": (drop_key("imageData"), ["imageData is missing"]),
    "imageData not base64": (set_key("imageData", "abc"), ["imageData is not base64"]),
    "imageData not an image": (set_key("imageData", "aGVsbG8gd29ybGQ="), ["the image in imageData cannot be read"]),
    "imageData wrong type": (set_key("imageData", 12), ["imageData must be null or base64"]),
    "shapes missing": (drop_key("shapes"), ["shapes is missing"]),
    "shapes not a list": (set_key("shapes", {"label": "eye"}), ["shapes must be a list"]),
    "shape not an object": (set_key("shapes", [["eye"]]), ["shape 0 must be an object"]),
    "label missing": (drop_shape_key(0, "label"), ["shape 0: has no label"]),
    "label not text": (set_shape(0, "label", 3), ["shape 0: label must be text"]),
    "unknown label": (
        set_shape(2, "label", "eys"), ["shape 2: unknown label 'eys' (closest known label: 'eye')"]),
    "unknown label, case": (
        set_shape(3, "label", "Mouth"), ["shape 3: unknown label 'Mouth' (closest known label: 'mouth')"]),
    "unknown label, trailing space": (
        set_shape(3, "label", "mouth "), ["shape 3: unknown label 'mouth ' (closest known label: 'mouth')"]),
    "unknown label, far from all": (
        set_shape(3, "label", "bottle"), ["shape 3: unknown label 'bottle' (not a class of this workspace)"]),
    "shape_type missing": (drop_shape_key(0, "shape_type"), ["shape 0 ('skin'): has no shape_type"]),
    "shape_type unknown": (set_shape(0, "shape_type", "polyline"), ["unknown shape_type 'polyline'"]),
    "points shape": (set_shape(0, "shape_type", "points"), ["shape_type 'points' has no area"]),
    "points missing": (drop_shape_key(0, "points"), ["shape 0 ('skin'): has no points"]),
    "points empty": (set_shape(0, "points", []), ["points must be a non-empty list"]),
    "point not a pair": (set_shape(0, "points", [[1, 2], [3, 4, 5], [6, 7]]), ["points must be [x, y] pairs"]),
    "point a bool": (set_shape(0, "points", [[1, 2], [True, 4], [6, 7]]), ["points must be [x, y] pairs"]),
    "point text": (set_shape(0, "points", [[1, 2], ["3", 4], [6, 7]]), ["points must be [x, y] pairs"]),
    "point NaN": (set_shape(0, "points", [[1, 2], [float("nan"), 4], [6, 7]]), ["1 points are not finite"]),
    "point infinite": (set_shape(0, "points", [[1, 2], [3, float("inf")], [6, 7]]), ["not finite"]),
    "point far outside": (set_shape(0, "points", [[1, 2], [3, 1e9], [6, 7]]), ["lie far outside the 32x24 image"]),
    "point huge int": (set_shape(0, "points", [[1, 2], [3, 10**400], [6, 7]]), ["lie far outside"]),
    "polygon of 2": (set_shape(0, "points", [[1, 2], [3, 4]]), ["a polygon takes at least 3 points, got 2"]),
    "rectangle of 3": (set_shape(1, "points", [[1, 2], [3, 4], [5, 6]]), ["a rectangle takes exactly 2 points"]),
    "circle of 1": (set_shape(2, "points", [[1, 2]]), ["a circle takes exactly 2 points"]),
    "line of 3": (set_shape(3, "points", [[1, 2], [3, 4], [5, 6]]), ["a line takes exactly 2 points"]),
    "linestrip of 1": (set_shape(4, "points", [[1, 2]]), ["a linestrip takes at least 2 points"]),
    "point of 2": (set_shape(5, "points", [[1, 2], [3, 4]]), ["a point takes exactly 1 points"]),
    "oriented_rectangle of 3": (set_shape(6, "points", [[1, 2], [3, 4], [5, 6]]), ["takes exactly 4 points"]),
    "group_id text": (set_shape(0, "group_id", "1"), ["group_id must be a whole number or null"]),
    "group_id bool": (set_shape(0, "group_id", True), ["group_id must be a whole number or null"]),
    "description not text": (set_shape(0, "description", 5), ["description must be text or null"]),
    "shape flags not bools": (set_shape(0, "flags", {"occluded": 1}), ["shape 0 ('skin'): flags values"]),
    "mask shape without bitmap": (set_shape(7, "mask", None), ["a mask shape needs its bitmap"]),
    "mask not text": (set_shape(7, "mask", [1, 0]), ["mask must be a base64 PNG or null"]),
    "mask not a PNG": (set_shape(7, "mask", "aGVsbG8gd29ybGQ="), ["mask is not a base64 PNG"]),
    "mask box outside": (set_shape(7, "points", [[30, 10], [32, 11]]), ["is not a box inside the 32x24 image"]),
    "mask box reversed": (set_shape(7, "points", [[12, 11], [10, 10]]), ["is not a box inside"]),
    "mask size mismatch": (set_shape(7, "points", [[10, 10], [13, 11]]), ["the mask bitmap is 2x3 but its box is 2x4"]),
    "mask not grayscale": (set_shape(7, "mask", None), []),  # replaced below by an RGB PNG
    "polygon with a broken mask": (set_shape(0, "mask", "!!"), ["shape 0 ('skin'): mask is not a base64 PNG"]),
}


def rgb_png_b64(height, width) -> str:
    buffer = io.BytesIO()
    PIL.Image.fromarray(np.ones((height, width, 3), np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


CASES["mask not grayscale"] = (set_shape(7, "mask", rgb_png_b64(2, 3)), ["must be single-channel"])


TOY_CLASSES = ["background", "skin", "hair", "eye", "eyebrow", "nose", "mouth", "teeth", "ear", "neck", "clothes",
               "glasses", "hat", "beard", "earring"]


@pytest.mark.parametrize("typed, suggested", [
    ("Hair", "hair"), ("hair ", "hair"), (" HAIR", "hair"), ("eys", "eye"), ("eyebrwo", "eyebrow"),
    ("glass", "glasses"), ("bear", "beard"), ("bottle", None), ("shirt", None), ("lips", None), ("x", None),
])  # fmt: skip
def test_a_suggestion_only_for_a_label_really_close(typed, suggested):
    assert closest_label(typed, TOY_CLASSES) == suggested


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_validation_error(valid, case):
    change, expected = CASES[case]
    raw = load(valid)
    change(raw)
    save(valid, raw)
    if not expected:  # a change that keeps the file valid
        read_labelme(valid, CLASSES)
        return
    problems = problems_of(valid)
    message = str(LabelMeError(valid, problems))
    for text in expected:
        assert any(text in p for p in problems), (text, problems)
        assert text in message
    assert str(valid) in message


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "not valid JSON"),
        (b"{\"shapes\": [", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "one JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_files_that_are_no_json_object(tmp_path, content, expected):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    assert any(expected in p for p in problems_of(path))


def test_missing_file(tmp_path):
    assert problems_of(tmp_path / "nothing.json") == ["file not found"]


def test_a_folder_where_the_file_should_be(tmp_path):
    folder = tmp_path / "round_001" / "img_0001.json"
    folder.mkdir(parents=True)
    assert any(p.startswith("cannot read the file") for p in problems_of(folder))


def test_image_path_in_a_symlink_loop(valid):
    loop = valid.parent / "loop.png"
    loop.symlink_to(loop)
    raw = load(valid)
    raw["imagePath"] = "loop.png"
    save(valid, raw)
    problems = problems_of(valid)
    # Python 3.11 raises on the loop ("cannot be resolved"); 3.13 resolves it to a file that is not there
    assert any("cannot be resolved" in p or "does not exist" in p for p in problems), problems


def test_image_changed_after_the_file_was_read(valid):
    annotation = read_labelme(valid, CLASSES)
    valid.with_suffix(".png").write_bytes(b"no longer a png")
    with pytest.raises(LabelMeError, match="cannot read the image") as caught:
        read_image(annotation)
    assert caught.value.path == valid
    PIL.Image.fromarray(image_pixels(H + 1, W)).save(valid.with_suffix(".png"))
    with pytest.raises(LabelMeError, match="changed size since it was read"):
        read_image(annotation)


def test_unreadable_image_and_unshowable_mode(valid):
    valid.with_suffix(".png").write_bytes(b"not a png")
    assert any("cannot be read as an image" in p for p in problems_of(valid))
    PIL.Image.new("CMYK", (W, H)).save(valid.with_suffix(".png"), format="JPEG")
    raw = load(valid)
    raw["imagePath"] = "img_0001.png"
    save(valid, raw)
    assert any("pixel mode CMYK" in p for p in problems_of(valid))


@pytest.mark.parametrize("image_path", ["sub/../img_0001.png", "sub\\..\\img_0001.png", "a/b/../../img_0001.png"])
def test_an_image_path_labelme_cannot_open_as_written_is_refused_with_the_plain_path(valid, lm, image_path):
    raw = load(valid)
    raw["imagePath"] = image_path
    save(valid, raw)
    with pytest.raises(lm.file.LabelFileReadError):  # the real LabelMe fails on it: no folder sub/
        lm.file.read_label_file(str(valid))
    (problem,) = problems_of(valid)
    assert "goes through '..' after a folder that does not exist" in problem
    assert problem.endswith("set it to 'img_0001.png'")
    (valid.parent / image_path.replace("\\", "/").split("/")[0]).mkdir()
    if image_path.startswith("a/"):
        (valid.parent / "a" / "b").mkdir()
    lm.file.read_label_file(str(valid))  # once the folders exist LabelMe opens it, and so do we
    assert read_labelme(valid, CLASSES).image_path == valid.with_suffix(".png")


def test_a_label_of_a_million_characters_gets_no_suggestion_at_once(valid):
    t0 = time.perf_counter()
    assert closest_label("a" * 1_000_000, TOY_CLASSES) is None
    assert closest_label(" EYEBROW" + " " * 1_000_000, TOY_CLASSES) == "eyebrow"  # spaces around are ignored
    assert time.perf_counter() - t0 < 0.5
    raw = load(valid)
    raw["shapes"][0]["label"] = "b" * 1_000_000
    save(valid, raw)
    (problem,) = problems_of(valid)
    assert problem == f"shape 0: unknown label '{'b' * 40}…' (1000000 characters) (not a class of this workspace)"


def test_image_symlinked_from_outside_leaves_the_folder(valid, tmp_path):
    outside = tmp_path / "elsewhere.png"
    PIL.Image.fromarray(image_pixels()).save(outside)
    link = valid.parent / "link.png"
    link.symlink_to(outside)
    raw = load(valid)
    raw["imagePath"] = "link.png"
    save(valid, raw)
    assert any("leaves this JSON's folder" in p for p in problems_of(valid))


def test_every_problem_of_a_file_is_listed_at_once(valid):
    raw = load(valid)
    raw["imageHeight"] = 99
    raw["shapes"][0]["label"] = "skn"
    raw["shapes"][3]["points"] = [[1, float("nan")], [2, 2]]
    raw["shapes"][5]["shape_type"] = "dot"
    raw["flags"] = {"done": 1}
    save(valid, raw)
    problems = problems_of(valid)
    assert len(problems) == 5
    joined = " | ".join(problems)
    for text in ["99x32", "shape 0: unknown label 'skn'", "shape 3 ('mouth')", "unknown shape_type 'dot'", "flags values"]:
        assert text in joined
    error = LabelMeError(valid, problems)
    assert isinstance(error, UserError) and error.exit_code == 2
    assert "5 problems" in str(error) and "\n" not in str(error)


def test_long_problem_lists_are_cut_in_the_message_but_kept(valid):
    raw = load(valid)
    raw["shapes"] = [{"label": f"part{i}", "points": [[1, 1]], "shape_type": "point"} for i in range(30)]
    save(valid, raw)
    problems = problems_of(valid)
    assert len(problems) == 30
    assert "and 10 more" in str(LabelMeError(valid, problems))


# ---------------------------------------------------------------------------------------------------
# EXIF orientation, as LabelMe applies it


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation_is_applied_like_labelme(tmp_path, lm, orientation, fmt):
    """A camera image 32 wide, 24 high, turned by EXIF: the JSON must give the size LabelMe shows;
    the unturned size is refused with the orientation named, as LabelMe refuses it."""
    stored = image_pixels()  # [24, 32, 3] as stored in the file
    suffix = ".jpg" if fmt == "JPEG" else ".png"
    image_path = tmp_path / f"photo{suffix}"
    exif = PIL.Image.Exif()
    exif[0x0112] = orientation
    PIL.Image.fromarray(stored).save(image_path, format=fmt, exif=exif.tobytes())

    shown = lm.utils.apply_exif_orientation(PIL.Image.open(image_path))
    shown_w, shown_h = shown.size
    quarter_turn = orientation in (5, 6, 7, 8)
    assert (shown_h, shown_w) == ((W, H) if quarter_turn else (H, W))  # LabelMe does turn it

    json_path = tmp_path / "photo.json"
    raw = {"version": "5.5.0", "flags": {}, "shapes": [], "imagePath": image_path.name, "imageData": None,
           "imageHeight": shown_h, "imageWidth": shown_w}  # fmt: skip
    save(json_path, raw)
    annotation = read_labelme(json_path, CLASSES)
    lm.file.read_label_file(str(json_path))  # LabelMe agrees
    assert annotation.orientation == orientation
    assert (annotation.height, annotation.width) == (shown_h, shown_w)
    np.testing.assert_array_equal(read_image(annotation), np.asarray(shown.convert("RGB")))

    if quarter_turn:
        raw["imageHeight"], raw["imageWidth"] = H, W
        save(json_path, raw)
        problems = problems_of(json_path)
        assert any(f"after EXIF orientation {orientation}" in p for p in problems)
        with pytest.raises(lm.file.LabelFileReadError):
            lm.file.read_label_file(str(json_path))


# ---------------------------------------------------------------------------------------------------
# fuzz: random mutations of a valid file


JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**30), 10**30),
        st.integers(-50, 50),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.sampled_from(["eye", "eyes", "polygon", "points", "mask", "../x.png", "/abs.png", "img_0001.png", ""]),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=8,
)


@st.composite
def mutated_document(draw, raw: dict) -> bytes:
    """The valid file's JSON after 1 to 4 random edits anywhere in it (mostly deep: shapes, points): a
    value replaced, a key removed or added, a list item removed or duplicated; sometimes the text
    itself is cut or a byte changed."""
    raw = copy.deepcopy(raw)
    for _ in range(draw(st.integers(1, 4))):
        # walk down to a random container
        node = raw
        while True:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            if node is raw and "shapes" in raw and draw(st.booleans()):
                key = "shapes"  # where most of a file is
            child = node[key]
            if isinstance(child, (dict, list)) and child and draw(st.integers(0, 3)) > 0:  # mostly go deeper
                node = child
                continue
            action = draw(st.sampled_from(["replace", "remove", "add", "duplicate"]))
            if action == "replace":
                node[key] = draw(JSON_VALUES)
            elif action == "remove":
                del node[key]
            elif action == "add" and isinstance(node, dict):
                node[draw(st.text(max_size=8))] = draw(JSON_VALUES)
            elif isinstance(node, list):
                node.insert(key, copy.deepcopy(node[key]))
            break
    text = json.dumps(raw, allow_nan=True).encode()
    cut = draw(st.sampled_from(["none", "none", "none", "truncate", "byte"]))
    if cut == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    elif cut == "byte" and text:
        at = draw(st.integers(0, len(text) - 1))
        text = text[:at] + bytes([draw(st.integers(0, 255))]) + text[at + 1 :]
    return text


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> tuple[Path, dict]:
    """A valid file for the fuzz test and its JSON as written (each example starts from this)."""
    json_path = tmp_path_factory.mktemp("fuzz") / "img_0001.json"
    write_labelme(json_path, image_pixels(), SHAPES, extra=EXTRA)
    return json_path, load(json_path)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_only_our_error_and_what_we_accept_labelme_reads_the_same(pristine, lm, data):
    valid, raw = pristine
    valid.write_bytes(data.draw(mutated_document(raw)))
    try:
        annotation = read_labelme(valid, CLASSES)
    except LabelMeError as err:
        assert err.path == valid and err.problems and str(valid) in str(err)
        return
    # accepted: it rasterises, and the real LabelMe opens it and paints the same mask
    ours = rasterize(annotation, annotation.height, annotation.width, CLASSES)
    np.testing.assert_array_equal(ours, labelme_mask(lm, valid, annotation.height, annotation.width))

