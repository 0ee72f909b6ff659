"""The class palette (PASCAL VOC's, as LabelMe uses for label PNGs) and mask overlays."""

from __future__ import annotations

import numpy as np


def class_palette(n: int = 256) -> np.ndarray:
    """uint8 [n, 3]: class 0 black, then the PASCAL VOC / LabelMe label colours."""
    out = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out[i] = (r, g, b)
    return out


def colorize(mask: np.ndarray, ignore: int = 255) -> np.ndarray:
    """Class-id mask [H,W] -> RGB uint8 [H,W,3]; ignored pixels white."""
    palette = class_palette(256)
    palette[ignore] = (255, 255, 255)
    return palette[np.asarray(mask, dtype=np.uint8)]


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the class colours over an RGB image (background left as is): uint8 [H,W,3]."""
    image = np.asarray(image, dtype=np.float32)
    colours = colorize(mask).astype(np.float32)
    blend = np.where((np.asarray(mask) > 0)[..., None], (1 - alpha) * image + alpha * colours, image)
    return blend.clip(0, 255).astype(np.uint8)
