"""Shapes -> class-id mask, pixel for pixel as LabelMe's own ``shape_to_mask`` / ``shapes_to_label``.

The rules (LabelMe 5 and 6, checked against 6.3.1 by the tests):
- every shape is drawn with PIL on an 8-bit canvas the size of the image, outline and fill, using the
  file's coordinates unchanged (pixel (row i, column j) sits at x=j, y=i);
- polygon and oriented_rectangle: ``polygon`` through the points; rectangle: ``rectangle`` between the
  two corners (min/max of each axis); circle: ``ellipse`` around the first point with radius = distance
  to the second; point: a disc of radius 5; line and linestrip: a 10 px wide ``line`` through the points;
  mask: the bitmap pasted at the box's top-left corner (corners truncated to ints, ends included);
- shapes are painted in file order, later shapes over earlier ones; pixels no shape covers are
  background (class 0). Shapes labelled ``__ignore__`` paint ``IGNORE`` (255).
``points`` shapes have no area; they are refused, never guessed.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import PIL.Image
import PIL.ImageDraw

from dgan_al.labelme.format import (
    EXACT_POINTS,
    MIN_POINTS,
    RASTERISABLE_TYPES,
    Annotation,
    Shape,
    label_values,
    shape_from_mapping,
)

LINE_WIDTH = 10  # px, line and linestrip
POINT_RADIUS = 5  # px, point


def shape_mask(shape: Shape, height: int, width: int) -> np.ndarray:
    """bool [height, width]: the pixels ``shape`` covers, exactly as LabelMe's ``shape_to_mask``.

    Raises ValueError for a shape LabelMe cannot rasterise (``points``, unknown types, wrong point
    counts, a mask shape without a fitting bitmap).
    """
    _check_rasterisable(shape, height, width)
    if shape.shape_type == "mask":
        (x1, y1), (x2, y2) = [(int(x), int(y)) for x, y in shape.points]  # LabelMe: astype(int)
        covered = np.zeros((height, width), dtype=bool)
        covered[y1 : y2 + 1, x1 : x2 + 1] = shape.mask
        return covered

    canvas = PIL.Image.new("L", (width, height), 0)
    draw = PIL.ImageDraw.Draw(canvas)
    xy = [(x, y) for x, y in shape.points]
    kind = shape.shape_type
    if kind == "circle":
        (cx, cy), (px, py) = xy
        r = math.sqrt((cx - px) ** 2 + (cy - py) ** 2)
        draw.ellipse(((cx - r, cy - r), (cx + r, cy + r)), outline=1, fill=1)
    elif kind == "rectangle":
        (x0, y0), (x1, y1) = xy
        draw.rectangle(((min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1))), outline=1, fill=1)
    elif kind in ("line", "linestrip"):
        draw.line(xy, fill=1, width=LINE_WIDTH)
    elif kind == "point":
        (cx, cy) = xy[0]
        r = POINT_RADIUS
        draw.ellipse(((cx - r, cy - r), (cx + r, cy + r)), outline=1, fill=1)
    else:  # polygon, oriented_rectangle
        draw.polygon(xy, outline=1, fill=1)
    return np.asarray(canvas, dtype=bool)


def rasterize(
    shapes: Annotation | Sequence[Shape | Mapping[str, Any]],
    height: int,
    width: int,
    classes: Sequence[str],
) -> np.ndarray:
    """uint8 [height, width] class ids: shapes painted in order, later over earlier, like LabelMe's
    ``shapes_to_label``; uncovered pixels are 0 (background), ``__ignore__`` shapes paint ``IGNORE``.

    ``shapes`` is an ``Annotation`` (from ``read_labelme``), or a list of ``Shape`` or of shape dicts in
    the JSON's layout (e.g. from ``mask_to_polygons``). Raises ValueError for an unknown label or a
    shape that cannot be rasterised (files are checked for both by ``read_labelme``).
    """
    values = label_values(classes)
    if isinstance(shapes, Annotation):
        shapes = shapes.shapes
    label = np.zeros((height, width), dtype=np.uint8)  # [H, W]
    for index, item in enumerate(shapes):
        shape = item if isinstance(item, Shape) else shape_from_mapping(item)
        if shape.label not in values:
            raise ValueError(f"shape {index}: unknown label {shape.label!r}; known: {sorted(values)}")
        label[shape_mask(shape, height, width)] = values[shape.label]
    return label


def _check_rasterisable(shape: Shape, height: int, width: int) -> None:
    kind = shape.shape_type
    if kind not in RASTERISABLE_TYPES:
        raise ValueError(f"shape_type {kind!r} cannot be rasterised (LabelMe rasterises {RASTERISABLE_TYPES})")
    n = len(shape.points)
    if kind in EXACT_POINTS and n != EXACT_POINTS[kind]:
        raise ValueError(f"a {kind} takes exactly {EXACT_POINTS[kind]} points, got {n}")
    if kind in MIN_POINTS and n < MIN_POINTS[kind]:
        raise ValueError(f"a {kind} takes at least {MIN_POINTS[kind]} points, got {n}")
    if kind == "mask":
        (x1, y1), (x2, y2) = [(int(x), int(y)) for x, y in shape.points]
        if not (0 <= x1 <= x2 < width and 0 <= y1 <= y2 < height):
            raise ValueError(f"mask box ({x1}, {y1})-({x2}, {y2}) is not inside the {width}x{height} image")
        if shape.mask is None or shape.mask.shape != (y2 - y1 + 1, x2 - x1 + 1):
            got = None if shape.mask is None else shape.mask.shape
            raise ValueError(f"mask bitmap {got} does not fit its box {(y2 - y1 + 1, x2 - x1 + 1)}")
