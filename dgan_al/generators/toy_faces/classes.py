"""The part classes of the toy-faces world and the fixed colour of each in mask overlays.

Class id = index in ``CLASSES``. Rare parts (present in about 10% of scenes each): glasses, hat, beard,
earring. ``teeth`` shows only when the mouth is open (about 22% of scenes).
"""

from __future__ import annotations

import numpy as np

CLASSES: tuple[str, ...] = (
    "background",  # 0
    "skin",  # 1
    "hair",  # 2
    "eye",  # 3
    "eyebrow",  # 4
    "nose",  # 5
    "mouth",  # 6
    "teeth",  # 7
    "ear",  # 8
    "neck",  # 9
    "clothes",  # 10
    "glasses",  # 11
    "hat",  # 12
    "beard",  # 13
    "earring",  # 14
)

CLASS_ID: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}

RARE_CLASSES: tuple[str, ...] = ("glasses", "hat", "beard", "earring")

# Overlay colour of each class, uint8 [15, 3]; background is black, the rest are far apart in colour.
PALETTE: np.ndarray = np.array(
    [
        (0, 0, 0),  # background
        (255, 200, 120),  # skin
        (150, 60, 20),  # hair
        (0, 220, 255),  # eye
        (110, 0, 160),  # eyebrow
        (255, 120, 0),  # nose
        (230, 0, 60),  # mouth
        (255, 255, 255),  # teeth
        (0, 170, 70),  # ear
        (180, 230, 0),  # neck
        (40, 80, 230),  # clothes
        (255, 0, 255),  # glasses
        (0, 120, 140),  # hat
        (120, 120, 120),  # beard
        (255, 240, 0),  # earring
    ],
    dtype=np.uint8,
)

assert PALETTE.shape == (len(CLASSES), 3)
