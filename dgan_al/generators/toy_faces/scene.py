"""Scene parameters of one toy face, and the fixed map from a latent z to them.

``params_from_latent(z)`` is deterministic and uses no random numbers. It reads z the way StyleGAN2's
mapping network does, scaled to unit mean square (``normalize_latent``), so that the scene depends on
exactly what the generator sees: only z's direction (it cannot know |z|; the history is in
``docs/toy-faces.md``). Every normalised coordinate goes through the normal CDF to a uniform u in
(0, 1), and each u sets one or two related parameters, mostly smoothly (so a generator can learn the map). Discrete choices are thresholds on one coordinate each. z = 0 (all u = 0.5)
is a typical, complete face: short brown hair, closed smiling mouth, both ears, no glasses, hat, beard or
earrings. ``with_coordinates(z, {k: value})`` sets coordinates as the scene reads them.

Latent layout (coordinate: what it sets):

    0 horizontal position      11 hairline height, parting      22 background hue
    1 vertical position        12 eye size                      23 background lightness, gradient
    2 head size                13 iris colour                   24 background gradient/stripe angle
    3 roll                     14 eyebrow thickness and arch    25 stripe strength and frequency
    4 yaw                      15 nose size and length          26 light direction
    5 face length, jaw         16 mouth width and smile         27 glasses (u > 0.9), their style
    6 skin tone                17 mouth open (u > 0.78), how far  28 hat (u > 0.9), its style
    7 skin warmth              18 lip colour                    29 beard (u > 0.9), its style
    8 hair style               19 ear size and height           30 earrings (u > 0.9), their style
    9 hair colour              20 clothes hue                   31 neck width, neckline (V if u > 0.7)
   10 hair volume              21 clothes lightness, shoulder width

Geometry lives in the head's own frame: the origin is the face centre, x to the right, y down, and the
unit is the face half-width R (``Scene.radius`` pixels at 128 px).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

Z_DIM = 32
# The version of the latent -> scene map. Weights record the world they were distilled from; 1 read the
# raw z (its length too), 2 reads z normalised as the generator does.
WORLD_VERSION = 2

Color = tuple[float, float, float]  # RGB in 0..255

HAIR_STYLES = ("bald", "long", "bob", "short", "curly", "bun")
_HAIR_STYLE_EDGES = (0.07, 0.30, 0.40, 0.70, 0.86)  # u[8] thresholds between consecutive styles
RARE_THRESHOLD = 0.9  # a rare part is present when its u > 0.9 (10% of latents)
RARE_LATENT_INDEX = {"glasses": 27, "hat": 28, "beard": 29, "earring": 30}  # the coordinate of each rare part
LATENT_NAMES = (  # what each latent coordinate sets, short (the table above)
    "x position", "y position", "head size", "roll", "yaw", "face length", "skin tone", "skin warmth",
    "hair style", "hair colour", "hair volume", "hairline", "eye size", "iris colour", "eyebrows", "nose",
    "mouth width", "mouth open", "lip colour", "ears", "clothes hue", "clothes lightness", "background hue",
    "background lightness", "background angle", "stripes", "light direction", "glasses", "hat", "beard",
    "earrings", "neck",
)
MOUTH_OPEN_THRESHOLD = 0.78  # the mouth is open (teeth show) when u[17] > 0.78 (22% of latents)

GLASSES_STYLES = ("round", "square", "sun")
HAT_STYLES = ("beanie", "brimmed", "cap")
BEARD_STYLES = ("full", "goatee")
EARRING_STYLES = ("stud", "drop")

# Colour ramps: a parameter in [0, 1] walks linearly through the stops.
_SKIN = [(250, 222, 200), (242, 198, 166), (226, 174, 134), (200, 140, 100), (158, 102, 70), (108, 70, 50)]
_HAIR = [(24, 20, 22), (52, 36, 28), (84, 54, 34), (108, 70, 42), (128, 82, 48), (160, 84, 44),
         (190, 148, 90), (226, 200, 140), (172, 172, 176)]
_IRIS = [(60, 110, 170), (80, 125, 80), (120, 100, 50), (96, 62, 36), (58, 38, 28), (110, 120, 130)]
_HAT = [(30, 30, 34), (90, 60, 40), (170, 40, 40), (40, 60, 120), (60, 100, 60), (200, 180, 140),
        (128, 82, 48), (120, 120, 125), (24, 20, 22)]
_FRAMES = [(20, 20, 24), (110, 60, 30), (200, 170, 80), (180, 180, 190), (150, 30, 40)]
_METALS = [(230, 190, 70), (210, 210, 220), (200, 40, 80)]


@dataclass(frozen=True)
class Scene:
    """Everything the renderer needs for one image. Lengths are in units of R unless said otherwise."""

    # placement and pose
    center: tuple[float, float]  # (x, y) of the face centre, 128-px image coordinates
    radius: float  # R: the face half-width in 128-px pixels
    face_height: float  # half-height of the face outline
    jaw: float  # how much the lower face narrows toward the chin (0 = plain ellipse)
    roll: float  # radians; the head tilts about the top of the neck (positive = clockwise on screen)
    yaw: float  # radians; positive turns the face toward image right
    light_angle: float  # radians, image-space direction the light comes from (-pi/2 = from above)
    # skin
    skin: Color
    # hair
    hair_style: str  # one of HAIR_STYLES
    hair_color: Color
    hair_volume: float  # 0..1
    hairline: float  # 0..1, low to high forehead
    parting: float  # -1..1, hairline asymmetry
    # face parts
    eye_size: float  # 0..1
    iris_color: Color
    brow_thickness: float  # 0..1
    nose_size: float  # 0..1
    mouth_width: float  # 0..1, also sets the smile
    mouth_open: float  # 0 = closed, else 0.3..1 how far open
    lip_color: Color
    ear_size: float  # 0..1
    # body
    neck_width: float  # 0..1
    neckline: str  # "round" or "v"
    shoulder_width: float  # 0..1
    clothes_color: Color
    collar_color: Color
    # background: a two-colour gradient plus soft stripes, all low-frequency
    background_colors: tuple[Color, Color]
    background_angle: float  # radians; direction of the gradient (stripes run across it)
    stripe_strength: float  # 0..1
    stripe_frequency: float  # cycles across the 128-px image
    # rare parts: None when absent, else a style name
    glasses: str | None
    glasses_color: Color
    hat: str | None
    hat_color: Color
    beard: str | None
    beard_color: Color
    earrings: str | None
    earring_color: Color


def _ramp(stops: list[tuple[int, int, int]], t: float) -> Color:
    """The colour a fraction t in [0, 1] along the piecewise-linear ramp through ``stops``."""
    stops_arr = np.asarray(stops, dtype=np.float64)  # [S, 3]
    pos = np.clip(t, 0.0, 1.0) * (len(stops) - 1)
    i = min(int(pos), len(stops) - 2)
    w = pos - i
    c = (1 - w) * stops_arr[i] + w * stops_arr[i + 1]
    return (float(c[0]), float(c[1]), float(c[2]))


def _hsv(h: float, s: float, v: float) -> Color:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return (255.0 * r, 255.0 * g, 255.0 * b)


def _scaled(color: Color, k: float) -> Color:
    return tuple(float(min(255.0, k * c)) for c in color)  # type: ignore[return-value]


def _mix(a: Color, b: Color, w: float) -> Color:
    return tuple(float((1 - w) * x + w * y) for x, y in zip(a, b))  # type: ignore[return-value]


def _rare(u: float) -> tuple[bool, float]:
    """(present, t): present when u > RARE_THRESHOLD; t in [0, 1] re-spreads the present range."""
    return u > RARE_THRESHOLD, (u - RARE_THRESHOLD) / (1 - RARE_THRESHOLD)


def _pick(styles: tuple[str, ...], t: float) -> str:
    return styles[min(int(t * len(styles)), len(styles) - 1)]


def normalize_latent(z: np.ndarray) -> np.ndarray:
    """z [..., Z_DIM] scaled to unit mean square along the last axis, as StyleGAN2's mapping network
    scales it before its first layer (the same 1e-8, so z = 0 stays 0)."""
    z = np.asarray(z, dtype=np.float64)
    return z / np.sqrt(np.mean(np.square(z), axis=-1, keepdims=True) + 1e-8)


def with_coordinates(z: np.ndarray, values: dict) -> np.ndarray:
    """A copy of latents z [N, Z_DIM] in which each coordinate k of ``values`` reads, as the scene reads it
    (normalised), ``values[k]`` (a number, or one per row); the other coordinates keep their direction.

    With S the sum of squares of the other coordinates and T the sum of the squared targets t_k, the set
    coordinates are z_k = t_k * sqrt(S / (Z_DIM - T)), so T must stay below Z_DIM, and S = 0 (all other
    coordinates zero) admits only zeros."""
    z = np.array(z, dtype=np.float64, ndmin=2)
    keys = list(values)
    t = np.stack([np.broadcast_to(np.asarray(values[k], dtype=np.float64), (len(z),)) for k in keys], 1)
    total = np.square(t).sum(1)
    if np.any(total >= Z_DIM):
        raise ValueError(f"normalised coordinates have squares summing below {Z_DIM}, got {values}")
    rest = np.square(z).sum(1) - np.square(z[:, keys]).sum(1)
    if np.any((rest <= 0) & (total > 0)):
        raise ValueError("a latent whose other coordinates are all 0 reads only zeros in the set ones")
    z[:, keys] = t * np.sqrt(rest / (Z_DIM - total))[:, None]
    return z


def params_from_latent(z: np.ndarray) -> Scene:
    """The scene of latent z (float [Z_DIM], a standard-normal draw). Same z, same scene, always; z and
    c * z (c > 0) are the same scene."""
    z = np.asarray(z, dtype=np.float64)
    if z.shape != (Z_DIM,):
        raise ValueError(f"a toy-faces latent has shape ({Z_DIM},), got {z.shape}")
    if not np.all(np.isfinite(z)):
        raise ValueError("a toy-faces latent must be finite")
    u = [float(x) for x in ndtr(normalize_latent(z))]  # each in [0, 1]
    s = [2.0 * x - 1.0 for x in u]  # each in [-1, 1], 0 at z = 0

    skin = _ramp(_SKIN, u[6])
    warmth = 0.06 * s[7]
    skin = (min(255.0, skin[0] * (1 + warmth)), skin[1], skin[2] * (1 - 1.5 * warmth))
    hair_color = _ramp(_HAIR, u[9])

    glasses_on, t_glasses = _rare(u[RARE_LATENT_INDEX["glasses"]])
    hat_on, t_hat = _rare(u[RARE_LATENT_INDEX["hat"]])
    beard_on, t_beard = _rare(u[RARE_LATENT_INDEX["beard"]])
    earrings_on, t_earrings = _rare(u[RARE_LATENT_INDEX["earring"]])
    mouth_open = 0.0
    if u[17] > MOUTH_OPEN_THRESHOLD:
        mouth_open = 0.3 + 0.7 * (u[17] - MOUTH_OPEN_THRESHOLD) / (1 - MOUTH_OPEN_THRESHOLD)

    clothes = _hsv(u[20] + 0.45, 0.25 + 0.45 * u[21], 0.92 - 0.7 * u[21])
    collar = _scaled(clothes, 1.35) if u[21] > 0.5 else _scaled(clothes, 0.7)
    bg_value = 0.35 + 0.6 * u[23]
    bg1 = _hsv(u[22] + 0.6, 0.5 - 0.3 * u[23], bg_value)
    bg2 = _hsv(u[22] + 0.68, 0.45 - 0.25 * u[23], bg_value - 0.25 + 0.3 * (1 - u[23]))

    return Scene(
        center=(64.0 + 10.0 * s[0], 57.0 + 7.0 * s[1]),
        radius=21.0 + 8.0 * u[2],
        face_height=1.2 + 0.2 * u[5],
        jaw=0.32 - 0.22 * u[5],
        roll=0.3 * s[3],
        yaw=0.35 * s[4],
        light_angle=-np.pi / 2 + 1.2 * s[26],
        skin=skin,
        hair_style=HAIR_STYLES[int(np.searchsorted(_HAIR_STYLE_EDGES, u[8]))],
        hair_color=hair_color,
        hair_volume=u[10],
        hairline=u[11],
        parting=s[11] * abs(s[11]),
        eye_size=u[12],
        iris_color=_ramp(_IRIS, u[13]),
        brow_thickness=u[14],
        nose_size=u[15],
        mouth_width=u[16],
        mouth_open=mouth_open,
        lip_color=_mix(skin, (200, 70, 80), 0.2 + 0.35 * u[18]),
        ear_size=u[19],
        neck_width=min(u[31] / 0.7, 1.0),
        neckline="v" if u[31] > 0.7 else "round",
        shoulder_width=u[21],
        clothes_color=clothes,
        collar_color=collar,
        background_colors=(bg1, bg2),
        background_angle=2 * np.pi * u[24],
        stripe_strength=max(0.0, (u[25] - 0.35) / 0.65),
        stripe_frequency=1.0 + 2.0 * u[25],
        glasses=_pick(GLASSES_STYLES, t_glasses) if glasses_on else None,
        glasses_color=_ramp(_FRAMES, (3 * t_glasses) % 1.0),
        hat=_pick(HAT_STYLES, t_hat) if hat_on else None,
        hat_color=_ramp(_HAT, (3 * t_hat) % 1.0),
        beard=_pick(BEARD_STYLES, t_beard) if beard_on else None,
        beard_color=_scaled(hair_color, 0.85),
        earrings=_pick(EARRING_STYLES, t_earrings) if earrings_on else None,
        earring_color=_ramp(_METALS, (2 * t_earrings) % 1.0),
    )
