"""The coreset's embeddings of images, built one way for ``next-round`` and ``simulate``.

- ``w``: the generator's intermediate latent of each z (``generator.map``), [N, w_dim];
- ``activations``: the interpreter's pooled first-layer activations (``score_images(...).embedding``)
  over the image-score pixels, [N, M*h1]. The pool's come with its scores; ``annotated_embeddings``
  embeds the annotated images (k-center's initial centres) from their cached feature maps the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dgan_al.workflows.features import load_maps

EMBEDDINGS = ("activations", "w")


@torch.no_grad()
def w_embedding(generator, z: torch.Tensor | list[torch.Tensor]) -> np.ndarray:
    """[N, w_dim] float32: w = generator.map(z); a list may mix z and w+ latents (mapped one by one)."""
    if isinstance(z, (list, tuple)):
        if not z:
            return generator.map(generator.sample_latents(1, seed=0)).numpy()[:0]
        return np.concatenate([generator.map(latent[None]).numpy() for latent in z])
    return generator.map(z).numpy()


@torch.no_grad()
def annotated_embeddings(kind: str, *, generator, ensemble, latents: list[torch.Tensor], feature_paths: list[Path],
                         pixels: str, seed: int = 0) -> np.ndarray:
    """The annotated images embedded like the pool: their latents (z or w+) for ``w``, their cached feature
    maps (``cached_features``) for ``activations`` (scored at ``pixels`` with ``seed``, as the pool)."""
    if kind == "w":
        return w_embedding(generator, latents)
    if kind != "activations":
        raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {kind!r}")
    return np.concatenate([
        ensemble.score_images([m[None].float().to(ensemble.device_) for m in load_maps(p)], pixels=pixels,
                              seed=seed).embedding.numpy()
        for p in feature_paths])
