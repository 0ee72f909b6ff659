"""What every generator gives the rest of dgan-al: images, per-layer feature maps, and latents.

Shapes used throughout:
    latents   float32 [B, z_dim]           z vectors (a pool latent is identified by (seed, index))
    images    uint8   [B, H, W, 3]         at the label resolution, after any crop
    features  list of float32 [B, C_l, h_l, w_l], one per tapped layer, at the layer's native resolution

The label geometry (how feature maps line up with the label image) is ``dgan_al.geometry``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from dgan_al.geometry import LabelGeometry


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

    def synthesize(self, latents: torch.Tensor) -> Synthesis:
        """Images and feature taps of z [B, z_dim], or of w+ [B, *w_plus_shape] where ``w_plus_shape`` is set."""
        ...

    @property
    def w_plus_shape(self) -> tuple[int, int] | None:
        """(num_ws, w_dim) when ``synthesize`` and ``map`` also take w+ latents (used as given: no
        truncation), e.g. images embedded or annotated in w+; None for a generator that takes z only."""
        ...

    def mean_latent(self) -> torch.Tensor:
        """The z of the paper's first image to annotate, float32 [z_dim]."""
        ...

    def sample_latents(self, n: int, seed: int, start: int = 0) -> torch.Tensor:
        """Latents ``start .. start+n-1`` of the stream ``seed``, float32 [n, z_dim]."""
        ...

    def map(self, latents: torch.Tensor) -> torch.Tensor:
        """The intermediate latent w of each z, at the generator's truncation: float32 [B, w_dim] on the CPU
        (of a w+ latent: its first row).

        The coreset's ``w`` embedding. A generator without a mapping network returns z itself.
        """
        ...


@runtime_checkable
class OracleGenerator(Generator, Protocol):
    """A generator of a world with exact ground truth (toy-faces): the simulated annotator's source."""

    classes: list[str]

    def oracle_mask(self, latents: torch.Tensor) -> np.ndarray:
        """The exact class mask of each latent's scene, uint8 [B, H, W] (ids index ``classes``)."""
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
