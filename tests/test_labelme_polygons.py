"""Pre-fill polygons: mask -> polygons -> mask keeps the parts (synthetic part masks with nested
regions, holes and thin parts; the toy-faces oracle masks), exactly without simplification."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dgan_al.labelme import count_vertices, mask_to_polygons, rasterize

CLASSES = ["background", "skin", "hair", "eye", "pupil", "brow", "nose", "mouth", "ear", "glasses"]


def ellipse(height, width, cy, cx, ry, rx, angle=0.0):
    y, x = np.mgrid[:height, :width].astype(float)
    c, s = np.cos(angle), np.sin(angle)
    u, v = ((x - cx) * c + (y - cy) * s) / rx, (-(x - cx) * s + (y - cy) * c) / ry
    return u * u + v * v <= 1


def part_mask(seed: int, size: int) -> np.ndarray:
    """A cartoon head's part mask: nested regions (pupil in eye in skin in hair), holes filled by other
    classes and by background (inside the mouth), thin parts (brows, a glasses ring 1.5 px wide)."""
    rng = np.random.default_rng(seed)
    m = np.zeros((size, size), np.uint8)
    cy, cx = size * rng.uniform(0.45, 0.55), size * rng.uniform(0.45, 0.55)
    ry, rx = size * rng.uniform(0.3, 0.38), size * rng.uniform(0.24, 0.32)
    m[ellipse(size, size, cy - ry * 0.15, cx, ry * 1.1, rx * 1.15)] = 2  # hair
    for side in (-1, 1):
        m[ellipse(size, size, cy, cx + side * rx, ry * 0.2, rx * 0.15)] = 8  # ears
    m[ellipse(size, size, cy + ry * 0.1, cx, ry, rx)] = 1  # skin
    for side in (-1, 1):
        ex, ey = cx + side * rx * 0.4, cy - ry * 0.05
        m[ellipse(size, size, ey, ex, ry * 0.12, rx * 0.2, rng.uniform(-0.2, 0.2))] = 3  # eye
        m[ellipse(size, size, ey, ex + rng.uniform(-2, 2), ry * 0.06, rx * 0.07)] = 4  # pupil
        m[ellipse(size, size, ey - ry * 0.22, ex, 1.6, rx * 0.22, rng.uniform(-0.3, 0.3))] = 5  # brow, thin
        outer = ellipse(size, size, ey, ex, ry * 0.2, rx * 0.3)
        m[outer & ~ellipse(size, size, ey, ex, ry * 0.2 - 1.5, rx * 0.3 - 1.5)] = 9  # glasses: a thin ring around the eye, skin between
    m[ellipse(size, size, cy + ry * 0.3, cx, ry * 0.15, rx * 0.1)] = 6  # nose
    m[ellipse(size, size, cy + ry * 0.6, cx, ry * 0.1, rx * 0.35)] = 7  # mouth
    m[ellipse(size, size, cy + ry * 0.6, cx, ry * 0.03, rx * 0.12)] = 0  # background hole in the mouth
    return m


def mean_iou(truth: np.ndarray, pred: np.ndarray) -> float:
    """Mean IoU over the classes present in either mask (background included)."""
    ious = []
    for c in np.union1d(np.unique(truth), np.unique(pred)):
        ious.append(np.sum((truth == c) & (pred == c)) / np.sum((truth == c) | (pred == c)))
    return float(np.mean(ious))


@pytest.mark.parametrize("size", [128, 256])
def test_mask_to_polygons_round_trip_keeps_parts(size):
    scores, vertices = [], []
    for seed in range(3):
        truth = part_mask(seed, size)
        shapes = mask_to_polygons(truth, CLASSES)
        back = rasterize(shapes, size, size, CLASSES)
        scores.append(mean_iou(truth, back))
        vertices.append(count_vertices(shapes))
        boundary_pixels = np.sum(truth[1:] != truth[:-1]) + np.sum(truth[:, 1:] != truth[:, :-1])
        assert vertices[-1] < boundary_pixels / 2  # simplified: far fewer vertices than boundary steps
        assert all(s["shape_type"] == "polygon" and len(s["points"]) >= 3 for s in shapes)
    print(f"\n{size}px part masks: mIoU {np.round(scores, 4).tolist()}, vertices {vertices}")
    assert min(scores) >= 0.95


def test_mask_to_polygons_round_trip_on_toy_faces():
    """The toy-faces oracle masks (128 px, 15 classes, rare parts and tiny eyebrow fragments)."""
    toy = pytest.importorskip("dgan_al.generators.toy_faces.render", reason="toy-faces renderer not in this tree")
    from dgan_al.generators.toy_faces.classes import CLASSES as TOY_CLASSES

    masks = toy.oracle_mask(np.random.default_rng(0).standard_normal((8, 32)).astype(np.float32))
    scores, vertices = [], []
    for truth in masks:
        shapes = mask_to_polygons(truth, TOY_CLASSES)
        scores.append(mean_iou(truth, rasterize(shapes, *truth.shape, TOY_CLASSES)))
        vertices.append(count_vertices(shapes))
    print(f"\ntoy-faces: mIoU {np.round(scores, 4).tolist()}, vertices {vertices}")
    assert min(scores) >= 0.95


def test_mask_to_polygons_holes_come_back_by_painting_order():
    truth = np.zeros((40, 40), np.uint8)
    truth[5:35, 5:35] = 1  # skin
    truth[12:20, 12:28] = 3  # eye: a hole in the skin, filled by another class
    truth[14:18, 18:22] = 0  # background hole inside the eye
    truth[25:30, 10:30] = 0  # background hole in the skin
    shapes = mask_to_polygons(truth, CLASSES, min_iou=1.0)
    assert [s["label"] for s in shapes] == ["skin", "eye", "_background_", "_background_"]
    np.testing.assert_array_equal(rasterize(shapes, 40, 40, CLASSES), truth)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), size=st.integers(8, 48))
def test_mask_to_polygons_is_exact_without_simplification(seed, size):
    """No simplification: the polygons paint the mask back exactly, for random blobs of any class
    (touching, nested, at the borders) and single-pixel speckle (slivers)."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(1, 8)):
        cy, cx = rng.uniform(0, size, 2)
        ry, rx = rng.uniform(0.5, size / 2, 2)
        truth[ellipse(size, size, cy, cx, ry, rx, rng.uniform(0, 3))] = rng.integers(0, len(CLASSES))
    speckle = rng.random((size, size)) < 0.02
    truth[speckle] = rng.integers(0, len(CLASSES), speckle.sum())
    shapes = mask_to_polygons(truth, CLASSES, tolerance=0, min_iou=1.0, min_pixels=1)
    np.testing.assert_array_equal(rasterize(shapes, size, size, CLASSES), truth)


def test_a_rectangle_is_four_vertices_and_counted():
    truth = np.zeros((12, 16), np.uint8)
    truth[3:9, 2:12] = 2
    shapes = mask_to_polygons(truth, CLASSES)
    assert len(shapes) == 1 and shapes[0]["label"] == "hair"
    assert sorted(map(tuple, shapes[0]["points"])) == [(2.0, 3.0), (2.0, 8.0), (11.0, 3.0), (11.0, 8.0)]
    assert count_vertices(shapes) == 4
    np.testing.assert_array_equal(rasterize(shapes, 12, 16, CLASSES), truth)


def test_ignore_pixels_and_speckle():
    truth = np.zeros((12, 12), np.uint8)
    truth[2:6, 2:6] = 255  # IGNORE
    truth[8, 8] = 3  # a single pixel: kept by default (as a sliver), dropped with min_pixels=2
    shapes = mask_to_polygons(truth, CLASSES)
    assert [s["label"] for s in shapes] == ["__ignore__", "eye"]
    np.testing.assert_array_equal(rasterize(shapes, 12, 12, CLASSES), truth)
    assert [s["label"] for s in mask_to_polygons(truth, CLASSES, min_pixels=2)] == ["__ignore__"]


def test_mask_to_polygons_refuses_values_that_are_no_class():
    with pytest.raises(ValueError, match="no class"):
        mask_to_polygons(np.full((4, 4), 17, np.uint8), CLASSES)
