"""The click model on hand-made masks and on real toy-faces masks."""

import numpy as np
import pytest

from dgan_al.generators.protocol import sample_latents
from dgan_al.generators.toy_faces import CLASSES, render_latents
from dgan_al.labelme import mask_to_polygons
from dgan_al.labelme.clicks import correction_clicks, scratch_clicks, trace

ABC = ["background", "a", "b", "c"]


def _square(top, left, size, value, mask=None):
    mask = np.zeros((64, 64), dtype=np.uint8) if mask is None else mask
    mask[top:top + size, left:left + size] = value
    return mask


def _polygon(label, top, left, size):
    """A LabelMe polygon that PIL paints as exactly the square of pixels [top, top+size) x [left, left+size)."""
    x0, y0, x1, y1 = left, top, left + size - 1, top + size - 1
    return {"label": label, "points": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]], "shape_type": "polygon"}


def test_a_square_costs_its_four_corners_from_scratch():
    assert scratch_clicks(_square(10, 10, 20, 1), ABC) == 4
    assert scratch_clicks(_square(40, 40, 10, 2, _square(10, 10, 20, 1)), ABC) == 8
    assert scratch_clicks(np.zeros((64, 64), np.uint8), ABC) == 0


def test_hand_made_prefills():
    truth = _square(40, 40, 10, 2, _square(10, 10, 20, 1))
    # a perfect pre-fill costs nothing
    perfect = correction_clicks([_polygon("a", 10, 10, 20), _polygon("b", 40, 40, 10)], truth, ABC)
    assert (perfect.clicks, perfect.deleted, perfect.kept) == (0, 0, 2)
    # an empty pre-fill costs the from-scratch count
    assert correction_clicks([], truth, ABC).clicks == scratch_clicks(truth, ABC) == 8
    # one wrong polygon (the right place, the wrong class) costs its deletion plus the right one's vertices
    wrong = correction_clicks([_polygon("c", 10, 10, 20), _polygon("b", 40, 40, 10)], truth, ABC)
    assert (wrong.deleted, wrong.vertices, wrong.clicks) == (1, 4, 5)
    # a polygon mostly on its class is kept; what it paints wrong is drawn over
    half = correction_clicks([_polygon("a", 10, 10, 20), _polygon("b", 40, 40, 10), _polygon("a", 45, 40, 5)],
                             truth, ABC)
    assert half.deleted == 1 and half.vertices == 0  # 5x5 of "a" on the "b" square: all of it wrong
    over = correction_clicks([_polygon("a", 10, 10, 24), _polygon("b", 40, 40, 10)], truth, ABC)
    assert over.deleted == 0 and over.vertices > 0  # a 4 px rim of background to paint back


def test_a_boundary_off_by_one_pixel_is_free_and_a_missed_part_is_not():
    truth = _square(10, 10, 20, 1)
    assert correction_clicks([_polygon("a", 11, 11, 20)], truth, ABC).clicks == 0
    shifted = correction_clicks([_polygon("a", 14, 14, 20)], truth, ABC)
    assert shifted.deleted == 0 and shifted.vertices > 0
    thin = _square(30, 5, 2, 3, truth.copy())  # a 2 px part next to the square, missed by the pre-fill
    thin[30:32, 5:40] = 3
    missed = correction_clicks([_polygon("a", 10, 10, 20)], thin, ABC)
    assert missed.vertices >= 3


def test_real_masks():
    truth = render_latents(sample_latents(32, 2, seed=1).numpy())[1]
    for i, mask in enumerate(truth):
        scratch = scratch_clicks(mask, CLASSES)
        assert scratch > 20
        assert correction_clicks([], mask, CLASSES).clicks == scratch
        # the annotator's own polygons, or the exact ones, as pre-fill: nothing left to correct
        assert correction_clicks(trace(mask, CLASSES), mask, CLASSES).clicks == 0
        exact = mask_to_polygons(mask, CLASSES, tolerance=0, min_iou=1.0)
        assert correction_clicks(exact, mask, CLASSES).clicks == 0
        # another face's polygons: most are deleted or corrected, and it costs more than a good pre-fill
        other = correction_clicks(trace(truth[(i + 1) % len(truth)], CLASSES), mask, CLASSES)
        assert other.clicks > scratch // 4


def test_unknown_label_in_the_prefill():
    with pytest.raises(ValueError, match="no class"):
        correction_clicks([_polygon("zebra", 1, 1, 4)], _square(1, 1, 4, 1), ABC)
