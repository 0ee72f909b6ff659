"""Class mask -> LabelMe polygons, to pre-fill a file so the annotator corrects instead of drawing.

Every connected region (4-connected) of every class becomes one polygon through the centres of its
edge pixels (``skimage.measure.find_contours``, rounded to the centres): LabelMe's PIL rasteriser fills
a polygon and draws its outline on whole pixels, so that polygon paints exactly the region. It is then
simplified with Douglas-Peucker (``approximate_polygon``, ``tolerance`` in pixels), as far as the
region keeps an IoU of ``min_iou``, so the annotator has few vertices to move.

Holes, by painter's order. A polygon is filled, so a region's holes are covered by its polygon; the
regions inside a hole are emitted too, and polygons are ordered by filled area, largest first. LabelMe
paints later shapes over earlier ones, so each inner region is painted over the region around it, and
the hole comes back. A hole that is background is emitted as a ``_background_`` polygon (the label
LabelMe's convention gives class 0); background touching the image border is never emitted, since
uncovered pixels are background anyway.

Lost on purpose: the boundary pixels simplification cuts off or adds (each region keeps an IoU of at
least ``min_iou``; ``tolerance=0, min_iou=1`` reproduces the mask exactly), and regions under
``min_pixels`` (default 1: none; raise it to drop prediction speckle, which then takes the class of
what is painted under it).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import scipy.ndimage
import skimage.measure

from dgan_al.labelme.format import BACKGROUND_LABEL, IGNORE, IGNORE_LABEL, Shape, label_values
from dgan_al.labelme.rasterize import shape_mask

FOUR_CONNECTED = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


def mask_to_polygons(
    mask: np.ndarray,
    classes: Sequence[str],
    *,
    tolerance: float = 1.0,
    min_iou: float = 0.97,
    min_pixels: int = 1,
) -> list[dict[str, Any]]:
    """LabelMe polygon shapes (dicts in the JSON's layout) that rasterise back to ``mask``.

    ``mask`` is uint8 [H, W] of class ids (``IGNORE`` pixels become ``__ignore__`` polygons).
    ``tolerance``: the largest distance, in pixels, between the traced boundary and the simplified
    polygon, lowered for a region (down to 1/4 px, then none) until its IoU is at least ``min_iou``.
    Regions with fewer than ``min_pixels`` pixels are dropped. Shapes come in painting order.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be [H, W], got shape {mask.shape}")
    label_values(classes)
    names = {0: BACKGROUND_LABEL, IGNORE: IGNORE_LABEL, **{i: c for i, c in enumerate(classes) if i > 0}}
    unknown = sorted(set(np.unique(mask).tolist()) - set(names))
    if unknown:
        raise ValueError(f"mask has values {unknown} that are no class (0..{len(classes) - 1}) nor {IGNORE}")
    regions = []  # (filled area, top, left, value, polygon [N, 2] as (x, y))
    for region in mask_regions(mask, min_pixels=min_pixels):
        polygon = region_polygon(region, tolerance, min_iou)
        regions.append((int(region.filled.sum()), region.top, region.left, region.value, polygon))

    regions.sort(key=lambda r: (-r[0], r[1], r[2], r[3]))  # largest first: inner regions paint last
    return [
        {
            "label": names[value],
            "points": [[float(x), float(y)] for x, y in polygon],
            "group_id": None,
            "description": "",
            "shape_type": "polygon",
            "flags": {},
            "mask": None,
        }
        for _, _, _, value, polygon in regions
    ]


@dataclass(frozen=True)
class Region:
    """One connected region of a class as ``mask_to_polygons`` sees it: ``filled`` is bool [h, w], the
    region with its holes filled, inside its bounding box at (``top``, ``left``); ``pixels`` counts the
    region's own pixels (without the holes)."""

    value: int
    top: int
    left: int
    filled: np.ndarray
    pixels: int

    def paint(self, height: int, width: int) -> np.ndarray:
        """bool [height, width]: the filled region on the whole canvas."""
        out = np.zeros((height, width), dtype=bool)
        out[self.top:self.top + self.filled.shape[0], self.left:self.left + self.filled.shape[1]] = self.filled
        return out

    def outline(self) -> np.ndarray:
        """float [N, 2] (x, y): the closed boundary through the centres of the filled region's edge pixels,
        as ``mask_to_polygons`` traces it before simplifying (no repeated last point)."""
        centres = _dedupe(np.round(_longest_contour(np.pad(self.filled, 1), level=0.75)))
        if len(centres) > 1 and np.array_equal(centres[0], centres[-1]):
            centres = centres[:-1]
        return centres[:, ::-1] - 1.0 + np.array([self.left, self.top])


def mask_regions(mask: np.ndarray, *, min_pixels: int = 1) -> list[Region]:
    """Every 4-connected region of every value of ``mask`` (uint8 [H, W]) that ``mask_to_polygons`` turns
    into a polygon: background touching the border and regions under ``min_pixels`` are left out."""
    height, width = mask.shape
    out = []
    for value in np.unique(mask).tolist():
        components, _ = scipy.ndimage.label(mask == value, structure=FOUR_CONNECTED)
        for index, box in enumerate(scipy.ndimage.find_objects(components), start=1):
            rows, cols = box
            touches_border = rows.start == 0 or cols.start == 0 or rows.stop == height or cols.stop == width
            if value == 0 and touches_border:
                continue
            region = components[box] == index  # bool [h, w], the region inside its bounding box
            if region.sum() < min_pixels:
                continue
            filled = scipy.ndimage.binary_fill_holes(region, structure=FOUR_CONNECTED)
            out.append(Region(int(value), rows.start, cols.start, filled, int(region.sum())))
    return out


def region_polygon(region: Region, tolerance: float, min_iou: float) -> np.ndarray:
    """float [N, 2] (x, y): the vertices ``mask_to_polygons`` writes for ``region``."""
    return _outer_boundary(region.filled, region.pixels, tolerance, min_iou) + np.array([region.left, region.top])


def count_vertices(shapes: Sequence[Shape | Mapping[str, Any]]) -> int:
    """How many vertices the annotator may have to move: the points of all shapes."""
    return sum(len(s.points if isinstance(s, Shape) else s["points"]) for s in shapes)


def _outer_boundary(filled: np.ndarray, region_pixels: int, tolerance: float, min_iou: float) -> np.ndarray:
    """float [N, 2] (x, y) vertices, in box coordinates, of a polygon LabelMe rasterises to (nearly)
    the hole-free region ``filled`` (bool [h, w]) whose own pixels number ``region_pixels``.

    The boundary is traced through the centres of the region's edge pixels (PIL fills a polygon and
    draws its outline on whole-pixel coordinates, so a polygon through pixel centres paints exactly the
    region), then simplified with the largest tolerance (``tolerance``, halved down to 1/4 px) that
    keeps the region's IoU >= ``min_iou``, counting the pixels it misses or adds against the region's
    own pixels (a ring's filled area is far larger than the ring). A pixel, or a straight line one pixel
    thin, has no such boundary; it becomes a sliver triangle that paints exactly its pixels.
    """
    padded = np.pad(filled, 1)  # bool [h + 2, w + 2]: a ring of outside so the boundary closes
    # level 0.75: each crossing lies 1/4 px outside an edge pixel's centre, so rounding gives the centre
    centres = _dedupe(np.round(_longest_contour(padded, level=0.75)))
    if len(np.unique(centres, axis=0)) < 3:  # a pixel, or a straight line one pixel thin
        return _sliver(centres)[:, ::-1] - 1.0
    candidates = itertools.chain((skimage.measure.approximate_polygon(centres, t) for t in _halvings(tolerance)),
                                 [centres])
    best, best_iou = centres[:-1], -1.0
    for closed in candidates:  # simplified lazily: the first that keeps min_iou ends the search
        polygon = closed[:-1]  # [N, 2] (row, col); closed contours repeat their first point
        if len(np.unique(polygon, axis=0)) < 3:
            continue
        painted = shape_mask(_polygon_shape(polygon), *padded.shape)
        missed, added = np.sum(padded & ~painted), np.sum(painted & ~padded)
        iou = (region_pixels - missed) / (region_pixels + added)
        if iou >= min_iou:
            best = polygon
            break
        if iou > best_iou:
            best, best_iou = polygon, iou
    return best[:, ::-1] - 1.0  # (x, y) = (col, row), undo the padding


def _sliver(centres: np.ndarray) -> np.ndarray:
    """[3, 2] (row, col): a thin triangle that PIL paints as exactly the pixel centres from the first
    to the last of ``centres`` (a pixel, or a straight line of them): one edge runs along them, the
    third vertex sits half a pixel off the last one, where PIL's outline still lands on that pixel."""
    first, last = centres.min(axis=0), centres.max(axis=0)
    return np.array([first, last + [0.0, 0.5], last + [0.5, 0.0]])


def _longest_contour(padded: np.ndarray, level: float) -> np.ndarray:
    """The outer closed contour [N, 2] (row, col) of a padded hole-free region."""
    contours = skimage.measure.find_contours(padded.astype(np.float32), level)
    return max(contours, key=_enclosed_area)


def _halvings(tolerance: float) -> list[float]:
    """tolerance, tolerance / 2, ... down to a quarter pixel."""
    steps = []
    while tolerance >= 0.25:
        steps.append(tolerance)
        tolerance /= 2
    return steps


def _dedupe(contour: np.ndarray) -> np.ndarray:
    """The contour without consecutive repeated points (rounding makes many)."""
    keep = np.ones(len(contour), dtype=bool)
    keep[1:] = np.any(contour[1:] != contour[:-1], axis=1)
    return contour[keep]


def _polygon_shape(polygon: np.ndarray) -> Shape:
    """A Shape for a polygon given as [N, 2] (row, col)."""
    return Shape(label="", points=[(float(c), float(r)) for r, c in polygon])


def _enclosed_area(contour: np.ndarray) -> float:
    """|area| of a closed contour [N, 2] (shoelace)."""
    r, c = contour[:, 0], contour[:, 1]
    return abs(float(np.dot(r, np.roll(c, 1)) - np.dot(c, np.roll(r, 1)))) / 2
