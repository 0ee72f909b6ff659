"""Contact sheets: a grid of images, each beside its part mask drawn over it in the class palette.

``python -m dgan_al.generators.toy_faces.sheet [out.png]`` writes the renderer's sheet
(docs/toy-faces-render.png by default): z = 0 first, then latents 0..14 of ``sample_latents(32, 16, seed=0)``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from dgan_al.generators.toy_faces.classes import PALETTE


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """The mask's class colours blended over the image: uint8 [H,W,3], uint8 [H,W] -> uint8 [H,W,3]."""
    mixed = (1 - alpha) * image.astype(np.float32) + alpha * PALETTE[mask].astype(np.float32)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def contact_sheet(images: np.ndarray, masks: np.ndarray, columns: int = 4, zoom: int = 2,
                  gap: int = 4, alpha: float = 0.6) -> np.ndarray:
    """A grid of tiles, each the image and, to its right, the mask over the image.

    images uint8 [N,H,W,3], masks uint8 [N,H,W] -> uint8 sheet [rows*(zoom*H+gap)+gap, ..., 3] on white;
    pixels are enlarged ``zoom`` times by repetition (nearest neighbour), so nothing is smoothed.
    """
    images, masks = np.asarray(images), np.asarray(masks)
    if images.ndim != 4 or masks.shape != images.shape[:3]:
        raise ValueError(f"expected images [N,H,W,3] and masks [N,H,W], got {images.shape} and {masks.shape}")
    n, h, w, _ = images.shape
    rows = -(-n // columns)
    th, tw = zoom * h, zoom * w
    sheet = np.full((rows * (th + gap) + gap, columns * (2 * tw + 2 * gap) + gap, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        top, left = gap + r * (th + gap), gap + c * (2 * tw + 2 * gap)
        pair = np.concatenate([images[i], overlay(images[i], masks[i], alpha)], axis=1)  # [H, 2W, 3]
        pair = pair.repeat(zoom, axis=0).repeat(zoom, axis=1)
        sheet[top:top + th, left:left + tw] = pair[:, :tw]
        sheet[top:top + th, left + tw + gap // 2:left + 2 * tw + gap // 2] = pair[:, tw:]
    return sheet


def render_sheet_latents() -> np.ndarray:
    """The latents of the renderer's sheet: z = 0, then sample_latents(32, 16, seed=0)[:15]. [16, 32]"""
    from dgan_al.generators.protocol import sample_latents
    from dgan_al.generators.toy_faces.scene import Z_DIM

    z = sample_latents(Z_DIM, 16, seed=0).numpy()
    return np.concatenate([np.zeros((1, Z_DIM), dtype=np.float32), z[:15]])


def main(out: str = "docs/toy-faces-render.png") -> None:
    from dgan_al.generators.toy_faces.render import render_latents

    rgb, mask = render_latents(render_sheet_latents())
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(contact_sheet(rgb, mask)).save(out, optimize=True)


if __name__ == "__main__":
    main(*sys.argv[1:2])
