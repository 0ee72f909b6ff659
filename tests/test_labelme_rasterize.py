"""Our rasterisation equals the real LabelMe's, pixel for pixel, on random shapes of every type."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dgan_al.labelme import IGNORE, Shape, rasterize, read_labelme, shape_mask, write_labelme

lm_utils = pytest.importorskip("labelme.utils", reason="the real LabelMe (pip install labelme) is the reference")
lm_file = pytest.importorskip("labelme._label_file", reason="the real LabelMe (pip install labelme) is the reference")
pytest.importorskip("loguru").logger.disable("labelme")  # LabelMe logs every image it loads

CLASSES = ["background", "skin", "hair", "eye", "pupil", "brow", "nose", "mouth", "ear", "glasses"]
LABELS = [*CLASSES[1:], "_background_", "background", "__ignore__"]
LABELME_VALUES = {**{c: i for i, c in enumerate(CLASSES)}, "_background_": 0, "__ignore__": -1}  # labelme2voc's


def labelme_label(shapes: list[dict], height: int, width: int) -> np.ndarray:
    """The real LabelMe's class mask (its -1 for __ignore__ shown as our IGNORE)."""
    cls, _ = lm_utils.shapes_to_label((height, width), shapes, LABELME_VALUES)
    return np.where(cls == -1, IGNORE, cls).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------
# random shapes of every type LabelMe rasterises


@st.composite
def coordinate(draw, size: int):
    """x or y: ints, floats, and half-integers (where rounding rules show), a little past the edges."""
    return draw(
        st.one_of(
            st.integers(-4, size + 4),
            st.integers(-8, 2 * size + 8).map(lambda v: v / 2),
            st.floats(-4.0, size + 4.0, allow_nan=False),
        )
    )


@st.composite
def random_shape(draw, height: int, width: int, with_mask: bool = True):
    kinds = ["polygon", "rectangle", "circle", "line", "linestrip", "point", "oriented_rectangle"]
    kind = draw(st.sampled_from(kinds + (["mask"] if with_mask else [])))
    label = draw(st.sampled_from(LABELS))
    if kind == "mask":
        x1, x2 = sorted(draw(st.lists(st.integers(0, width - 1), min_size=2, max_size=2)))
        y1, y2 = sorted(draw(st.lists(st.integers(0, height - 1), min_size=2, max_size=2)))
        seed = draw(st.integers(0, 2**16))
        bitmap = np.random.default_rng(seed).random((y2 - y1 + 1, x2 - x1 + 1)) < 0.5
        # corners may carry fractions: LabelMe truncates them
        frac = draw(st.sampled_from([0.0, 0.25, 0.75]))
        return {"label": label, "points": [[x1 + frac, y1 + frac], [x2 + frac, y2]], "shape_type": "mask",
                "mask": bitmap}  # fmt: skip
    count = {"polygon": draw(st.integers(3, 8)), "linestrip": draw(st.integers(2, 6)), "point": 1,
             "oriented_rectangle": 4}.get(kind, 2)  # fmt: skip
    points = [[draw(coordinate(width)), draw(coordinate(height))] for _ in range(count)]
    return {"label": label, "points": points, "shape_type": kind}


@settings(max_examples=300, deadline=None)
@given(data=st.data(), height=st.integers(6, 40), width=st.integers(6, 40))
def test_shape_mask_equals_labelme_shape_to_mask(data, height, width):
    shape = data.draw(random_shape(height, width, with_mask=False))
    ours = shape_mask(Shape(shape["label"], shape["points"], shape["shape_type"]), height, width)
    theirs = lm_utils.shape_to_mask((height, width), shape["points"], shape["shape_type"])
    assert ours.dtype == bool and ours.shape == (height, width)
    np.testing.assert_array_equal(ours, theirs)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), height=st.integers(6, 32), width=st.integers(6, 32))
def test_file_rasterises_like_labelme_shapes_to_label(tmp_path, data, height, width):
    """Shapes of every type, in order and overlapping, written to a file: our reader + rasteriser and
    LabelMe's reader + shapes_to_label give the same class mask."""
    shapes = data.draw(st.lists(random_shape(height, width), min_size=1, max_size=6))
    json_path = tmp_path / "image.json"
    write_labelme(json_path, np.zeros((height, width, 3), np.uint8), shapes)

    ours = rasterize(read_labelme(json_path, CLASSES), height, width, CLASSES)
    theirs = labelme_label(lm_file.read_label_file(str(json_path)).shapes, height, width)
    assert ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, theirs)


def test_later_shapes_paint_over_earlier_and_uncovered_is_background():
    shapes = [
        {"label": "skin", "points": [[2, 2], [17, 17]], "shape_type": "rectangle"},
        {"label": "eye", "points": [[5, 5], [9, 9]], "shape_type": "rectangle"},
        {"label": "__ignore__", "points": [[8, 8], [9, 9]], "shape_type": "rectangle"},
    ]
    mask = rasterize(shapes, 20, 20, CLASSES)
    assert mask[0, 0] == 0 and mask[3, 3] == 1 and mask[6, 6] == 3 and mask[9, 9] == IGNORE
    np.testing.assert_array_equal(mask, labelme_label(shapes, 20, 20))
    flipped = rasterize(shapes[::-1], 20, 20, CLASSES)
    assert flipped[6, 6] == 1 and flipped[9, 9] == 1


def test_mask_shape_nonzero_pixels_are_inside_like_labelme():
    bitmap = np.array([[0, 255, 3], [1, 0, 0]], dtype=np.uint8)
    shape = {"label": "eye", "points": [[4, 2], [6, 3]], "shape_type": "mask", "mask": bitmap.astype(bool)}
    ours = rasterize([shape], 8, 8, CLASSES)
    assert ours[2, 5] == 3 and ours[2, 6] == 3 and ours[3, 4] == 3 and ours[2, 4] == 0
    np.testing.assert_array_equal(ours, labelme_label([shape], 8, 8))


def test_points_shapes_are_refused_like_labelme_refuses_them():
    shape = {"label": "eye", "points": [[1, 1], [3, 3], [5, 1]], "shape_type": "points"}
    with pytest.raises(ValueError, match="points"):
        rasterize([shape], 8, 8, CLASSES)
    with pytest.raises(ValueError):
        lm_utils.shape_to_mask((8, 8), shape["points"], "points")


def test_rasterize_refuses_unknown_labels_and_wrong_point_counts():
    with pytest.raises(ValueError, match="unknown label 'eyes'"):
        rasterize([{"label": "eyes", "points": [[1, 1], [3, 3]], "shape_type": "rectangle"}], 8, 8, CLASSES)
    with pytest.raises(ValueError, match="exactly 2 points"):
        rasterize([{"label": "eye", "points": [[1, 1]], "shape_type": "circle"}], 8, 8, CLASSES)
