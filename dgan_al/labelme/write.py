"""Write images and LabelMe files for annotation, and the labels file LabelMe is started with.

An exported image is ``<stem>.png`` (PNG, no EXIF, so nothing turns it) next to ``<stem>.json``, which
has ``imageData: null``, ``imagePath: "<stem>.png"``, every shape field LabelMe writes, the image flags
``done`` and ``unrealistic`` (both false on export) and our metadata (latent id, round, scores) as extra
top-level keys, which LabelMe keeps when it saves. Every file is written atomically (a temporary file
in the same folder, then ``os.replace``): a crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import PIL.Image

from dgan_al.files import atomic_write_bytes
from dgan_al.labelme.format import (
    BACKGROUND_LABEL,
    EXPORT_FLAGS,
    IGNORE_LABEL,
    SHAPE_KEYS,
    TOP_LEVEL_KEYS,
    Shape,
    encode_mask,
    label_values,
    shape_from_mapping,
)
from dgan_al.labelme.rasterize import shape_mask

# The format version we write. LabelMe 5 warns about files from another major version and LabelMe 6
# ignores the field, so we write a 5.x version: every reader we support opens it quietly.
FORMAT_VERSION = "5.5.0"


def write_labelme(
    json_path: str | Path,
    image: np.ndarray | None,
    shapes: Sequence[Shape | Mapping[str, Any]] = (),
    flags: Mapping[str, bool] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``<stem>.png`` (from ``image``, uint8 [H, W, 3]) and the LabelMe file ``json_path`` beside it.

    ``image=None`` keeps the PNG already next to the JSON (e.g. annotating an exported image again) and
    takes the size from it. ``flags`` defaults to ``done`` and ``unrealistic`` both false. ``extra`` are
    top-level keys of ours (JSON-serialisable; LabelMe's own keys are refused). Shapes are ``Shape`` or
    dicts in the JSON's layout; each is checked to rasterise on this image. Returns the PNG's path.
    The PNG is written before the JSON, so a JSON never names a missing image.
    """
    json_path = Path(json_path)
    if json_path.suffix != ".json":
        raise ValueError(f"a LabelMe file ends in .json, got {json_path}")
    image_path = json_path.with_suffix(".png")
    if image is not None:
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
    else:
        with PIL.Image.open(image_path) as existing:
            width, height = existing.size
    flags = {name: False for name in EXPORT_FLAGS} if flags is None else dict(flags)
    if not all(isinstance(k, str) and isinstance(v, bool) for k, v in flags.items()):
        raise ValueError(f"flags must map names to bools, got {flags}")
    extra = dict(extra or {})
    reserved = sorted(set(extra) & set(TOP_LEVEL_KEYS))
    if reserved:
        raise ValueError(f"extra keys may not be LabelMe's own keys: {reserved}")

    shape_objs = [_shape_json(s, height, width) for s in shapes]
    payload = {
        "version": FORMAT_VERSION,
        "flags": flags,
        "shapes": shape_objs,
        "imagePath": image_path.name,
        "imageData": None,
        "imageHeight": height,
        "imageWidth": width,
        **extra,
    }
    text = json.dumps(payload, ensure_ascii=False, indent=2, allow_nan=False) + "\n"

    json_path.parent.mkdir(parents=True, exist_ok=True)
    if image is not None:
        buffer = io.BytesIO()
        PIL.Image.fromarray(image).save(buffer, format="PNG")  # fresh image: no EXIF, no orientation
        atomic_write_bytes(image_path, buffer.getvalue())
    atomic_write_bytes(json_path, text.encode("utf-8"))
    return image_path


def write_labels_file(path: str | Path, classes: Sequence[str], keypoints: Sequence[str] = ()) -> Path:
    """Write LabelMe's labels file: ``__ignore__``, ``_background_``, ``classes[1:]``, then the keypoint
    names (labels of point shapes), one a line.

    ``classes[0]`` is the workspace's background and is written ``_background_``. Returns the path.
    """
    label_values(classes)  # refuses class lists LabelMe's convention cannot carry
    lines = [IGNORE_LABEL, BACKGROUND_LABEL, *classes[1:], *keypoints]
    bad = [name for name in lines if not name.strip() or name != name.strip() or "\n" in name or "," in name]
    if bad:
        raise ValueError(f"class names must be non-empty single-line text without commas or edge spaces: {bad}")
    every = lines if classes[0] in lines else [*lines, classes[0]]
    if len(set(every)) != len(every):  # classes are unique (label_values): a keypoint repeats or is a class
        raise ValueError(f"a keypoint name repeats or equals a class: {list(keypoints)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return path


def shape_to_json(shape: Shape) -> dict[str, Any]:
    """A shape in the file's layout, keys in LabelMe's order (its unknown keys first, as LabelMe does)."""
    reserved = sorted(set(shape.extra) & set(SHAPE_KEYS))
    if reserved:
        raise ValueError(f"shape extra keys may not be LabelMe's own keys: {reserved}")
    return {
        **shape.extra,
        "label": shape.label,
        "points": [[_number(x), _number(y)] for x, y in shape.points],
        "group_id": shape.group_id,
        "description": shape.description,
        "shape_type": shape.shape_type,
        "flags": dict(shape.flags),
        "mask": None if shape.mask is None else encode_mask(shape.mask),
    }


def _shape_json(item: Shape | Mapping[str, Any], height: int, width: int) -> dict[str, Any]:
    shape = item if isinstance(item, Shape) else shape_from_mapping(item)
    if not all(math.isfinite(c) for point in shape.points for c in point):
        raise ValueError(f"shape {shape.label!r} has non-finite points")
    shape_mask(shape, height, width)  # refuses what LabelMe could not rasterise
    return shape_to_json(shape)


def _number(value: Any) -> int | float:
    """A coordinate as a plain JSON number (numpy scalars become Python ones, ints stay ints)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    return float(value)
