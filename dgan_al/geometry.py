"""Where the label image sits among a generator's feature maps.

How a feature map lines up with the label image (``LabelGeometry``): every map is upsampled bilinearly
(align_corners=False) to the ``canvas`` size, then the ``crop`` window of the canvas is the label image.
For most generators canvas == crop == the output size. A 1024px generator labelled at 512 has a
512x512 canvas (maps resized to 512, as in the DatasetGAN reference); an LSUN-car 512x512 generator
labelled at 512x384 has a 512x512 canvas and the crop (64, 0, 384, 512).

A part of its own so that the interpreter (which takes feature maps) and the generators (which make
them) both import it without depending on each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LabelGeometry:
    """Where the label image sits on the canvas that feature maps are upsampled to."""

    canvas: tuple[int, int]  # (H_c, W_c): the size every feature map is bilinearly upsampled to
    crop: tuple[int, int, int, int]  # (top, left, height, width) of the label image in canvas pixels

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of label masks and images."""
        return (self.crop[2], self.crop[3])

    @classmethod
    def full(cls, height: int, width: int) -> "LabelGeometry":
        return cls(canvas=(height, width), crop=(0, 0, height, width))
