"""Shapes -> class-id mask, pixel for pixel as LabelMe's own ``shape_to_mask`` / ``shapes_to_label``.

The rules (LabelMe 5 and 6, checked against 6.3.1 by the tests; 7, checked against 7.9.1, differs in
two places, below):
- every shape is drawn with PIL on an 8-bit canvas the size of the image, outline and fill, using the
  file's coordinates unchanged (pixel (row i, column j) sits at x=j, y=i);
- polygon and oriented_rectangle: ``polygon`` through the points; rectangle: ``rectangle`` between the
  two corners (min/max of each axis); circle: ``ellipse`` around the first point with radius = distance
  to the second; point: a disc of radius 5; line and linestrip: a 10 px wide ``line`` through the points;
  mask: the bitmap pasted at the box's top-left corner (corners truncated to ints, ends included);
- shapes are painted in file order, later shapes over earlier ones; pixels no shape covers are
  background (class 0). Shapes labelled ``__ignore__`` paint ``IGNORE`` (255).
``points`` shapes have no area; they are refused, never guessed.

LabelMe 7 draws a linestrip with rounded joints (PIL ``joint="curve"``), and places a mask bitmap at
its rounded (not truncated) top-left corner, clipped to the image, with the bitmap's own size when the
corners are not whole numbers. A file follows the rules of the LabelMe that saved it (its ``version``;
files we export carry a 5.x version until LabelMe saves them), so a mask is what that LabelMe makes.
"""

from __future__ import annotations

import math
import re
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


def rules_of(version: str | None) -> int:
    """The LabelMe major version whose rasteriser defines the mask of a file saved with ``version``
    (5 for files without one: 5 and 6 rasterise alike)."""
    found = re.match(r"\s*(\d+)\.", version or "")
    return int(found.group(1)) if found else 5


def mask_box(points: Sequence[tuple[float, float]], bitmap_shape: tuple[int, int] | None,
             rules: int = 5) -> tuple[int, int, int, int]:
    """(top, left, rows, cols) where LabelMe pastes a mask shape's bitmap: up to 6 the corners truncated,
    ends included; from 7 the corners rounded, and the bitmap's own size when they are not whole."""
    (x1, y1), (x2, y2) = points
    if rules < 7:
        (x1, y1), (x2, y2) = (int(x1), int(y1)), (int(x2), int(y2))  # LabelMe: astype(int)
        return y1, x1, y2 - y1 + 1, x2 - x1 + 1
    whole = all(float(c).is_integer() for c in (x1, y1, x2, y2))
    (x1, y1), (x2, y2) = np.round(np.asarray(points, dtype=np.float64)).astype(int).tolist()
    if whole or bitmap_shape is None:
        return y1, x1, y2 - y1 + 1, x2 - x1 + 1
    return y1, x1, bitmap_shape[0], bitmap_shape[1]


def shape_mask(shape: Shape, height: int, width: int, rules: int = 5) -> np.ndarray:
    """bool [height, width]: the pixels ``shape`` covers, exactly as LabelMe's ``shape_to_mask`` of
    major version ``rules`` (see ``rules_of``).

    Raises ValueError for a shape LabelMe cannot rasterise (``points``, unknown types, wrong point
    counts, a mask shape without a fitting bitmap).
    """
    _check_rasterisable(shape, height, width, rules)
    if shape.shape_type == "mask":
        top, left, rows, cols = mask_box(shape.points, shape.mask.shape, rules)
        covered = np.zeros((height, width), dtype=bool)
        y0, y1, x0, x1 = max(top, 0), min(top + rows, height), max(left, 0), min(left + cols, width)
        if y0 < y1 and x0 < x1:  # LabelMe 7 clips to the image; up to 6 the box lies inside it
            covered[y0:y1, x0:x1] = shape.mask[y0 - top : y1 - top, x0 - left : x1 - left]
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
    elif kind == "linestrip" and rules >= 7:
        draw.line(xy, fill=1, width=LINE_WIDTH, joint="curve")
    elif kind in ("line", "linestrip"):
        draw.line(xy, fill=1, width=LINE_WIDTH)
    elif kind == "point":
        (cx, cy) = xy[0]
        r = POINT_RADIUS
        draw.ellipse(((cx - r, cy - r), (cx + r, cy + r)), outline=1, fill=1)
    else:  # polygon, oriented_rectangle
        draw.polygon(xy, outline=1, fill=1)
    return np.asarray(canvas, dtype=bool)


def visible_pixels(shapes: Sequence[Shape], height: int, width: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per shape, bool [height, width]: the pixels it covers, and the pixels it shows in the file as LabelMe
    paints it (later shapes over earlier ones)."""
    owner = np.full((height, width), -1, dtype=np.int64)
    covered = []
    for k, shape in enumerate(shapes):
        covered.append(shape_mask(shape, height, width))
        owner[covered[-1]] = k
    return covered, [owner == k for k in range(len(shapes))]


def rasterize(
    shapes: Annotation | Sequence[Shape | Mapping[str, Any]],
    height: int,
    width: int,
    classes: Sequence[str],
    rules: int | None = None,
) -> np.ndarray:
    """uint8 [height, width] class ids: shapes painted in order, later over earlier, like LabelMe's
    ``shapes_to_label``; uncovered pixels are 0 (background), ``__ignore__`` shapes paint ``IGNORE``.

    ``shapes`` is an ``Annotation`` (from ``read_labelme``), or a list of ``Shape`` or of shape dicts in
    the JSON's layout (e.g. from ``mask_to_polygons``). ``rules``: the LabelMe major version to follow
    (default: the annotation's own, see ``rules_of``; 5 for a list). Raises ValueError for an unknown
    label or a shape that cannot be rasterised (files are checked for both by ``read_labelme``).
    """
    values = label_values(classes)
    if isinstance(shapes, Annotation):
        rules = rules_of(shapes.version) if rules is None else rules
        shapes = shapes.shapes
    rules = 5 if rules is None else rules
    label = np.zeros((height, width), dtype=np.uint8)  # [H, W]
    for index, item in enumerate(shapes):
        shape = item if isinstance(item, Shape) else shape_from_mapping(item)
        if shape.label not in values:
            raise ValueError(f"shape {index}: unknown label {shape.label!r}; known: {sorted(values)}")
        label[shape_mask(shape, height, width, rules)] = values[shape.label]
    return label


def _check_rasterisable(shape: Shape, height: int, width: int, rules: int) -> None:
    kind = shape.shape_type
    if kind not in RASTERISABLE_TYPES:
        raise ValueError(f"shape_type {kind!r} cannot be rasterised (LabelMe rasterises {RASTERISABLE_TYPES})")
    n = len(shape.points)
    if kind in EXACT_POINTS and n != EXACT_POINTS[kind]:
        raise ValueError(f"a {kind} takes exactly {EXACT_POINTS[kind]} points, got {n}")
    if kind in MIN_POINTS and n < MIN_POINTS[kind]:
        raise ValueError(f"a {kind} takes at least {MIN_POINTS[kind]} points, got {n}")
    if kind == "mask":
        problem = mask_problem(shape.points, None if shape.mask is None else shape.mask.shape, height, width, rules)
        if problem:
            raise ValueError(problem)


def mask_problem(points: Sequence[tuple[float, float]], bitmap_shape: tuple[int, int] | None, height: int,
                 width: int, rules: int) -> str | None:
    """Why LabelMe (major ``rules``) cannot paste a mask bitmap of ``bitmap_shape`` at ``points``, or None."""
    if bitmap_shape is None:
        return "a mask shape needs its bitmap"
    top, left, rows, cols = mask_box(points, bitmap_shape, rules)
    if rules < 7 and not (rows > 0 and cols > 0 and 0 <= left and left + cols <= width and 0 <= top
                          and top + rows <= height):
        return f"the mask box ({left}, {top})-({left + cols - 1}, {top + rows - 1}) is not a box inside the {width}x{height} image"
    if rows <= 0 or cols <= 0:
        return f"the mask box ({left}, {top})-({left + cols - 1}, {top + rows - 1}) is empty"
    if tuple(bitmap_shape) != (rows, cols):
        return (f"the mask bitmap is {bitmap_shape[0]}x{bitmap_shape[1]} but its box is {rows}x{cols} (rows x cols): "
                "it does not fit")
    return None
