"""Contact sheets and heat maps as PNG, drawn with Pillow (fast, no display needed)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dgan_al.report.palette import class_palette


def heatmap(values: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """A [H,W] float map -> RGB uint8 [H,W,3] with matplotlib's 'magma' colours, 0..vmax."""
    from matplotlib import colormaps

    values = np.asarray(values, dtype=np.float32)
    vmax = float(values.max()) if vmax is None else float(vmax)
    scaled = np.clip(values / vmax, 0, 1) if vmax > 0 else np.zeros_like(values)
    return (colormaps["magma"](scaled)[..., :3] * 255).astype(np.uint8)


def contact_sheet(rows: Sequence[Sequence[np.ndarray]], captions: Sequence[str] | None = None,
                  path: Path | None = None, scale: int = 1, title: str | None = None,
                  legend: Sequence[str] | None = None) -> Image.Image:
    """Tile images: one row per item, its panels side by side, a caption above each row.

    rows: items, each a list of uint8 [H,W,3] panels of one size. ``legend``: class names drawn with
    their palette colours at the bottom. Written atomically to ``path`` when given.
    """
    font = ImageFont.load_default()
    h, w = rows[0][0].shape[:2]
    h, w = h * scale, w * scale
    cols = max(len(r) for r in rows)
    caption_h = 14 if captions else 0
    title_h = 18 if title else 0
    legend_h = 0
    if legend:
        per_line = max(1, (cols * (w + 4)) // 110)
        legend_h = 16 * ((len(legend) + per_line - 1) // per_line) + 4
    sheet = Image.new("RGB", (cols * (w + 4) + 4, title_h + len(rows) * (h + caption_h + 4) + 4 + legend_h),
                      (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((4, 3), title, fill=(0, 0, 0), font=font)
    for r, panels in enumerate(rows):
        y = title_h + 4 + r * (h + caption_h + 4)
        if captions:
            draw.text((4, y), captions[r], fill=(0, 0, 0), font=font)
        for c, panel in enumerate(panels):
            tile = Image.fromarray(np.asarray(panel, dtype=np.uint8))
            if scale != 1:
                tile = tile.resize((w, h), Image.NEAREST)
            sheet.paste(tile, (4 + c * (w + 4), y + caption_h))
    if legend:
        palette = class_palette(len(legend))
        y0 = sheet.height - legend_h + 2
        per_line = max(1, (cols * (w + 4)) // 110)
        for i, name in enumerate(legend):
            x, y = 4 + (i % per_line) * 110, y0 + (i // per_line) * 16
            draw.rectangle([x, y + 2, x + 10, y + 12], fill=tuple(int(v) for v in palette[i]), outline=(0, 0, 0))
            draw.text((x + 14, y + 1), name, fill=(0, 0, 0), font=font)
    if path is not None:
        from dgan_al.files import atomic_write_bytes

        buf = io.BytesIO()
        sheet.save(buf, format="PNG")
        atomic_write_bytes(Path(path), buf.getvalue())
    return sheet


def save_mask_png(path: Path, mask: np.ndarray) -> None:
    """A class-id mask as an 8-bit palette PNG (values = class ids, VOC colours), written atomically."""
    from dgan_al.files import atomic_write_bytes

    image = Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="P")
    image.putpalette(class_palette(256).reshape(-1).tolist())
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write_bytes(Path(path), buf.getvalue())
