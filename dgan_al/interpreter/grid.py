"""Inference at a grid of label pixels without the generator: maps resampled once, scored every round.

``on_grid`` resamples each feature map at the label pixels of a ``grid:S`` pixel set; the ensemble run
on those maps with the identity geometry ``LabelGeometry.full(ny, nx)`` gives the same JS, votes and
embedding at those pixels as ``score_images(..., pixels="grid:S")`` on the native maps (upsampling is
linear and separable). ``PoolGrid`` keeps a pool's resampled maps (fp16) so that every later round
scores it without synthesising it again (~2 MB per toy-faces image at grid:4), and ``class_js`` sums
an image's JS per predicted class (the ``rare`` strategy's input).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch

from dgan_al.geometry import LabelGeometry
from dgan_al.interpreter.bilinear import interpolation_matrix
from dgan_al.interpreter.ensemble import PixelEnsemble, scoring_pixels


@torch.no_grad()
def on_grid(features: list[torch.Tensor], geometry: LabelGeometry, pixels: str) -> list[torch.Tensor]:
    """Each map [B, C_l, h_l, w_l] bilinearly resampled at the grid's label pixels: [B, C_l, ny, nx]."""
    kind, ys, xs = scoring_pixels(pixels, geometry.size)
    if kind != "grid":
        raise ValueError(f"on_grid needs a grid:S pixel set, got {pixels!r}")
    (canvas_h, canvas_w), (top, left, _, _) = geometry.canvas, geometry.crop
    out = []
    for f in features:
        uy = interpolation_matrix(f.shape[2], canvas_h, ys + top).to(f.device)  # [ny, h]
        ux = interpolation_matrix(f.shape[3], canvas_w, xs + left).to(f.device)  # [nx, w]
        out.append(torch.matmul(uy, torch.matmul(f.float(), ux.t())))  # [B, C, ny, nx]
    return out


def class_js(js: torch.Tensor, labels: torch.Tensor, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per image, JS summed over the pixels of each predicted class, and each class's pixel share.

    js float [B, ...], labels int [B, ...] (the same pixels) -> (class_js [B, C], class_share [B, C])."""
    b = js.shape[0]
    flat_js, flat_labels = js.reshape(b, -1).double(), labels.reshape(b, -1).long()
    sums = torch.zeros(b, n_classes, dtype=torch.float64).scatter_add_(1, flat_labels, flat_js)
    counts = torch.zeros(b, n_classes, dtype=torch.float64).scatter_add_(1, flat_labels, torch.ones_like(flat_js))
    return sums.numpy(), (counts / flat_labels.shape[1]).numpy()


@dataclass
class GridScores:
    scores: np.ndarray  # [N] estimated sum of JS over all label pixels (as score_images)
    embeddings: np.ndarray  # [N, M*h1] pooled first-layer activations at the grid
    class_js: np.ndarray  # [N, C] JS per predicted class, scaled like scores
    class_share: np.ndarray  # [N, C] predicted pixel share of each class


class PoolGrid:
    """A pool's feature maps at the grid of a ``grid:S`` pixel set, fp16 in memory.

    batches: the pool's feature maps, batch by batch ([B, C_l, h_l, w_l] per layer, native resolution);
    geometry: the generator's label geometry."""

    def __init__(self, batches: Iterable[list[torch.Tensor]], geometry: LabelGeometry, pixels: str):
        self.pixels = pixels
        self.chunks = [[g.to(torch.float16) for g in on_grid(maps, geometry, pixels)] for maps in batches]
        ny, nx = self.chunks[0][0].shape[2:]
        self.geometry = LabelGeometry.full(int(ny), int(nx))
        self.scale = geometry.size[0] * geometry.size[1] / (ny * nx)

    @torch.no_grad()
    def score(self, model: PixelEnsemble) -> GridScores:
        parts = []
        for maps in self.chunks:
            p = model.predict([m.float() for m in maps], geometry=self.geometry)
            cjs, share = class_js(p.js, p.labels, len(model.classes))
            parts.append((p.image_score.numpy() * self.scale, p.embedding.numpy(), cjs * self.scale, share))
        return GridScores(*(np.concatenate([p[i] for p in parts]) for i in range(4)))
