"""The click model on hand-made masks and on real toy-faces masks."""

import numpy as np
import scipy.ndimage
import pytest

from dgan_al.generators.protocol import sample_latents
from dgan_al.generators.toy_faces import CLASSES, render_latents
from dgan_al.labelme import mask_to_polygons
from dgan_al.labelme.clicks import Edit, TruthRegions, correction_clicks, edit_clicks, scratch_clicks, trace

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


# the edit model: drag vertices onto the true outline, insert the missing ones, delete, draw the rest


def test_edit_model_on_hand_made_masks():
    truth = _square(40, 40, 10, 2, _square(10, 10, 20, 1))
    perfect = [_polygon("a", 10, 10, 20), _polygon("b", 40, 40, 10)]
    assert edit_clicks(perfect, truth, ABC) == Edit(deleted=0, moved=0, inserted=0, drawn=0, edited=2)
    assert edit_clicks(trace(truth, ABC), truth, ABC).clicks == 0
    # the vertices in the other direction, starting elsewhere: the same polygon
    reversed_a = {**perfect[0], "points": perfect[0]["points"][::-1][1:] + perfect[0]["points"][::-1][:1]}
    assert edit_clicks([reversed_a, perfect[1]], truth, ABC).clicks == 0
    # an empty pre-fill costs the from-scratch count
    empty = edit_clicks([], truth, ABC)
    assert empty.clicks == empty.drawn == scratch_clicks(truth, ABC) == 8
    # one vertex 5 px off: one drag, when its nearest outline point is its corner
    off = [dict(perfect[0], points=[[5, 10], *perfect[0]["points"][1:]]), perfect[1]]
    assert edit_clicks(off, truth, ABC) == Edit(deleted=0, moved=1, inserted=0, drawn=0, edited=2)
    # pushed 3 px along the edge and 5 px off it: dragged onto the top edge, the corner then inserted
    along = [dict(perfect[0], points=[[13, 5], *perfect[0]["points"][1:]]), perfect[1]]
    assert edit_clicks(along, truth, ABC) == Edit(deleted=0, moved=1, inserted=1, drawn=0, edited=2)
    # a wrong polygon (right place, wrong class): delete it and draw the right one
    wrong = edit_clicks([_polygon("c", 10, 10, 20), perfect[1]], truth, ABC)
    assert (wrong.deleted, wrong.drawn, wrong.clicks) == (1, 4, 5)
    # a triangle over the square: its vertices lie on the outline, the fourth corner is inserted
    triangle = dict(perfect[0], points=perfect[0]["points"][:3])
    assert edit_clicks([triangle, perfect[1]], truth, ABC) == Edit(deleted=0, moved=0, inserted=1, drawn=0, edited=2)


def test_edit_model_splits_and_merges():
    two = _square(10, 40, 10, 1, _square(10, 10, 10, 1))  # two "a" squares side by side
    merged = _polygon("a", 10, 10, 10)
    merged["points"] = [[10, 10], [49, 10], [49, 19], [10, 19]]  # one polygon over both and the gap
    # kept (its pixels are mostly "a"), edited to the square it overlaps most, the other one drawn
    split = edit_clicks([merged], two, ABC)
    assert (split.deleted, split.edited, split.drawn) == (0, 1, 4)
    assert split.moved == 2  # the two far corners dragged back; the near ones are the square's
    # two polygons over one region: the better one is kept as it is; the other, half off the region, deleted
    one = _square(10, 10, 20, 1)
    second = _polygon("a", 10, 25, 10)  # columns 25-34: half on the square (kept by rule 1), half off
    both = edit_clicks([_polygon("a", 10, 10, 20), second], one, ABC)
    assert (both.deleted, both.edited, both.clicks) == (1, 1, 1)
    # one wholly inside the region shows only right pixels: harmless, left as it is
    inside = edit_clicks([_polygon("a", 10, 10, 20), _polygon("a", 12, 12, 5)], one, ABC)
    assert (inside.deleted, inside.edited, inside.clicks) == (0, 1, 0)


def test_edit_model_never_costs_more_than_deleting_and_drawing():
    truth = render_latents(sample_latents(32, 4, seed=3).numpy())[1]
    for i, mask in enumerate(truth):
        scratch = scratch_clicks(mask, CLASSES)
        assert edit_clicks([], mask, CLASSES).clicks == scratch
        assert edit_clicks(trace(mask, CLASSES), mask, CLASSES).clicks == 0
        exact = mask_to_polygons(mask, CLASSES, tolerance=0, min_iou=1.0)
        assert edit_clicks(exact, mask, CLASSES).clicks == 0
        other = trace(truth[(i + 1) % len(truth)], CLASSES)
        edit = edit_clicks(other, mask, CLASSES)
        assert 0 < edit.clicks <= len(other) + scratch
        assert edit_clicks(other, TruthRegions(mask), CLASSES) == edit  # the truth's regions, shared
        assert edit.deleted + edit.edited <= len(other)  # the rest shows nothing, or only right pixels


def test_edit_model_unknown_label():
    with pytest.raises(ValueError, match="no class"):
        edit_clicks([_polygon("zebra", 1, 1, 4)], _square(1, 1, 4, 1), ABC)


def test_edit_model_keeps_the_polygons_own_vertex_order():
    """An outline that passes one pixel centre twice (a pinch) gives two vertices the same outline position;
    the polygon is edited in its own order, so its own trace still costs nothing."""
    rows = ["01111000011111110000", "11111000111111111110", "11111101111111111111",
            "01111111111111111111", "00000001111111111110", "00000000111111111110"]
    mask = np.zeros((12, 26), np.uint8)
    mask[3:9, 3:23] = [[int(c) for c in r] for r in rows]
    assert edit_clicks(trace(mask, ABC[:2]), mask, ABC[:2]).clicks == 0
    rng = np.random.default_rng(0)
    for _ in range(20):  # noisy blobs of three classes, full of pinches and one-pixel necks
        smooth = scipy.ndimage.gaussian_filter(rng.random((48, 48)), 2)
        blobs = np.digitize(smooth, np.quantile(smooth, [0.4, 0.7])).astype(np.uint8)
        assert edit_clicks(trace(blobs, ABC[:3]), blobs, ABC[:3]).clicks == 0


def test_edit_model_charges_nothing_for_what_shows_nothing_or_is_already_right():
    truth = _square(10, 10, 20, 1)
    hidden = _polygon("a", 12, 12, 5)  # painted over by the right polygon after it
    assert edit_clicks([hidden, _polygon("a", 10, 10, 20)], truth, ABC).clicks == 0
    # a background polygon on background that touches the border: no truth region to match, harmless
    border = {"label": "_background_", "points": [[0, 0], [5, 0], [5, 5], [0, 5]], "shape_type": "polygon"}
    assert edit_clicks([_polygon("a", 10, 10, 20), border], truth, ABC).clicks == 0
    # the same polygon over part of the square is wrong where it shows: deleted
    over = {"label": "_background_", "points": [[8, 8], [14, 8], [14, 14], [8, 14]], "shape_type": "polygon"}
    assert edit_clicks([_polygon("a", 10, 10, 20), over], truth, ABC).deleted == 1
