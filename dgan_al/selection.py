"""Choosing what to annotate: the uncertainty band and k-center greedy coreset (pure array functions).

The paper's protocol (DatasetGAN §5.1): score the pool by the ensemble's JS divergence, drop the top
``skip_top`` fraction (likely GAN failures), keep the band just below it, and pick ``n`` representative
images from the band with k-center greedy (Sener & Savarese 2018), seeded with the already-annotated
images so that new picks cover what the annotations do not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


def band_ranks(n: int, skip_top: float = 0.10, width: float = 0.10) -> tuple[int, int]:
    """The ranks ``[start, stop)`` of the uncertainty band among ``n`` images: the one band rule.

    ``start`` = skip_top x n and ``stop`` = (skip_top + width) x n, each rounded to the nearest whole rank
    (halves up; rounding also absorbs float error such as 0.29 x 100 = 28.999...), ``stop`` at most n.
    With n = 10000 and the defaults: ranks 1000..1999.
    """
    if not (0.0 <= skip_top < 1.0 and 0.0 < width <= 1.0):
        raise ValueError(f"need 0 <= skip_top < 1 and 0 < width <= 1, got skip_top={skip_top}, width={width}")
    start = int(math.floor(skip_top * n + 0.5))
    stop = min(n, int(math.floor((skip_top + width) * n + 0.5)))
    return start, max(stop, start)


def uncertainty_band(scores: np.ndarray, skip_top: float = 0.10, width: float = 0.10) -> np.ndarray:
    """Indices of the images whose ranks (most uncertain first) lie in ``band_ranks``, in rank order.

    scores: [N] (higher = more uncertain). Ranks are by descending score, ties broken by lower index,
    so the band is deterministic.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    start, stop = band_ranks(len(scores), skip_top, width)
    return rank_order(scores)[start:stop]


def rank_order(scores: np.ndarray) -> np.ndarray:
    """Indices sorted by descending score, ties by ascending index: [N]."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.lexsort((np.arange(len(scores)), -scores))


def rank_agreement(full_scores: np.ndarray, approximate_scores: np.ndarray, skip_top: float = 0.10,
                   width: float = 0.10) -> dict[str, float]:
    """How well a cheap image score ranks a pool like the full one: what the loop would choose among.

    Returns ``{"spearman": rank correlation, "band_overlap": |band_full & band_approx| / |band_full|}``
    with both bands from ``uncertainty_band``. A cheap score may be a default only with spearman >= 0.95
    and band_overlap >= 0.8.
    """
    full_scores = np.asarray(full_scores, dtype=np.float64)
    approximate_scores = np.asarray(approximate_scores, dtype=np.float64)
    if full_scores.shape != approximate_scores.shape or full_scores.ndim != 1:
        raise ValueError(f"expected two score vectors of one length, got shapes {full_scores.shape} "
                         f"and {approximate_scores.shape}")
    band_full = uncertainty_band(full_scores, skip_top, width)
    band_approx = uncertainty_band(approximate_scores, skip_top, width)
    overlap = len(np.intersect1d(band_full, band_approx)) / max(len(band_full), 1)
    spearman = float(stats.spearmanr(full_scores, approximate_scores).statistic)
    return {"spearman": spearman, "band_overlap": float(overlap)}


@dataclass
class CoresetResult:
    order: np.ndarray  # [n] indices into the candidates, in the order they were picked
    distances: np.ndarray  # [n] each pick's distance to the nearest centre chosen before it (or seeded)
    radius: float  # max over candidates of the distance to the nearest centre, after all picks


def _nearest_distance(points: np.ndarray, centres: np.ndarray, chunk: int) -> np.ndarray:
    """min over centres of the Euclidean distance, per point: [N]; never forms more than chunk x M."""
    best = np.full(len(points), np.inf)
    if len(centres) == 0:
        return best
    c_sq = (centres**2).sum(1)
    for start in range(0, len(points), chunk):
        p = points[start:start + chunk]
        d2 = (p**2).sum(1)[:, None] - 2.0 * p @ centres.T + c_sq[None, :]
        best[start:start + chunk] = np.sqrt(np.maximum(d2.min(1), 0.0))
    return best


def k_center_greedy(embeddings: np.ndarray, already_chosen: np.ndarray | None, n: int,
                    chunk: int = 4096) -> CoresetResult:
    """Pick ``n`` candidates, each the farthest from every centre so far (a 2-approximation of k-center).

    embeddings: [N, D] candidates; already_chosen: [M, D] embeddings of annotated images (the initial
    centres) or None. Without initial centres the first pick is the candidate nearest the candidates'
    mean (the most typical one). Ties go to the lower index. Cost O(n x N x D); memory O(chunk x D).
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be [N, D], got shape {x.shape}")
    if not 0 <= n <= len(x):
        raise ValueError(f"cannot pick {n} of {len(x)} candidates")
    seeds = np.zeros((0, x.shape[1])) if already_chosen is None else np.asarray(already_chosen, np.float64)
    if seeds.ndim != 2 or (len(seeds) and seeds.shape[1] != x.shape[1]):
        raise ValueError(f"already_chosen must be [M, {x.shape[1]}], got shape {seeds.shape}")
    nearest = _nearest_distance(x, seeds, chunk)
    taken = np.zeros(len(x), dtype=bool)
    order, dists = [], []
    for _ in range(n):
        if np.isinf(nearest).all():  # no centre yet: start from the most typical candidate
            pick = int(np.argmin(_nearest_distance(x, x.mean(0, keepdims=True), chunk)))
            dist = np.inf
        else:  # the farthest candidate not yet taken (duplicates of a centre have distance 0)
            pick = int(np.argmax(np.where(taken, -1.0, nearest)))
            dist = float(nearest[pick])
        taken[pick] = True
        order.append(pick)
        dists.append(dist)
        nearest = np.minimum(nearest, _nearest_distance(x, x[pick:pick + 1], chunk))
    radius = float(nearest.max()) if len(x) else 0.0
    return CoresetResult(order=np.array(order, dtype=np.int64), distances=np.array(dists), radius=radius)
