"""Render a toy-faces scene: a cartoon head at 128x128 and its exact part mask.

How a scene becomes pixels:

1. The scene is drawn, back to front (painter's order), as filled polygons and thick lines into a
   512x512 *material* image (4x supersampling), with PIL. A material is one flat paint (skin, iris,
   lips, hat band, ...) and belongs to exactly one class, so the class of every supersampled pixel is
   the class of the last thing drawn there: occlusion is the drawing order and nothing else.
2. Every 128-px pixel is a 4x4 block of supersampled pixels. For each block we count how many of its 16
   pixels carry each material.
3. The mask is the per-block majority (mode) of the 16 supersampled *class* labels; a tie goes to the
   lower class id.
4. The colour is the box average of the 16 supersampled colours: sum over materials of
   (count / 16) * colour. A material's colour is its flat paint times a smooth light field (the
   background: a smooth two-colour gradient with soft stripes); those smooth fields are evaluated at
   the 128-px pixel centres, so step 4 is exactly the box filter of a 512-px rendering whose smooth
   fields are constant over each block. The result has anti-aliased edges and no pixel noise.

``render(scene)`` -> (rgb uint8 [128,128,3], mask uint8 [128,128]); ``render_latents(z [B,32])`` does it
for a batch of latents; ``oracle_mask(z)`` is the mask part. ``material_image`` (step 1), ``downsample``
(steps 2-4), ``material_colors``, ``shading_field`` and ``background_field`` are exposed so the fast
block average can be checked against a plain per-pixel reference.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from dgan_al.generators.toy_faces.classes import CLASS_ID, CLASSES
from dgan_al.generators.toy_faces.scene import Z_DIM, Scene, params_from_latent

SIZE = 128  # output resolution (pixels per side)
SUPERSAMPLE = 4  # supersampled pixels per output pixel, per side
HI = SIZE * SUPERSAMPLE  # 512: side of the supersampled material image

# Materials: (name, class, how strongly the light field shades it). Material id = index.
_MATERIALS: tuple[tuple[str, str, float], ...] = (
    ("background", "background", 0.0),  # coloured by background_field instead
    ("skin", "skin", 1.0),
    ("nose", "nose", 1.0),
    ("sclera", "eye", 0.2),
    ("iris", "eye", 0.2),
    ("pupil", "eye", 0.0),
    ("eyelid", "eye", 0.3),
    ("eyebrow", "eyebrow", 0.5),
    ("lips", "mouth", 0.8),
    ("mouth_line", "mouth", 0.5),
    ("mouth_inside", "mouth", 0.3),
    ("teeth", "teeth", 0.3),
    ("ear", "ear", 1.0),
    ("inner_ear", "ear", 1.0),
    ("neck", "neck", 1.0),
    ("clothes", "clothes", 0.6),
    ("collar", "clothes", 0.6),
    ("glasses_frame", "glasses", 0.3),
    ("glasses_lens", "glasses", 0.3),
    ("hat", "hat", 0.8),
    ("hat_band", "hat", 0.8),
    ("beard", "beard", 0.8),
    ("earring", "earring", 0.3),
    ("hair", "hair", 1.0),
    ("hair_sheen", "hair", 1.0),
)
MATERIALS: tuple[str, ...] = tuple(name for name, _, _ in _MATERIALS)
N_MATERIALS = len(MATERIALS)
M = {name: i for i, name in enumerate(MATERIALS)}  # material id by name
MATERIAL_CLASS = np.array([CLASS_ID[c] for _, c, _ in _MATERIALS], dtype=np.uint8)  # [N_MATERIALS]
MATERIAL_SHADING = np.array([k for _, _, k in _MATERIALS], dtype=np.float32)  # [N_MATERIALS]
# 128-px pixel centres, float32 [SIZE]
_CENTERS = np.arange(SIZE, dtype=np.float32) + 0.5


# ---------------------------------------------------------------------------------------------------
# geometry helpers (head frame: origin at the face centre, x right, y down, unit = face half-width R)


def _ellipse(cx: float, cy: float, a: float, b: float, n: int = 32, t0: float = 0.0,
             t1: float = 2 * np.pi) -> np.ndarray:
    """Points on an ellipse (x = cx + a cos t, y = cy + b sin t) for n values of t in [t0, t1]. [n, 2]"""
    t = np.linspace(t0, t1, n, endpoint=(t1 - t0) < 2 * np.pi - 1e-9)
    return np.stack([cx + a * np.cos(t), cy + b * np.sin(t)], axis=1)


def _band(x: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """The polygon between two curves y = top(x) and y = bottom(x) sampled at the same x. [2n, 2]"""
    return np.concatenate([np.stack([x, top], 1), np.stack([x, bottom], 1)[::-1]])


def _lens(width: float, n: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """x in [-width, width] and the profile f(x) that is 1 in the middle and 0 at the ends."""
    x = np.linspace(-width, width, n)
    return x, np.clip(1 - (x / width) ** 2, 0, 1) ** 0.7


class _Frame:
    """Maps head-frame and body-frame points to PIL coordinates in the 512-px material image.

    The head is rolled about the pivot (the top of the neck); the body frame is the same frame without
    the roll. A 128-px coordinate p (pixel j covers [j, j+1)) lands at PIL coordinate 4p: PIL floors
    vertex coordinates and fills the pixels from floor(left) to floor(right) inclusive, so a shape
    covers the supersampled pixels whose centres it covers, give or take one at each edge, with no
    bias to either side (a mirror-symmetric scene gives a mirror-symmetric mask).
    """

    def __init__(self, scene: Scene):
        self.origin = np.array(scene.center) * SUPERSAMPLE
        self.scale = scene.radius * SUPERSAMPLE
        c, s = np.cos(scene.roll), np.sin(scene.roll)
        self.rotation = np.array([[c, -s], [s, c]])
        self.pivot = np.array([0.0, 0.9 * scene.face_height])

    def head(self, pts: np.ndarray) -> np.ndarray:
        return self.origin + self.scale * ((pts - self.pivot) @ self.rotation.T + self.pivot)

    def body(self, pts: np.ndarray) -> np.ndarray:
        return self.origin + self.scale * pts


# ---------------------------------------------------------------------------------------------------
# painting a scene, back to front


class _Canvas:
    """A 512-px material image being painted; every stroke overwrites the material id under it."""

    def __init__(self) -> None:
        self.image = Image.new("L", (HI, HI), M["background"])
        self.draw = ImageDraw.Draw(self.image)

    def fill(self, material: str, pts: np.ndarray) -> None:
        self.draw.polygon(pts.ravel().tolist(), fill=M[material])

    def line(self, material: str, pts: np.ndarray, width: float) -> None:
        self.draw.line(pts.ravel().tolist(), fill=M[material], width=max(1, int(round(width))), joint="curve")


def _face_outline(sc: Scene, shift: float, n: int = 64) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x, y = np.sin(t), -sc.face_height * np.cos(t)
    lower = np.clip(y / sc.face_height, 0, 1)
    x = x * (1 - sc.jaw * lower**2) + shift
    return np.stack([x, y], 1)


def _hair_scale(sc: Scene) -> float:
    return 1.05 + 0.12 * sc.hair_volume + (0.12 if sc.hair_style == "curly" else 0.0)


def _draw_back_hair(cv: _Canvas, sc: Scene, fr: _Frame, sy: float) -> None:
    H, s, v = sc.face_height, _hair_scale(sc), sc.hair_volume
    shift = -0.1 * sy
    if sc.hair_style in ("long", "bob"):
        width = s + 0.08 + 0.1 * v
        if sc.hair_style == "long":
            bottom, flare = H + 0.4 + 0.7 * v, 1.0
        else:
            bottom, flare = 0.75 * H + 0.2 * v, 1.12
        top = _ellipse(0, 0, width, s * H + 0.05, 24, np.pi, 2 * np.pi)  # left -> over the top -> right
        side = np.array([[width * (1 + flare) / 2, 0.5 * bottom], [width * flare, bottom - 0.15],
                         [width * flare - 0.2, bottom], [-width * flare + 0.2, bottom],
                         [-width * flare, bottom - 0.15], [-width * (1 + flare) / 2, 0.5 * bottom]])
        pts = np.concatenate([top, side])
        pts[:, 0] += shift
        cv.fill("hair", fr.head(pts))
    elif sc.hair_style == "curly":
        t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
        r = (1.25 + 0.25 * v) * (1 + 0.045 * np.sin(9 * t))
        pts = np.stack([shift + r * np.cos(t), -0.3 * H + 1.05 * r * np.sin(t)], 1)
        cv.fill("hair", fr.head(pts))
    elif sc.hair_style == "bun":
        r = 0.33 + 0.12 * v
        cv.fill("hair", fr.head(_ellipse(shift, -s * H - 0.6 * r, r, r, 24)))


def _draw_body(cv: _Canvas, sc: Scene, fr: _Frame) -> None:
    H = sc.face_height
    shoulders_y = H + 0.5  # in the body frame
    w = 1.8 + 0.5 * sc.shoulder_width
    top = _ellipse(0, shoulders_y + 0.8, w, 0.8, 24, np.pi, 2 * np.pi)
    torso = np.concatenate([top, [[w, shoulders_y + 8], [-w, shoulders_y + 8]]])
    cv.fill("clothes", fr.body(torso))
    nw = 0.42 + 0.14 * sc.neck_width
    if sc.neckline == "v":
        collar = np.array([[-nw - 0.13, shoulders_y + 0.05], [nw + 0.13, shoulders_y + 0.05], [0, shoulders_y + 0.85]])
        neckline = np.array([[-nw, shoulders_y], [nw, shoulders_y], [0, shoulders_y + 0.62]])
    else:
        collar = _ellipse(0, shoulders_y + 0.05, nw + 0.13, 0.45, 20, 0, np.pi)
        collar = np.concatenate([collar, [[nw + 0.13, shoulders_y + 0.05]]])
        neckline = _ellipse(0, shoulders_y, nw, 0.3, 20, 0, np.pi)
    cv.fill("collar", fr.body(collar))
    neck_top = fr.head(np.array([[nw * 0.95, 0.55 * H], [-nw * 0.95, 0.55 * H]]))
    neck_bottom = fr.body(np.array([[-nw, shoulders_y + 0.02], [nw, shoulders_y + 0.02]]))
    cv.fill("neck", np.concatenate([neck_top, neck_bottom]))
    cv.fill("neck", fr.body(neckline))


def _ears(sc: Scene, sy: float, cy: float) -> list[tuple[np.ndarray, float, float, float]]:
    """(centre, half-width, half-height, side) of each ear; the far ear tucks behind the face."""
    a = 0.18 + 0.07 * sc.ear_size
    b = 0.27 + 0.1 * sc.ear_size
    out = []
    for side in (-1.0, 1.0):
        x = side * np.cos(sc.yaw) - 0.35 * sy
        far = side * sc.yaw > 0
        out.append((np.array([x, cy]), a * (1 - 0.8 * abs(sy)) if far else a, b, side))
    return out


def _draw_ears_and_earrings(cv: _Canvas, sc: Scene, fr: _Frame, sy: float) -> None:
    cy = 0.02 + 0.12 * sc.ear_size
    ears = _ears(sc, sy, cy)
    for centre, a, b, side in ears:
        cv.fill("ear", fr.head(_ellipse(centre[0], centre[1], a, b, 24)))
        cv.fill("inner_ear", fr.head(_ellipse(centre[0] + side * 0.3 * a, centre[1] - 0.05, 0.45 * a, 0.55 * b, 16)))
    if sc.earrings is None:
        return
    for centre, a, b, side in ears:
        x, y = centre[0] + side * 0.05, centre[1] + b
        if sc.earrings == "stud":
            cv.fill("earring", fr.head(_ellipse(x, y + 0.05, 0.11, 0.11, 16)))
        else:
            cv.line("earring", fr.head(np.array([[x, y - 0.02], [x, y + 0.18]])), 0.06 * fr.scale)
            cv.fill("earring", fr.head(_ellipse(x, y + 0.26, 0.1, 0.13, 16)))


def _draw_beard(cv: _Canvas, sc: Scene, fr: _Frame, sy: float, mouth_y: float) -> None:
    H = sc.face_height
    if sc.beard == "full":
        top = np.array([[-1.02, 0.0], [-0.8, 0.42], [-0.5, mouth_y - 0.1], [0.0, mouth_y - 0.2],
                        [0.5, mouth_y - 0.1], [0.8, 0.42], [1.02, 0.0]])
        top[:, 0] += 0.4 * sy * (1 - np.abs(top[:, 0]))
        # below: the lower face outline (right side -> chin -> left side), pushed out a little
        t = np.linspace(0.5 * np.pi, 1.5 * np.pi, 32)
        x, y = np.sin(t), -H * np.cos(t)
        lower = np.clip(y / H, 0, 1)
        x = 1.04 * x * (1 - sc.jaw * lower**2) + 0.06 * sy
        y = y + 0.14 * lower**2
        cv.fill("beard", fr.head(np.concatenate([top, np.stack([x, y], 1)])))
    else:  # goatee: a moustache and a chin patch
        x, f = _lens(0.4)
        mx = 0.6 * sy
        cv.fill("beard", fr.head(_band(x + mx, mouth_y - 0.04 - 0.14 * f, mouth_y + 0.02 - 0.02 * f)))
        cv.fill("beard", fr.head(_ellipse(0.5 * sy, H - 0.1, 0.3, 0.28, 24)))


def _draw_nose(cv: _Canvas, sc: Scene, fr: _Frame, sy: float) -> None:
    H = sc.face_height
    y = 0.3 * H
    w = 0.12 + 0.08 * sc.nose_size
    length = 0.28 + 0.16 * sc.nose_size
    tip_x, bridge_x = 0.95 * sy, 0.5 * sy
    bottom = _ellipse(tip_x, y, w, 0.09 + 0.03 * sc.nose_size, 16, 0, np.pi)  # right -> bottom -> left
    bridge = np.array([[bridge_x - 0.05, y - length], [bridge_x + 0.05, y - length]])
    cv.fill("nose", fr.head(np.concatenate([bottom, bridge])))


def _draw_mouth(cv: _Canvas, sc: Scene, fr: _Frame, sy: float, mouth_y: float) -> None:
    w = 0.26 + 0.14 * sc.mouth_width
    smile = 0.02 + 0.1 * sc.mouth_width
    x, f = _lens(w)
    line = mouth_y - smile * (x / w) ** 2  # corners up
    xs = x + 0.6 * sy
    upper, lower = 0.07, 0.09
    if sc.mouth_open == 0.0:
        cv.fill("lips", fr.head(_band(xs, line - upper * f, line + lower * f)))
        cv.line("mouth_line", fr.head(np.stack([xs, line], 1)), 0.045 * fr.scale)
        return
    gap = 0.08 + 0.16 * sc.mouth_open
    cv.fill("lips", fr.head(_band(xs, line - upper * f, line + (gap + lower) * f)))
    cv.fill("mouth_inside", fr.head(_band(xs, line - 0.005, line + gap * f)))
    tx, tf = _lens(0.8 * w)
    tline = mouth_y - smile * (tx / w) ** 2
    cv.fill("teeth", fr.head(_band(tx + 0.6 * sy, tline - 0.005, tline + 0.55 * gap * tf)))


_TEMPLE_Y = -0.12  # where the hairline meets the side of the head
_TEMPLE_X = 0.93


def _hairline(sc: Scene, x: np.ndarray) -> np.ndarray:
    """y of the hairline (the lower edge of the hair cap) at x in [-0.93, 0.93], before yaw."""
    H = sc.face_height
    centre_y = -(0.56 + 0.26 * sc.hairline) * H
    q = x / _TEMPLE_X
    y = _TEMPLE_Y + (centre_y - _TEMPLE_Y) * np.sqrt(np.clip(1 - q**2, 0, 1)) + 0.25 * sc.parting * q * (1 - q**2)
    if sc.hair_style == "curly":
        y = y + 0.03 * np.sin(14 * q)
    return y


def _hair_cap(sc: Scene, sy: float) -> np.ndarray:
    """The hair on top of the head: from the enlarged head outline down to the hairline."""
    H, s = sc.face_height, _hair_scale(sc)
    t_side = np.arccos(np.clip(-_TEMPLE_Y / (s * H), -1, 1))
    t = np.linspace(-t_side, t_side, 40)  # left temple -> top -> right temple
    r = s * (1 + (0.04 * np.sin(11 * t) if sc.hair_style == "curly" else 0.0))
    outer = np.stack([r * np.sin(t) + 0.1 * sy, -r * H * np.cos(t)], 1)
    x = np.linspace(_TEMPLE_X, -_TEMPLE_X, 24)  # right temple -> left temple
    inner = np.stack([x + 0.3 * sy, _hairline(sc, x)], 1)
    return np.concatenate([outer, inner])


def _draw_front_hair(cv: _Canvas, sc: Scene, fr: _Frame, sy: float) -> None:
    if sc.hair_style == "bald":
        return
    cv.fill("hair", fr.head(_hair_cap(sc, sy)))
    # a soft sheen on the side the light comes from: a lens between 20% and 45% of the way from the
    # cap's top edge down to the hairline, so it always lies inside the cap
    H, s = sc.face_height, _hair_scale(sc)
    x, f = _lens(0.3, 14)
    x = x + 0.35 * np.clip(np.cos(sc.light_angle) / 0.7, -1, 1) + 0.2 * sy
    top = -s * H * np.sqrt(np.clip(1 - ((x - 0.1 * sy) / s) ** 2, 0, 1))  # the cap's outer edge (no curls)
    depth = _hairline(sc, x - 0.3 * sy) - top
    cv.fill("hair_sheen", fr.head(_band(x, top + (0.32 - 0.12 * f) * depth, top + (0.32 + 0.13 * f) * depth)))


def _eyes(sc: Scene, sy: float) -> list[tuple[float, float, float, float]]:
    """(x, y, half-width, half-height) of each eye, yaw applied."""
    y = -0.05
    a = 0.2 + 0.08 * sc.eye_size
    b = 0.12 + 0.06 * sc.eye_size
    out = []
    for side in (-1.0, 1.0):
        far = side * sc.yaw > 0
        out.append((side * 0.4 + 0.55 * sy, y, a * (1 - 0.5 * abs(sy)) if far else a, b))
    return out


def _draw_eyes_and_brows(cv: _Canvas, sc: Scene, fr: _Frame, sy: float) -> None:
    for x, y, a, b in _eyes(sc, sy):
        cv.fill("sclera", fr.head(_ellipse(x, y, a, b, 28)))
        r = 0.85 * b
        gx = x + 0.35 * sy * max(a - r, 0.0)
        cv.fill("iris", fr.head(_ellipse(gx, y, r, r, 20)))
        cv.fill("pupil", fr.head(_ellipse(gx, y, 0.45 * r, 0.45 * r, 12)))
        lid = _ellipse(x, y, a * 1.05, b * 1.05, 16, np.pi + 0.15, 2 * np.pi - 0.15)
        cv.line("eyelid", fr.head(lid), 0.05 * fr.scale)
    thick = 0.06 + 0.06 * sc.brow_thickness
    arch = 0.03 + 0.06 * sc.brow_thickness
    for side, (x, y, a, b) in zip((-1.0, 1.0), _eyes(sc, sy)):
        s = np.linspace(0, 1, 12)  # inner end -> outer end
        bx = x + side * (-a * 0.95 + s * 1.9 * a * 1.05)
        centre = y - b - 0.13 - arch * np.sin(np.pi * s)
        half = 0.5 * thick * (1.15 - 0.45 * s)
        cv.fill("eyebrow", fr.head(_band(bx, centre - half, centre + half)))


def _draw_glasses(cv: _Canvas, sc: Scene, fr: _Frame, sy: float) -> None:
    eyes = _eyes(sc, sy)
    rings = []
    for x, y, a, b in eyes:
        ra, rb = a + 0.12, 0.3
        if sc.glasses == "square":
            t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
            c, s = np.cos(t), np.sin(t)
            pts = np.stack([x + ra * np.sign(c) * np.abs(c) ** 0.4, y + rb * np.sign(s) * np.abs(s) ** 0.4], 1)
        else:
            pts = _ellipse(x, y, ra, rb, 32)
        rings.append(pts)
    if sc.glasses == "sun":
        for pts in rings:
            cv.fill("glasses_lens", fr.head(pts))
    width = 0.085 * fr.scale
    for pts in rings:
        cv.line("glasses_frame", fr.head(np.concatenate([pts, pts[:2]])), width)
    (lx, ly, la, _), (rx, ry, ra_, _) = eyes
    bridge = np.array([[lx + la + 0.1, ly - 0.06], [0.5 * (lx + rx), ly - 0.12], [rx - ra_ - 0.1, ry - 0.06]])
    cv.line("glasses_frame", fr.head(bridge), width)
    for (x, y, a, _), side in zip(eyes, (-1.0, 1.0)):
        edge = x + side * (a + 0.12)
        cv.line("glasses_frame", fr.head(np.array([[edge, y - 0.06], [side * 1.0 + 0.06 * sy, y - 0.1]])), width)


def _draw_hat(cv: _Canvas, sc: Scene, fr: _Frame, sy: float) -> None:
    H = sc.face_height
    s = max(_hair_scale(sc), 1.05) + 0.06
    bottom = -(0.5 + 0.1 * sc.hairline) * H  # the lower edge of the hat, on the forehead
    shift = 0.08 * sy
    if sc.hat in ("beanie", "cap"):
        t_side = np.arccos(np.clip(-bottom / (s * H), -1, 1))
        t = np.linspace(-t_side, t_side, 36)
        dome = np.stack([s * np.sin(t) + shift, -s * H * np.cos(t) - (0.12 if sc.hat == "beanie" else 0.0)], 1)
        cv.fill("hat", fr.head(dome))
        if sc.hat == "beanie":
            x = np.linspace(-s * np.sin(t_side) * 1.01, s * np.sin(t_side) * 1.01, 16)
            cv.fill("hat_band", fr.head(_band(x + shift, np.full_like(x, bottom - 0.28), bottom + 0.03 * (1 - x**2))))
        else:
            cv.fill("hat_band", fr.head(_ellipse(0.5 * sy, bottom - 0.03, 0.95, 0.2, 24, 0, np.pi)))
    else:  # brimmed
        crown_w = 0.95 * s
        crown = np.array([[-crown_w, bottom], [-crown_w * 0.92, bottom - 1.0], [-crown_w * 0.5, bottom - 1.12],
                          [crown_w * 0.5, bottom - 1.12], [crown_w * 0.92, bottom - 1.0], [crown_w, bottom]])
        crown[:, 0] += shift
        cv.fill("hat", fr.head(crown))
        x = np.linspace(-crown_w * 0.97, crown_w * 0.97, 8)
        cv.fill("hat_band", fr.head(_band(x + shift, np.full_like(x, bottom - 0.3), np.full_like(x, bottom))))
        cv.fill("hat", fr.head(_ellipse(shift, bottom, 1.55 * s, 0.17, 36)))


def _paint(sc: Scene) -> Image.Image:
    """All strokes of the scene, back to front, into a fresh 512-px material image.

    Order: back hair (long, bob, curly, bun), clothes and collar, neck, ears, earrings, face, beard,
    nose, mouth (lips, inside, teeth), hair cap and sheen, eyes, eyebrows, glasses, hat.
    """
    cv = _Canvas()
    fr = _Frame(sc)
    sy = float(np.sin(sc.yaw))
    mouth_y = 0.58 * sc.face_height
    _draw_back_hair(cv, sc, fr, sy)
    _draw_body(cv, sc, fr)
    _draw_ears_and_earrings(cv, sc, fr, sy)
    cv.fill("skin", fr.head(_face_outline(sc, 0.06 * sy)))
    if sc.beard is not None:
        _draw_beard(cv, sc, fr, sy, mouth_y)
    _draw_nose(cv, sc, fr, sy)
    _draw_mouth(cv, sc, fr, sy, mouth_y)
    _draw_front_hair(cv, sc, fr, sy)
    _draw_eyes_and_brows(cv, sc, fr, sy)
    if sc.glasses is not None:
        _draw_glasses(cv, sc, fr, sy)
    if sc.hat is not None:
        _draw_hat(cv, sc, fr, sy)
    return cv.image


# ---------------------------------------------------------------------------------------------------
# colours


def material_image(scene: Scene) -> np.ndarray:
    """The supersampled material id of every pixel, uint8 [512, 512] (class = MATERIAL_CLASS[id])."""
    return np.asarray(_paint(scene))


def material_colors(scene: Scene) -> np.ndarray:
    """The flat paint of every material in this scene, float32 [N_MATERIALS, 3] (0..255)."""
    sc = scene
    skin = np.array(sc.skin)
    hair = np.array(sc.hair_color)
    dark = np.array([40.0, 30.0, 28.0])
    c = np.zeros((N_MATERIALS, 3))
    c[M["background"]] = sc.background_colors[0]  # unused: the background field replaces it
    c[M["skin"]] = skin
    c[M["nose"]] = 0.8 * skin
    c[M["sclera"]] = (242, 240, 236)
    c[M["iris"]] = sc.iris_color
    c[M["pupil"]] = (16, 14, 16)
    c[M["eyelid"]] = 0.35 * skin + 0.65 * dark
    c[M["eyebrow"]] = 0.55 * hair + 0.45 * dark
    c[M["lips"]] = sc.lip_color
    c[M["mouth_line"]] = 0.55 * np.array(sc.lip_color)
    c[M["mouth_inside"]] = (90, 28, 36)
    c[M["teeth"]] = (246, 244, 236)
    c[M["ear"]] = 0.95 * skin
    c[M["inner_ear"]] = 0.78 * skin
    c[M["neck"]] = 0.82 * skin
    c[M["clothes"]] = sc.clothes_color
    c[M["collar"]] = sc.collar_color
    c[M["glasses_frame"]] = sc.glasses_color
    c[M["glasses_lens"]] = (34, 36, 44)
    c[M["hat"]] = sc.hat_color
    c[M["hat_band"]] = 0.7 * np.array(sc.hat_color)
    c[M["beard"]] = sc.beard_color
    c[M["earring"]] = sc.earring_color
    c[M["hair"]] = hair
    c[M["hair_sheen"]] = np.minimum(255.0, 1.12 * hair + 12)
    return c.astype(np.float32)


def shading_field(scene: Scene) -> np.ndarray:
    """The light on the figure at every 128-px pixel centre, float32 [128, 128] (1 = the flat paint).

    Brighter toward the light, a little darker away from the head centre; smooth everywhere.
    """
    cx, cy = scene.center
    R = scene.radius
    dx = (_CENTERS[None, :] - cx) / (2.2 * R)  # [1, 128]
    dy = (_CENTERS[:, None] - cy) / (2.2 * R)  # [128, 1]
    toward_light = -(np.cos(scene.light_angle) * dx + np.sin(scene.light_angle) * dy)
    field = 1 + 0.28 * np.clip(toward_light, -1, 1) - 0.1 * np.minimum(dx**2 + dy**2, 2.0)
    return field.astype(np.float32)


def background_field(scene: Scene) -> np.ndarray:
    """The background colour at every 128-px pixel centre, float32 [128, 128, 3]: a two-colour
    gradient along ``background_angle`` plus soft stripes across it (at most 3 cycles per image)."""
    c1, c2 = (np.array(c, dtype=np.float32) for c in scene.background_colors)
    ux, uy = np.float32(np.cos(scene.background_angle)), np.float32(np.sin(scene.background_angle))
    x, y = (_CENTERS[None, :] - 64) / SIZE, (_CENTERS[:, None] - 64) / SIZE  # [1,128], [128,1] in [-0.5, 0.5]
    g = np.clip(0.5 + x * ux + y * uy, 0, 1)  # [128,128]: position along the gradient
    stripes = np.float32(0.12 * 255 * scene.stripe_strength) * np.sin(
        np.float32(2 * np.pi * scene.stripe_frequency) * (y * ux - x * uy))  # [128,128]: soft stripes across it
    field = c1 + g[..., None] * (c2 - c1) + stripes[..., None]  # [128,128,3]
    return np.clip(field, 0, 255, out=field)


# ---------------------------------------------------------------------------------------------------
# from supersampled materials to the 128-px image and mask


def block_material_counts(materials: np.ndarray) -> np.ndarray:
    """How many of each 128-px pixel's 16 supersampled pixels carry each material.

    materials uint8 [512, 512] -> uint8 [N_MATERIALS, 128*128] (columns in raster order, each sums to 16).
    Most blocks hold a single material; only the mixed ones (edges, ~10%) are counted with bincount.
    Everything stays small (no multi-megabyte temporaries, which cost page faults on every call).
    """
    n = SIZE * SIZE
    blocks = materials.reshape(SIZE, SUPERSAMPLE, SIZE, SUPERSAMPLE).swapaxes(1, 2).reshape(n, SUPERSAMPLE**2)
    first = blocks[:, 0]  # [16384]
    mixed = np.flatnonzero((blocks != first[:, None]).any(axis=1))  # [n_mixed] block indices
    counts = np.zeros((N_MATERIALS, n), dtype=np.uint8)
    counts[first, np.arange(n)] = SUPERSAMPLE**2
    keys = blocks[mixed].astype(np.intp) + (np.arange(len(mixed)) * N_MATERIALS)[:, None]  # [n_mixed, 16]
    mixed_counts = np.bincount(keys.ravel(), minlength=len(mixed) * N_MATERIALS)  # [n_mixed * N_MATERIALS]
    counts[:, mixed] = mixed_counts.reshape(len(mixed), N_MATERIALS).T
    return counts


def render(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """The scene's image and exact part mask: (rgb uint8 [128,128,3], mask uint8 [128,128]).

    mask[i, j] is the majority class of the 4x4 supersampled block of pixel (i, j) (ties: lower id);
    rgb[i, j] is the average colour of that block.
    """
    return downsample(material_image(scene), scene)


def downsample(materials: np.ndarray, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """128-px image and mask from a 512-px material image, painted with ``scene``'s colours and light.

    materials uint8 [512, 512] -> (rgb uint8 [128,128,3], mask uint8 [128,128]); see ``render``.
    """
    counts = block_material_counts(materials)  # [N_MATERIALS, 16384]
    present = np.flatnonzero(counts.any(axis=1))
    colors = material_colors(scene)  # [N_MATERIALS, 3]
    light = shading_field(scene).reshape(1, -1) - 1.0  # [1, 16384]
    class_counts = np.zeros((len(CLASSES), SIZE * SIZE), dtype=np.uint8)  # [n_classes, 16384]
    rgb = np.zeros((3, SIZE * SIZE), dtype=np.float32)  # [3, 16384]: sum over materials of share * colour
    for m in present:  # a dozen or two materials, each a few vectorised ops over the 16384 pixels
        class_counts[MATERIAL_CLASS[m]] += counts[m]
        share = counts[m].astype(np.float32) * (1.0 / SUPERSAMPLE**2)  # [16384]
        if m == M["background"]:
            paint = background_field(scene).reshape(-1, 3).T  # [3, 16384]
        else:
            paint = colors[m][:, None] * (1.0 + MATERIAL_SHADING[m] * light)  # [3, 16384]
        rgb += share * paint
    # the majority class of each block; a tie keeps the lower class id (only a strictly larger count wins)
    best = class_counts[0].copy()  # [16384]
    mask = np.zeros(SIZE * SIZE, dtype=np.uint8)
    for c in np.flatnonzero(class_counts.any(axis=1)):
        wins = class_counts[c] > best
        mask[wins] = c
        best[wins] = class_counts[c][wins]
    mask = mask.reshape(SIZE, SIZE)
    rgb = np.clip(np.rint(rgb.T), 0, 255).astype(np.uint8).reshape(SIZE, SIZE, 3)
    return rgb, mask


def render_latents(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Render the scene of every latent: z float [B, 32] -> (rgb uint8 [B,128,128,3], mask uint8 [B,128,128])."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] != Z_DIM:
        raise ValueError(f"toy-faces latents have shape (B, {Z_DIM}), got {z.shape}")
    rgb = np.empty((len(z), SIZE, SIZE, 3), dtype=np.uint8)
    mask = np.empty((len(z), SIZE, SIZE), dtype=np.uint8)
    for i, zi in enumerate(z):
        rgb[i], mask[i] = render(params_from_latent(zi))
    return rgb, mask


def oracle_mask(z: np.ndarray) -> np.ndarray:
    """The exact part mask of every latent: z float [B, 32] -> uint8 [B, 128, 128] (ids as in CLASSES)."""
    return render_latents(z)[1]
