"""Is a cheap image score good enough? Compare coarse-grid / pixel-subset scores with the full one.

The loop may score its pool on a coarse grid or a fixed pixel subset on a CPU only if, on a real pool,
the cheap score ranks images like the full-resolution one (``selection.rank_agreement``: Spearman >= 0.95
and >= 80% of the loop's uncertainty band the same). ``compare_pixel_sets`` measures exactly that, plus
the time each score took; ``benchmarks/bench_score_pixels.py`` runs it on toy-faces.
"""

from __future__ import annotations

import time
from typing import Iterable, Sequence

import numpy as np
import torch

from dgan_al.geometry import LabelGeometry
from dgan_al.interpreter.ensemble import PixelEnsemble
from dgan_al.progress import ProgressCallback, silent
from dgan_al.selection import rank_agreement


def compare_pixel_sets(
    ensemble: PixelEnsemble,
    feature_batches: Iterable[Sequence[torch.Tensor]],
    pixel_sets: Sequence[str] = ("grid:2", "grid:4", "subset:4096"),
    geometry: LabelGeometry | None = None,
    skip_top: float = 0.10,
    width: float = 0.10,
    progress: ProgressCallback = silent,
) -> dict[str, dict[str, float]]:
    """Score every batch of feature maps with the full image score and each cheap pixel set.

    feature_batches: an iterable of feature-map batches ([B, C_l, h_l, w_l] per layer), e.g. a pool run
    through the generator chunk by chunk. Returns, per pixel set (and "full"):
    ``{"spearman", "band_overlap", "seconds_per_image"}`` (the agreement entries of "full" are 1).
    """
    scores: dict[str, list[np.ndarray]] = {"full": [], **{p: [] for p in pixel_sets}}
    seconds = dict.fromkeys(scores, 0.0)
    n_images = 0
    for batch in feature_batches:
        for pixels in scores:
            start = time.perf_counter()
            result = ensemble.score_images(batch, geometry, pixels=pixels)
            seconds[pixels] += time.perf_counter() - start
            scores[pixels].append(result.image_score.numpy())
        n_images += batch[0].shape[0]
        progress("comparing image scores", n_images, None)
    full = np.concatenate(scores["full"])
    report = {}
    for pixels, parts in scores.items():
        agreement = rank_agreement(full, np.concatenate(parts), skip_top, width)
        report[pixels] = {**agreement, "seconds_per_image": seconds[pixels] / max(n_images, 1)}
    return report
