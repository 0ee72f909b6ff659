"""Read a LabelMe JSON file strictly: every field checked, every problem reported at once.

``read_labelme(json_path, classes)`` returns an ``Annotation`` whose shapes are all rasterisable, or
raises ``LabelMeError`` listing every problem of the file (a file with one typo should cost one round
trip to LabelMe, not one per problem). We refuse at least everything LabelMe itself refuses to open,
and more: unknown labels (LabelMe's ``--validate-label`` only checks labels typed in its dialog, so
typos in pre-filled or hand-edited files get through), non-finite or far-away coordinates, wrong point
counts, a size that does not match the image, an ``imagePath`` that leaves the JSON's folder or that
LabelMe cannot open as written (``sub/../x.png`` without a folder ``sub``; LabelMe itself writes
``os.path.relpath(image, json_folder)``).

With ``keypoints`` (a workspace's keypoint names) a ``point`` labelled with one of them is a keypoint
(``Annotation.keypoints``, see ``labelme.format``): each name at most once, on the image (``KEYPOINT_SLACK``);
a class label on a point or a keypoint label on another shape is refused. Without, points are discs.

The image is measured the way LabelMe shows it: a file's EXIF orientation is applied exactly as
LabelMe's ``apply_exif_orientation`` does (only for formats PIL reads EXIF from through ``_getexif``,
orientations 2..8), so ``imageHeight``/``imageWidth`` and all coordinates refer to the turned image.
Embedded ``imageData`` is measured as stored (LabelMe applies no orientation to it).
"""

from __future__ import annotations

import base64
import difflib
import io
import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Sequence

import numpy as np
import PIL.Image

from dgan_al.errors import quote
from dgan_al.labelme.rasterize import mask_problem, rules_of
from dgan_al.labelme.format import (
    DISPLAYABLE_MODES,
    EXACT_POINTS,
    MIN_POINTS,
    SHAPE_KEYS,
    SHAPE_TYPES,
    TOP_LEVEL_KEYS,
    Annotation,
    LabelMeError,
    Shape,
    label_values,
    open_mask_png,
)

EXIF_ORIENTATION_TAG = 0x0112
# how far outside the image a point may lie, in image sizes (LabelMe keeps points on the image; a
# little slack accepts other tools' files, the bound keeps absurd values away from the rasteriser)
MAX_OUTSIDE = 1.0
# how far outside the image a keypoint may lie, in pixels: LabelMe keeps every vertex it draws, of any
# shape, within [0, W] x [0, H]; half a pixel more on each side admits tools whose image edge is at -0.5
KEYPOINT_SLACK = 0.5
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, struct.error, PIL.Image.DecompressionBombError)


def read_labelme(json_path: str | Path, classes: Sequence[str], keypoints: Sequence[str] = ()) -> Annotation:
    """Read and validate one LabelMe file against the workspace's ``classes`` (``classes[0]`` = background)
    and keypoint names (``keypoints``; none: every point is a disc of its class).

    Raises ``LabelMeError`` (a ``UserError``) naming the file and listing every problem found.
    """
    json_path = Path(json_path)
    values = label_values(classes)
    raw = _load_json_object(json_path)
    problems: list[str] = []

    version = raw.get("version")
    if version is not None and not isinstance(version, str):
        problems.append(f"version must be text like \"5.5.0\", got {quote(version)}")
        version = None
    flags = _read_flags(raw.get("flags"), "flags", problems)
    image = _read_image_facts(json_path, raw, problems)
    height = _read_size(raw, "imageHeight", image.height if image else None, problems)
    width = _read_size(raw, "imageWidth", image.width if image else None, problems)
    if image and height is not None and width is not None and (height, width) != (image.height, image.width):
        turned = f" after EXIF orientation {image.orientation}" if image.orientation != 1 else ""
        problems.append(
            f"imageHeight x imageWidth is {height}x{width} but the image {image.path.name} is "
            f"{image.height}x{image.width}{turned} (the JSON belongs to another image, or the image was replaced)"
        )
    shapes = _read_shapes(raw, height, width, values, problems, rules_of(version), tuple(keypoints))
    keypoint_shapes = [shape for shape in shapes if shape.label in keypoints]

    if problems:
        raise LabelMeError(json_path, problems)
    assert image is not None and height is not None and width is not None
    return Annotation(
        json_path=json_path,
        image_path=image.path,
        height=height,
        width=width,
        flags=flags,
        shapes=[shape for shape in shapes if shape.label not in keypoints],
        extra={k: v for k, v in raw.items() if k not in TOP_LEVEL_KEYS},
        raw=raw,
        version=version,
        orientation=image.orientation,
        image_data=image.data,
        keypoints=keypoint_shapes,
    )


def read_image(annotation: Annotation) -> np.ndarray:
    """The annotated image as LabelMe shows it: uint8 [H, W, 3] RGB, EXIF orientation applied."""
    try:
        if annotation.image_data is not None:
            image = PIL.Image.open(io.BytesIO(annotation.image_data))
        else:
            image = PIL.Image.open(annotation.image_path)
        with image:
            turned = apply_orientation(image, annotation.orientation).convert("RGB")
            pixels = np.asarray(turned)  # [H, W, 3]
    except _DECODE_ERRORS as err:
        raise LabelMeError(annotation.json_path, [f"cannot read the image {annotation.image_path}: {err}"]) from None
    if pixels.shape[:2] != (annotation.height, annotation.width):
        raise LabelMeError(
            annotation.json_path,
            [f"the image {annotation.image_path.name} changed size since it was read: {pixels.shape[:2]}"],
        )
    return pixels


EMBEDDED_IMAGE_FIX = ("re-open {name} from its round folder in LabelMe and annotate it there, or set imageData to "
                      "null, and run again")


def embedded_image_problem(annotation: Annotation, image_path: str | Path) -> str | None:
    """When the file embeds its image (``imageData``), LabelMe shows those pixels and not the image
    file's, so the shapes were drawn on them: None when they are the pixels of ``image_path`` (decoded
    to RGB, compared exactly) or nothing is embedded, else what differs (the fix: ``EMBEDDED_IMAGE_FIX``)."""
    if annotation.image_data is None:
        return None
    name = Path(image_path).name
    try:
        with PIL.Image.open(io.BytesIO(annotation.image_data)) as embedded:
            shown = np.asarray(embedded.convert("RGB"))  # [h, w, 3] as LabelMe shows it (no EXIF turn)
        with PIL.Image.open(image_path) as exported:
            expected = np.asarray(apply_orientation(exported, exif_orientation(exported)).convert("RGB"))
    except _DECODE_ERRORS as err:
        return f"cannot compare its embedded image (imageData) with {name}: {err}"
    if shown.shape == expected.shape and np.array_equal(shown, expected):
        return None
    differs = (f"is {shown.shape[1]}x{shown.shape[0]}, {name} is {expected.shape[1]}x{expected.shape[0]}"
               if shown.shape != expected.shape else
               f"differs from {name} in {int(np.any(shown != expected, axis=2).sum())} pixels")
    return f"its embedded image (imageData) {differs}, so its shapes were drawn on another image"


def exif_orientation(image: PIL.Image.Image) -> int:
    """The EXIF orientation (1..8) LabelMe applies to ``image``, 1 when it applies none.

    LabelMe reads EXIF through PIL's ``_getexif`` (JPEG, PNG, WebP, MPO); formats without it are shown
    unturned even if they carry an orientation tag, so we use the very same reader. Raises OSError /
    ValueError / SyntaxError for EXIF data PIL cannot parse (LabelMe fails on those files too).
    """
    read_exif = getattr(image, "_getexif", None)
    if read_exif is None:
        return 1
    exif = read_exif()
    if not exif:
        return 1
    value = exif.get(EXIF_ORIENTATION_TAG, 1)
    return int(value) if value in range(1, 9) else 1


def apply_orientation(image: PIL.Image.Image, orientation: int) -> PIL.Image.Image:
    """Turn ``image`` as LabelMe does for EXIF ``orientation`` (same transposes, same order)."""
    T = PIL.Image.Transpose
    steps = {
        2: [T.FLIP_LEFT_RIGHT],
        3: [T.ROTATE_180],
        4: [T.FLIP_TOP_BOTTOM],
        5: [T.ROTATE_270, T.FLIP_LEFT_RIGHT],
        6: [T.ROTATE_270],
        7: [T.ROTATE_90, T.FLIP_LEFT_RIGHT],
        8: [T.ROTATE_90],
    }.get(orientation, [])
    for step in steps:
        image = image.transpose(step)
    return image


# ---------------------------------------------------------------------------------------------------
# the pieces of the file


def _load_json_object(json_path: Path) -> dict[str, Any]:
    """The file's top-level JSON object; a file that is not one is refused at once (nothing else to check)."""
    try:
        text = json_path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise LabelMeError(json_path, ["file not found"]) from None
    except OSError as err:
        raise LabelMeError(json_path, [f"cannot read the file: {err.strerror or err}"]) from None
    except UnicodeDecodeError as err:
        raise LabelMeError(json_path, [f"not UTF-8 text (byte {err.start}); LabelMe writes UTF-8 JSON"]) from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise LabelMeError(json_path, [f"not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"]) from None
    except RecursionError:
        raise LabelMeError(json_path, ["not valid JSON: nested too deeply"]) from None
    if not isinstance(raw, dict):
        raise LabelMeError(json_path, [f"the file must hold one JSON object {{...}}, got {type(raw).__name__}"])
    return raw


def _read_flags(value: Any, where: str, problems: list[str]) -> dict[str, bool]:
    """A ``flags`` field: missing or null means none; otherwise a mapping of names to true/false."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{where} must be an object of name: true/false, got {quote(value)}")
        return {}
    bad = {k: v for k, v in value.items() if not isinstance(v, bool)}
    if bad:
        problems.append(f"{where} values must be true or false, got {quote(bad)}")
        return {}
    return dict(value)


def _read_size(raw: dict, key: str, actual: int | None, problems: list[str]) -> int | None:
    hint = f" (the image's is {actual})" if actual is not None else ""
    if key not in raw:
        problems.append(f"{key} is missing{hint}")
        return None
    value = raw[key]
    if not _is_int(value) or value <= 0:
        problems.append(f"{key} must be a positive whole number, got {quote(value)}{hint}")
        return None
    return value


@dataclass
class _ImageFacts:
    path: Path  # the image file the JSON names (resolved)
    height: int  # as LabelMe shows it (after EXIF orientation)
    width: int
    orientation: int  # EXIF orientation LabelMe applies, 1 = none
    data: bytes | None  # embedded image bytes (imageData), None when the file is used


def _read_image_facts(json_path: Path, raw: dict, problems: list[str]) -> _ImageFacts | None:
    """Check ``imagePath`` and ``imageData`` and measure the image; None when that is impossible."""
    image_path = _resolve_image_path(json_path, raw, problems)
    if "imageData" not in raw:
        problems.append('imageData is missing (LabelMe refuses such files); add "imageData": null')
        return None
    data_text = raw["imageData"]
    if image_path is None:
        return None
    data: bytes | None = None
    if data_text is None:
        try:
            found = image_path.is_file()
        except OSError as err:  # e.g. a name longer than the file system allows
            problems.append(f"imagePath {quote(raw['imagePath'])} cannot be used: {err.strerror or err}")
            return None
        if not found:
            problems.append(f"the image {quote(raw['imagePath'])} named by imagePath does not exist "
                            f"({quote(str(image_path), 200)})")
            return None
        source: Any = image_path
    elif isinstance(data_text, str):
        try:
            data = base64.b64decode(data_text)
        except ValueError as err:
            problems.append(f"imageData is not base64 text: {err}; set it to null to use the image file")
            return None
        source = io.BytesIO(data)
    else:
        problems.append(f"imageData must be null or base64 text, got {quote(data_text)}")
        return None

    what = f"the image {image_path.name}" if data is None else "the image in imageData"
    try:
        with PIL.Image.open(source) as image:
            if image.mode not in DISPLAYABLE_MODES:
                problems.append(f"{what} has pixel mode {image.mode}, which LabelMe cannot show; save it as RGB PNG")
                return None
            orientation = exif_orientation(image) if data is None else 1
            width, height = image.size
    except _DECODE_ERRORS as err:
        problems.append(f"{what} cannot be read as an image: {err}")
        return None
    if orientation in (5, 6, 7, 8):  # a quarter turn swaps the sides
        width, height = height, width
    return _ImageFacts(path=image_path, height=height, width=width, orientation=orientation, data=data)


def _resolve_image_path(json_path: Path, raw: dict, problems: list[str]) -> Path | None:
    """``imagePath`` as a path inside the JSON's folder, or None (with the problem) when it is not one."""
    if "imagePath" not in raw:
        problems.append("imagePath is missing (the image file name, relative to this JSON's folder)")
        return None
    text = raw["imagePath"]
    if not isinstance(text, str) or not text or "\x00" in text:
        problems.append(f"imagePath must be a file name relative to this JSON's folder, got {quote(text)}")
        return None
    windows = PureWindowsPath(text)  # LabelMe reads "\" as a separator on every OS
    posix = windows.as_posix()
    if windows.anchor or PurePosixPath(posix).is_absolute():
        problems.append(
            f"imagePath {quote(text)} is absolute; it must be relative to this JSON's folder (e.g. just the file name)"
        )
        return None
    folder = json_path.parent
    try:
        resolved = (folder / posix).resolve()
        inside = resolved.is_relative_to(folder.resolve())
    except (OSError, RuntimeError) as err:  # RuntimeError: a symlink loop
        problems.append(f"imagePath {quote(text)} cannot be resolved: {getattr(err, 'strerror', None) or err}")
        return None
    if not inside:
        problems.append(f"imagePath {quote(text)} leaves this JSON's folder; the image must be next to the JSON")
        return None
    if ".." in PurePosixPath(posix).parts and _exists(resolved) and not _exists(folder / posix):
        # LabelMe opens the path as written, which the OS resolves folder by folder: "sub/.." needs a "sub/"
        plain = PurePosixPath(os.path.relpath(resolved, folder.resolve())).as_posix()
        problems.append(f"imagePath {quote(text)} goes through '..' after a folder that does not exist, so LabelMe "
                        f"cannot open it: set it to {quote(plain)}")
        return None
    return resolved


def _exists(path: Path) -> bool:
    """Whether the OS finds ``path`` as written (``..`` after a missing folder fails, as it does for LabelMe)."""
    try:
        return os.path.exists(os.fspath(path))
    except (OSError, ValueError):
        return False


def _read_shapes(raw: dict, height: int | None, width: int | None, values: dict[str, int],
                 problems: list[str], rules: int, keypoints: tuple[str, ...] = ()) -> list[Shape]:  # fmt: skip
    if "shapes" not in raw:
        problems.append('shapes is missing; an image without annotations has "shapes": []')
        return []
    objs = raw["shapes"]
    if not isinstance(objs, list):
        problems.append(f"shapes must be a list, got {quote(objs)}")
        return []
    shapes = []
    placed: dict[str, list[int]] = {}  # keypoint name -> indices of its points
    for index, obj in enumerate(objs):
        shape = _read_shape(obj, index, height, width, values, problems, rules, keypoints)
        if shape is not None:
            shapes.append(shape)
            if shape.label in keypoints:
                placed.setdefault(shape.label, []).append(index)
    for name, indices in placed.items():
        if len(indices) > 1:
            problems.append(f"keypoint {name!r} is placed {len(indices)} times (shapes "
                            f"{', '.join(map(str, indices))}); an image has each keypoint at most once: delete "
                            "all but one")
    return shapes


def _read_shape(obj: Any, index: int, height: int | None, width: int | None, values: dict[str, int],
                problems: list[str], rules: int, keypoints: tuple[str, ...] = ()) -> Shape | None:  # fmt: skip
    """One shape, or None after appending its problems (all of them)."""
    if not isinstance(obj, dict):
        problems.append(f"shape {index} must be an object, got {quote(obj)}")
        return None
    found: list[str] = []

    label = obj.get("label")
    where = f"shape {index}"
    if "label" not in obj:
        found.append("has no label")
    elif not isinstance(label, str):
        found.append(f"label must be text, got {quote(label)}")
    else:
        if label in values or label in keypoints:
            where = f"shape {index} ({label!r})"
        elif keypoints:  # a point's label is most likely a keypoint name, any other shape's a class
            first = keypoints if obj.get("shape_type") == "point" else list(values)
            close = closest_label(label, first) or closest_label(label, [*values, *keypoints])
            hint = f"closest known label: {close!r}" if close else "neither a class nor a keypoint of this workspace"
            found.append(f"unknown label {quote(label, 40)} ({hint})")
        else:  # quoted once, here, and cut: a label may be any length
            close = closest_label(label, values)
            hint = f"closest known label: {close!r}" if close else "not a class of this workspace"
            found.append(f"unknown label {quote(label, 40)} ({hint})")

    shape_type = obj.get("shape_type")
    if "shape_type" not in obj:
        found.append("has no shape_type")
    elif shape_type not in SHAPE_TYPES or not isinstance(shape_type, str):
        found.append(f"unknown shape_type {quote(shape_type)} (LabelMe knows {', '.join(SHAPE_TYPES)})")
        shape_type = None  # the checks below that depend on the type are skipped
    elif shape_type == "points":
        found.append("shape_type 'points' has no area, LabelMe cannot turn it into a mask; redraw it as a polygon")

    points = _read_points(obj, shape_type, height, width, found)
    if keypoints and isinstance(label, str) and isinstance(shape_type, str):
        _check_keypoint(label, shape_type, points, height, width, values, keypoints, found)
    group_id = obj.get("group_id")
    if group_id is not None and not _is_int(group_id):
        found.append(f"group_id must be a whole number or null, got {quote(group_id)}")
    description = obj.get("description")
    if description is not None and not isinstance(description, str):
        found.append(f"description must be text or null, got {quote(description)}")
    flags = _read_flags(obj.get("flags"), "flags", found)
    mask = _read_mask(obj, shape_type, points, height, width, found, rules)

    if found:
        problems.extend(f"{where}: {p}" for p in found)
        return None
    assert points is not None
    return Shape(
        label=label,
        points=points,
        shape_type=shape_type,
        group_id=group_id,
        description=description or "",
        flags=flags,
        mask=mask,
        extra={k: v for k, v in obj.items() if k not in SHAPE_KEYS},
    )


def _check_keypoint(label: str, shape_type: str, points: list[tuple[float, float]] | None, height: int | None,
                    width: int | None, values: dict[str, int], keypoints: tuple[str, ...],
                    found: list[str]) -> None:  # fmt: skip
    """In a keypoint workspace: keypoint labels only on points, on the image; no class label on a point."""
    if label in keypoints and shape_type != "point":
        found.append(f"the keypoint label {label!r} is on a {shape_type}: a keypoint is a point shape; place it "
                     "with Create Point, or give this shape a part class")
    elif label in values and shape_type == "point":
        names = ", ".join(keypoints[:8]) + (", ..." if len(keypoints) > 8 else "")
        found.append(f"the class label {label!r} is on a point: in this workspace a point is a keypoint ({names}); "
                     "label it with a keypoint name, or draw the part as a polygon")
    elif label in keypoints and points is not None and height is not None and width is not None:
        (x, y), = points
        s = KEYPOINT_SLACK
        if not (-s <= x <= width + s and -s <= y <= height + s):
            found.append(f"the keypoint lies at {quote([x, y])}, outside the {width}x{height} image: place it on "
                         "the image, or delete it when the keypoint is not visible")


def _read_points(obj: dict, shape_type: Any, height: int | None, width: int | None,
                 found: list[str]) -> list[tuple[float, float]] | None:  # fmt: skip
    if "points" not in obj:
        found.append("has no points")
        return None
    value = obj["points"]
    if not isinstance(value, list) or not value:
        found.append(f"points must be a non-empty list of [x, y], got {quote(value)}")
        return None
    bad = [p for p in value if not (isinstance(p, list) and len(p) == 2 and all(_is_number(c) for c in p))]
    if bad:
        found.append(f"points must be [x, y] pairs of numbers; {len(bad)} are not, e.g. {quote(bad[0])}")
        return None
    points = [(p[0], p[1]) for p in value]
    not_finite = [p for p in points if not all(_is_finite(c) for c in p)]
    if not_finite:
        found.append(f"{len(not_finite)} points are not finite numbers, e.g. {quote(list(not_finite[0]))}")
        return None
    if height is not None and width is not None:
        far = [
            (x, y) for x, y in points
            if not (-MAX_OUTSIDE * width <= x <= (1 + MAX_OUTSIDE) * width
                    and -MAX_OUTSIDE * height <= y <= (1 + MAX_OUTSIDE) * height)
        ]  # fmt: skip
        if far:
            found.append(f"{len(far)} points lie far outside the {width}x{height} image, e.g. {quote(list(far[0]))}")
            return None
    if shape_type in EXACT_POINTS and len(points) != EXACT_POINTS[shape_type]:
        found.append(f"a {shape_type} takes exactly {EXACT_POINTS[shape_type]} points, got {len(points)}")
        return None
    if shape_type in MIN_POINTS and len(points) < MIN_POINTS[shape_type]:
        found.append(f"a {shape_type} takes at least {MIN_POINTS[shape_type]} points, got {len(points)}")
        return None
    return points


def _read_mask(obj: dict, shape_type: Any, points: list[tuple[float, float]] | None, height: int | None,
               width: int | None, found: list[str], rules: int) -> np.ndarray | None:  # fmt: skip
    """The decoded bitmap of a ``mask`` shape (bool [h, w]), placed as LabelMe ``rules`` places it; other
    shapes' masks are only checked to decode (LabelMe decodes every mask it reads, then ignores it
    unless the shape is a mask)."""
    text = obj.get("mask")
    if text is None:
        if shape_type == "mask":
            found.append("a mask shape needs its bitmap in 'mask' (base64 PNG), got null")
        return None
    if not isinstance(text, str):
        found.append(f"mask must be a base64 PNG or null, got {quote(text)}")
        return None
    try:
        with open_mask_png(text) as png:
            bitmap = np.asarray(png)
    except _DECODE_ERRORS as err:
        found.append(f"mask is not a base64 PNG: {err}")
        return None
    if bitmap.ndim != 2:
        found.append(f"the mask bitmap must be single-channel (grayscale), got shape {bitmap.shape}")
        return None
    if shape_type == "mask" and points is not None and height is not None and width is not None:
        problem = mask_problem(points, bitmap.shape, height, width, rules)
        if problem:
            found.append(problem)
            return None
    return bitmap.astype(bool) if shape_type == "mask" else None


# ---------------------------------------------------------------------------------------------------
# small checks


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite(value: int | float) -> bool:
    return isinstance(value, int) or math.isfinite(value)


def closest_label(label: str, known: Sequence[str]) -> str | None:
    """The known label ``label`` is most likely a slip for, or None when none is really close.

    Close means equal after case and surrounding spaces are ignored (``Hair``, ``hair ``), or within
    one edit (two for labels of five letters or more) of a known label, an edit being a letter added,
    dropped, changed or two neighbours swapped (``eys`` -> ``eye``). Ties go to the more similar
    (difflib ratio). A label far from all (``bottle``) gets no suggestion: a wrong one misleads.
    The search is bounded: only names whose length is within the cut-off are compared, and a label
    longer than any name plus the cut-off (a label of a million letters) is answered at once.
    """
    typed = label.strip().lower()
    cutoff = 1 if len(typed) < 5 else 2
    best: tuple[int, float, str] | None = None
    for name in known:
        candidate = name.lower()
        if abs(len(candidate) - len(typed)) > cutoff:
            continue
        distance = _edit_distance(typed, candidate, cutoff)
        if distance > cutoff:
            continue
        key = (distance, -difflib.SequenceMatcher(None, typed, candidate).ratio(), name)
        best = key if best is None or key < best else best
    return best[2] if best else None


def _edit_distance(a: str, b: str, cutoff: int) -> int:
    """Optimal string alignment distance (insertions, deletions, substitutions, adjacent swaps), or
    ``cutoff + 1`` as soon as it must exceed ``cutoff``."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], previous2[j - 2] + 1)
        if min(row) > cutoff and min(previous) > cutoff:  # every later row is larger still
            return cutoff + 1
        previous2, previous = previous, row
    return previous[-1]
