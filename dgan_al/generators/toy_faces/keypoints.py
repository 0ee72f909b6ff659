"""The keypoints of toy-faces: exact points from the renderer's scene geometry, and whether each shows.

``KEYPOINTS`` (left and right are the subject's, as in COCO: the subject's left eye is on the image's
right). Each is a point of the head frame (``render.py``) that a person can place:

- ``left_eye`` / ``right_eye``: the pupil's centre;
- ``left_eyebrow`` / ``right_eyebrow``: the middle of the brow's centre line;
- ``nose_tip``: the middle of the nose's rounded end;
- ``mouth_left`` / ``mouth_right``: the ends of the mouth line (the same open or closed);
- ``chin``: the lowest point of the face outline;
- ``left_ear`` / ``right_ear``: the middle of the ear beside the face, at the ear's mid-height (the face
  covers the ear's inner half; a far ear turned behind the face shows less than a pixel beside it, and
  counts as hidden by the face).

Coordinates are label pixels with pixel centres at integers, as LabelMe and COCO use (the renderer's
128-px coordinate p, where pixel j covers [j, j+1), is p - 0.5).

Visibility (COCO v) comes from the painted scene itself: a keypoint shows (v = 2) when the 512-px
material image has one of its own part's materials at the point. Otherwise it is hidden; by a rare part
worn over the face (glasses, hat, beard, earring: ``OCCLUDING_CLASSES``) it is *occluded* (v = 1: a
person sees the sunglasses or the beard and still marks the eye or chin under it, with LabelMe's
``occluded`` shape flag: trained as present, left out of PCK's visible set); by the head itself (the
face over a far ear, hair) it is not visible (v = 0: nothing to place). A point off the image is v = 0.
The visible truth (``visible.py``) judges the scene as G shows it: the parts G does not draw are removed
first, so eyes behind sunglasses G does not draw are visible.
"""

from __future__ import annotations

import numpy as np

from dgan_al.generators.toy_faces.classes import CLASS_ID
from dgan_al.generators.toy_faces.render import (HI, MATERIAL_CLASS, SIZE, SUPERSAMPLE, M, _ears, _eyes, _Frame,
                                                 material_image)
from dgan_al.generators.toy_faces.scene import Scene

KEYPOINTS: tuple[str, ...] = ("left_eye", "right_eye", "left_eyebrow", "right_eyebrow", "nose_tip",
                              "mouth_left", "mouth_right", "chin", "left_ear", "right_ear")
# the left/right pairs (a horizontal flip swaps them)
KEYPOINT_PAIRS: tuple[tuple[str, str], ...] = (("left_eye", "right_eye"), ("left_eyebrow", "right_eyebrow"),
                                               ("mouth_left", "mouth_right"), ("left_ear", "right_ear"))
# a keypoint hidden by one of these classes is occluded (v = 1); by anything else, not visible (v = 0)
OCCLUDING_CLASSES: tuple[str, ...] = ("glasses", "hat", "beard", "earring")

_OWN = {"eye": ("sclera", "iris", "pupil", "eyelid"), "eyebrow": ("eyebrow",), "nose": ("nose",),
        "mouth": ("lips", "mouth_line", "mouth_inside", "teeth"), "chin": ("skin",), "ear": ("ear", "inner_ear")}
_PART = {"left_eye": "eye", "right_eye": "eye", "left_eyebrow": "eyebrow", "right_eyebrow": "eyebrow",
         "nose_tip": "nose", "mouth_left": "mouth", "mouth_right": "mouth", "chin": "chin", "left_ear": "ear",
         "right_ear": "ear"}
# where a boundary keypoint's own part is looked for: this far (head units) inside the part
_PROBE_INSET = 0.04
_MIN_EAR_PX = 1.0  # an ear showing less than this width (label pixels) beside the face counts as hidden by it


def _face_edge(sc: Scene, sy: float, side: float, y: float) -> float:
    """x of the face outline's ``side`` (-1 image left, +1 image right) at height y, head frame."""
    H = sc.face_height
    q = min(abs(y) / H, 1.0)
    lower = min(max(y / H, 0.0), 1.0)
    return side * np.sqrt(1 - q * q) * (1 - sc.jaw * lower**2) + 0.06 * sy


def head_points(sc: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Each keypoint in the head frame, and a probe point just inside its own part: float [K, 2] each."""
    sy = float(np.sin(sc.yaw))
    H = sc.face_height
    points, probes = {}, {}
    eyes = dict(zip((-1.0, 1.0), _eyes(sc, sy)))  # side -> (x, y, a, b); side +1 is image right: subject's left
    for side, name in ((1.0, "left"), (-1.0, "right")):
        x, y, a, b = eyes[side]
        r = 0.85 * b
        points[f"{name}_eye"] = (x + 0.35 * sy * max(a - r, 0.0), y)
        arch = 0.03 + 0.06 * sc.brow_thickness
        points[f"{name}_eyebrow"] = (x + side * a * (-0.95 + 0.5 * 1.9 * 1.05), y - b - 0.13 - arch)
    bulb = 0.09 + 0.03 * sc.nose_size  # half-height of the nose's rounded end, below y = 0.3 H
    points["nose_tip"] = (0.95 * sy, 0.3 * H + 0.5 * bulb)
    mouth_y = 0.58 * H
    w = 0.26 + 0.14 * sc.mouth_width
    smile = 0.02 + 0.1 * sc.mouth_width
    for side, name in ((1.0, "mouth_left"), (-1.0, "mouth_right")):
        points[name] = (side * w + 0.6 * sy, mouth_y - smile)
        probes[name] = (side * (w - _PROBE_INSET) + 0.6 * sy, mouth_y - smile * ((w - _PROBE_INSET) / w) ** 2)
    points["chin"] = (0.06 * sy, H)
    probes["chin"] = (0.06 * sy, H - _PROBE_INSET)
    cy = 0.02 + 0.12 * sc.ear_size
    for centre, a, b, side in _ears(sc, sy, cy):
        name = "left_ear" if side > 0 else "right_ear"
        outer = centre[0] + side * a
        inner = side * max(side * (centre[0] - side * a), side * _face_edge(sc, sy, side, cy))
        points[name] = (0.5 * (inner + outer), cy)
        if side * (outer - inner) * sc.radius < _MIN_EAR_PX:  # a sliver under a pixel: the face hides the ear
            probes[name] = (_face_edge(sc, sy, side, cy) - side * 0.1, cy)
    pts = np.array([points[k] for k in KEYPOINTS], dtype=np.float64)
    return pts, np.array([probes.get(k, points[k]) for k in KEYPOINTS], dtype=np.float64)


def _to_pixels(sc: Scene, pts: np.ndarray) -> np.ndarray:
    """Head-frame points -> the renderer's 128-px coordinates (pixel j covers [j, j+1)). [K, 2]"""
    return _Frame(sc).head(pts) / SUPERSAMPLE


def scene_keypoints(sc: Scene, materials: np.ndarray | None = None) -> np.ndarray:
    """The keypoints of a scene: float [K, 3] (x, y, v) in label pixels, v as the top says, judged on its
    painted ``materials`` (uint8 [512, 512], rendered when not given)."""
    materials = material_image(sc) if materials is None else materials
    pts, probes = head_points(sc)
    xy = _to_pixels(sc, pts) - 0.5
    probe = np.floor(_to_pixels(sc, probes) * SUPERSAMPLE).astype(int)  # [K, 2] supersampled (col, row)
    out = np.zeros((len(KEYPOINTS), 3), dtype=np.float64)
    out[:, :2] = xy
    occluders = {CLASS_ID[c] for c in OCCLUDING_CLASSES}
    for k, name in enumerate(KEYPOINTS):
        col, row = probe[k]
        inside = -0.5 <= xy[k, 0] <= SIZE - 0.5 and -0.5 <= xy[k, 1] <= SIZE - 0.5
        if not (inside and 0 <= col < HI and 0 <= row < HI):
            continue
        material = int(materials[row, col])
        if material in {M[m] for m in _OWN[_PART[name]]}:
            out[k, 2] = 2
        elif int(MATERIAL_CLASS[material]) in occluders:
            out[k, 2] = 1
    return out


def latent_keypoints(latents: np.ndarray, truth: str = "visible", images: np.ndarray | None = None) -> np.ndarray:
    """The keypoints of toy-faces latents float [B, 32]: float [B, K, 3] (x, y, v), label pixels.

    truth "renderer": the scene as the renderer paints it; "visible": as G's images (``images``, uint8
    [B, 128, 128, 3], needed) show it (``visible.visible_scene``). The points are the same in both (no
    thresholded part moves a keypoint); v differs where G leaves out a part that hides one. A point with
    v = 0 keeps its geometric place (COCO writes 0, 0 for it)."""
    from dgan_al.generators.toy_faces.scene import params_from_latent
    from dgan_al.generators.toy_faces.visible import TRUTHS, visible_scene

    if truth not in TRUTHS:
        raise ValueError(f"truth must be one of {TRUTHS}, got {truth!r}")
    latents = np.asarray(latents, dtype=np.float64)
    if truth == "visible" and (images is None or len(images) != len(latents)):
        raise ValueError("the visible truth needs G's image of every latent")
    out = np.zeros((len(latents), len(KEYPOINTS), 3), dtype=np.float64)
    for i, z in enumerate(latents):
        scene = params_from_latent(z)
        out[i] = scene_keypoints(scene if truth == "renderer" else visible_scene(scene, np.asarray(images[i])))
    return out
