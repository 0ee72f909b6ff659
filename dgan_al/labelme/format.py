"""The LabelMe JSON format: its vocabulary, our in-memory form of it, and the error a bad file gives.

A LabelMe annotation file (keys camelCase in every LabelMe version) looks like::

    {"version": "5.5.0", "flags": {"done": false, "unrealistic": false},
     "shapes": [{"label": "eye", "points": [[x, y], ...], "group_id": null, "description": "",
                 "shape_type": "polygon", "flags": {}, "mask": null}, ...],
     "imagePath": "img_000123.png", "imageData": null, "imageHeight": 256, "imageWidth": 256,
     ...any extra keys (LabelMe keeps unknown keys when it saves)...}

Coordinates are image pixels with pixel (row i, column j) at (x=j, y=i). ``imagePath`` is relative to
the JSON's folder. A ``mask`` shape stores a base64 PNG (8-bit, 0/1) covering the box between its two
points, both ends included.

Label convention (LabelMe's ``labels.txt`` / ``labelme2voc``): ``__ignore__`` marks pixels to ignore
(value ``IGNORE`` = 255 in our masks), ``_background_`` is class 0. A workspace's ``classes[0]`` is its
background; it is written ``_background_`` in the labels file, and either name reads as class 0.

Keypoints (only in a workspace with ``[keypoints] names``): a ``point`` shape labelled with a keypoint
name, each name at most once per image; such points paint nothing into the mask (without keypoint
names a point is a disc of its class, as in LabelMe). The image flag ``keypoints``, ticked by the person,
says the image is annotated for keypoints: every name without a point is then *not visible* (COCO v=0);
unticked, the image trains the parts only. The shape flag ``occluded`` on a point marks a keypoint that
is there but hidden (COCO v=1): training treats it as present, PCK leaves it out of the visible set.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import PIL.Image

from dgan_al.errors import UserError

IGNORE = 255  # mask value of pixels to leave out of training (label "__ignore__")
IGNORE_LABEL = "__ignore__"
BACKGROUND_LABEL = "_background_"
MAX_CLASSES = 255  # class ids 0..254; 255 is IGNORE

# image-level flags of an exported file: the annotator ticks "done" when the image is finished (only
# done files count as annotated) or "unrealistic" to skip a bad GAN image.
DONE_FLAG = "done"
UNREALISTIC_FLAG = "unrealistic"
EXPORT_FLAGS = (DONE_FLAG, UNREALISTIC_FLAG)
# image flag of a keypoint workspace: ticked = every visible keypoint is placed (a missing one is not visible)
KEYPOINTS_FLAG = "keypoints"
KEYPOINT_EXPORT_FLAGS = (*EXPORT_FLAGS, KEYPOINTS_FLAG)
# shape flag of a keypoint point: there but hidden (COCO v=1)
OCCLUDED_FLAG = "occluded"
# COCO keypoint visibility: not labelled / labelled but hidden / labelled and visible
NOT_VISIBLE, OCCLUDED, VISIBLE = 0, 1, 2
# Shape flag of a pre-filled polygon whose ensemble members disagree: look here first (any label may carry it)
CHECK_FLAG = "check"

# Shape types LabelMe knows, and how many points each takes (None = "at least" given by MIN_POINTS).
SHAPE_TYPES = (
    "polygon", "rectangle", "circle", "line", "linestrip", "point", "points", "oriented_rectangle", "mask",
)  # fmt: skip
EXACT_POINTS = {"rectangle": 2, "circle": 2, "line": 2, "point": 1, "oriented_rectangle": 4, "mask": 2}
MIN_POINTS = {"polygon": 3, "linestrip": 2, "points": 1}
# "points" (a bag of clicks) has no area: LabelMe's shapes_to_label refuses it, and so do we.
RASTERISABLE_TYPES = tuple(t for t in SHAPE_TYPES if t != "points")

# Keys with a meaning in LabelMe; everything else is kept as "extra" (LabelMe preserves unknown keys).
TOP_LEVEL_KEYS = ("version", "flags", "shapes", "imagePath", "imageData", "imageHeight", "imageWidth")
SHAPE_KEYS = ("label", "points", "group_id", "description", "shape_type", "flags", "mask")

# PIL modes LabelMe shows (others it refuses, apart from TIFFs it converts itself)
DISPLAYABLE_MODES = ("1", "L", "P", "RGB", "RGBA", "LA", "PA")


@dataclass
class Shape:
    """One LabelMe shape, validated.

    ``points`` are (x, y) pairs exactly as in the file (ints or floats; rasterising with the very same
    numbers is what makes our masks equal LabelMe's). ``mask`` is the decoded bool [h, w] bitmap of a
    ``mask`` shape (None for other types). ``extra`` holds the shape's unknown keys.
    """

    label: str
    points: list[tuple[float, float]]
    shape_type: str = "polygon"
    group_id: int | None = None
    description: str = ""
    flags: dict[str, bool] = field(default_factory=dict)
    mask: np.ndarray | None = None  # bool [y2 - y1 + 1, x2 - x1 + 1] for shape_type "mask"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Annotation:
    """A validated LabelMe file.

    ``height`` x ``width`` is the image as LabelMe shows it (after EXIF orientation); ``orientation`` is
    the EXIF orientation LabelMe applied to the image file (1 when none). ``image_data`` holds the image
    bytes when the JSON embeds them (``imageData`` not null), else None. ``extra`` are the unknown
    top-level keys (our metadata: latent id, round, scores); ``raw`` the parsed JSON as read.
    """

    json_path: Path
    image_path: Path
    height: int
    width: int
    flags: dict[str, bool]
    shapes: list[Shape]
    extra: dict[str, Any]
    raw: dict[str, Any]
    version: str | None = None
    orientation: int = 1
    image_data: bytes | None = None
    keypoints: list[Shape] = field(default_factory=list)  # keypoint points, in file order (not in ``shapes``)

    @property
    def keypoints_ticked(self) -> bool:
        """The annotator ticked ``keypoints``: every visible keypoint of the image is placed."""
        return self.flags.get(KEYPOINTS_FLAG, False)

    def keypoint_table(self, names: Sequence[str]) -> dict[str, list[float]]:
        """``name -> [x, y, v]`` for every name, COCO's way: v = ``VISIBLE`` (2), ``OCCLUDED`` (1, the
        point's ``occluded`` flag) or ``NOT_VISIBLE`` (0, no point; then x = y = 0). Coordinates as in the
        file (pixel centres at integers, as LabelMe and COCO)."""
        placed = {shape.label: shape for shape in self.keypoints}
        table = {}
        for name in names:
            shape = placed.get(name)
            if shape is None:
                table[name] = [0, 0, NOT_VISIBLE]
            else:
                (x, y), = shape.points
                table[name] = [x, y, OCCLUDED if shape.flags.get(OCCLUDED_FLAG) else VISIBLE]
        return table

    @property
    def done(self) -> bool:
        """The annotator ticked ``done``: the image is finished."""
        return self.flags.get(DONE_FLAG, False)

    @property
    def unrealistic(self) -> bool:
        """The annotator ticked ``unrealistic``: skip this image."""
        return self.flags.get(UNREALISTIC_FLAG, False)


class LabelMeError(UserError):
    """A LabelMe file we refuse, with every problem found in it (``problems``), not only the first.

    ``str(err)`` is one line: the file, how many problems, then each problem (the first
    ``MAX_LISTED``; ``problems`` keeps them all).
    """

    MAX_LISTED = 20

    def __init__(self, path: str | Path, problems: Sequence[str]):
        self.problems = list(problems)
        listed = "; ".join(f"[{i + 1}] {p}" for i, p in enumerate(self.problems[: self.MAX_LISTED]))
        if len(self.problems) > self.MAX_LISTED:
            listed += f"; ... and {len(self.problems) - self.MAX_LISTED} more"
        count = len(self.problems)
        message = f"bad LabelMe file, {count} problem{'s' if count != 1 else ''}: {listed}"
        super().__init__(message, path=path, fix="correct the file in LabelMe (or by hand) and run again")


def label_values(classes: Sequence[str]) -> dict[str, int]:
    """The mask value of every label a file may use: ``classes[i]`` -> i, ``_background_`` -> 0,
    ``__ignore__`` -> ``IGNORE``.

    ``classes[0]`` is the background. Raises ValueError for a class list we cannot encode in uint8 or
    that reuses LabelMe's reserved names for other classes.
    """
    classes = list(classes)
    if not classes:
        raise ValueError("classes is empty: expected the background class first, then the parts")
    if len(classes) > MAX_CLASSES:
        raise ValueError(f"{len(classes)} classes do not fit a uint8 mask (at most {MAX_CLASSES})")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes has duplicates: {classes}")
    if IGNORE_LABEL in classes or BACKGROUND_LABEL in classes[1:]:
        raise ValueError(f"classes may not use {IGNORE_LABEL!r}, nor {BACKGROUND_LABEL!r} for a part: {classes}")
    values = {name: i for i, name in enumerate(classes)}
    values[BACKGROUND_LABEL] = 0
    values[IGNORE_LABEL] = IGNORE
    return values


def shape_from_mapping(obj: Mapping[str, Any]) -> Shape:
    """A Shape from a dict in the JSON's layout (``mask`` a bool array, a base64 PNG or None).

    For shapes our own code builds (pre-fill polygons): nothing is validated here (a missing key is a
    KeyError); ``rasterize`` and ``write_labelme`` check that the shape can be drawn. Files go through
    ``read_labelme``.
    """
    known = set(SHAPE_KEYS)
    mask = obj.get("mask")
    if isinstance(mask, str):
        mask = decode_mask(mask)
    return Shape(
        label=obj["label"],
        points=[(p[0], p[1]) for p in obj["points"]],
        shape_type=obj.get("shape_type") or "polygon",
        group_id=obj.get("group_id"),
        description=obj.get("description") or "",
        flags=dict(obj.get("flags") or {}),
        mask=None if mask is None else np.asarray(mask, dtype=bool),
        extra={k: v for k, v in obj.items() if k not in known},
    )


def encode_mask(mask: np.ndarray) -> str:
    """A bool [h, w] bitmap as LabelMe stores it: base64 of an 8-bit grayscale PNG with values 0/1."""
    buffer = io.BytesIO()
    PIL.Image.fromarray(np.asarray(mask, dtype=bool).astype(np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def open_mask_png(text: str) -> PIL.Image.Image:
    """The PNG (or other image) inside a shape's ``mask`` string, opened lazily (size known, pixels not
    decoded yet). Decoded like LabelMe: base64 that skips stray characters. Raises ValueError (bad
    base64) or OSError (not an image)."""
    return PIL.Image.open(io.BytesIO(base64.b64decode(text)))


def decode_mask(text: str) -> np.ndarray:
    """bool [h, w] from a shape's ``mask`` string; like LabelMe, every non-zero pixel is inside."""
    return np.asarray(open_mask_png(text)).astype(bool)
