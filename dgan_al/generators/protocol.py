"""What every generator gives the rest of dgan-al: images, per-layer feature maps, and latents.

Shapes used throughout:
    latents   float32 [B, z_dim]           z vectors (a pool latent is identified by (seed, index))
    images    uint8   [B, H, W, 3]         at the label resolution, after any crop
    features  list of float32 [B, C_l, h_l, w_l], one per tapped layer, at the layer's native resolution

How a feature map lines up with the label image (``LabelGeometry``): every map is upsampled bilinearly
(align_corners=False) to the ``canvas`` size, then the ``crop`` window of the canvas is the label image.
For most generators canvas == crop == the output size. A 1024px generator labelled at 512 has a
512x512 canvas (maps resized to 512, as in the DatasetGAN reference); an LSUN-car 512x512 generator
labelled at 512x384 has a 512x512 canvas and the crop (64, 0, 384, 512).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch


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


@dataclass
class Synthesis:
    """The result of ``Generator.synthesize``: images and their feature maps for one batch."""

    images: torch.Tensor  # uint8 [B, H, W, 3]
    features: list[torch.Tensor]  # float32 [B, C_l, h_l, w_l] per tapped layer, native resolution


@runtime_checkable
class Generator(Protocol):
    """The generator protocol. Same latent in, same pixels and features out, whatever the batch."""

    identity: str  # stable name of the weights, e.g. "toy-faces@1" or "stylegan2:<sha256 prefix>"
    z_dim: int
    truncation_psi: float
    geometry: LabelGeometry
    feature_channels: list[int]  # C_l per tapped layer
    feature_sizes: list[tuple[int, int]]  # (h_l, w_l) per tapped layer

    @property
    def resolution(self) -> tuple[int, int]:
        """(H, W) of the images ``synthesize`` returns (== geometry.size)."""
        ...

    def synthesize(self, latents: torch.Tensor) -> Synthesis: ...

    def mean_latent(self) -> torch.Tensor:
        """The z of the paper's first image to annotate, float32 [z_dim]."""
        ...

    def sample_latents(self, n: int, seed: int, start: int = 0) -> torch.Tensor:
        """Latents ``start .. start+n-1`` of the stream ``seed``, float32 [n, z_dim]."""
        ...


def sample_latents(z_dim: int, n: int, seed: int, start: int = 0) -> torch.Tensor:
    """Standard-normal z vectors; latent i comes from its own generator seeded by (seed, i).

    So a larger pool extends a smaller one and never reshuffles it, and any latent can be regenerated
    from its (seed, index) alone. float32 [n, z_dim].
    """
    if n < 0 or start < 0:
        raise ValueError(f"n and start must be >= 0, got n={n}, start={start}")
    out = np.empty((n, z_dim), dtype=np.float32)
    for row, index in enumerate(range(start, start + n)):
        out[row] = np.random.default_rng([seed, index]).standard_normal(z_dim, dtype=np.float32)
    return torch.from_numpy(out)


def total_feature_width(generator: Generator) -> int:
    return int(sum(generator.feature_channels))
