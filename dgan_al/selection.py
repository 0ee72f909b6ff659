"""Choosing what to annotate: the uncertainty band and k-center greedy coreset (pure array functions).

The paper's protocol (DatasetGAN §5.1): score the pool by the ensemble's JS divergence, drop the top
``skip_top`` fraction (likely GAN failures), keep the band just below it, and pick ``n`` representative
images from the band with k-center greedy (Sener & Savarese 2018), seeded with the already-annotated
images so that new picks cover what the annotations do not.

For small budgets, typical selection (TypiClust, Hacohen et al. 2022) needs ``kmeans`` (k-means++ then
Lloyd, seeded from a numpy Generator) and ``typicality`` (inverse mean distance to the nearest neighbours).
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


@dataclass
class KMeansResult:
    labels: np.ndarray  # int64 [N] cluster of each point
    centres: np.ndarray  # [k, D]
    inertia: float  # sum of squared distances to the assigned centres
    iterations: int  # Lloyd iterations run
    converged: bool  # labels stopped changing before max_iter


def _squared_distances(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """[N, k] squared Euclidean distances (clipped at 0); k is small, so the whole matrix is kept."""
    d2 = (points**2).sum(1)[:, None] - 2.0 * points @ centres.T + (centres**2).sum(1)[None, :]
    return np.maximum(d2, 0.0)


def _assign(points: np.ndarray, centres: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre (ties to the lower index) and its squared distance, per point, chunk rows at a time."""
    labels = np.empty(len(points), dtype=np.int64)
    best = np.empty(len(points))
    for start in range(0, len(points), chunk):
        d2 = _squared_distances(points[start:start + chunk], centres)
        labels[start:start + chunk] = d2.argmin(1)
        best[start:start + chunk] = d2[np.arange(len(d2)), labels[start:start + chunk]]
    return labels, best


def _assign_all(points: np.ndarray, centres: np.ndarray, chunk: int) -> np.ndarray:
    """[N, k] squared distances to every centre, chunk rows at a time."""
    return np.concatenate([_squared_distances(points[start:start + chunk], centres)
                           for start in range(0, len(points), chunk)]) if len(points) else np.zeros((0, len(centres)))


def kmeans(points: np.ndarray, k: int, rng: np.random.Generator, max_iter: int = 100,
           chunk: int = 4096) -> KMeansResult:
    """k-means: greedy k-means++ seeding (Arthur & Vassilvitskii 2007; at each step the best of 2 + ln k
    D^2-weighted draws, as scikit-learn does) from ``rng``, then Lloyd iterations until the
    labels stop changing (or ``max_iter``). One initialisation; deterministic for a given rng state.

    points: [N, D], used as given (nothing is standardised). A cluster left empty takes the point farthest
    from its centre; when every point already sits on a centre (fewer distinct points than k) clusters may
    stay empty. Cost per iteration O(N x k x D); memory O(chunk x k) beyond the points.
    """
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"points must be [N, D], got shape {x.shape}")
    if not 1 <= k <= len(x):
        raise ValueError(f"cannot make {k} clusters of {len(x)} points")
    centres = np.empty((k, x.shape[1]))
    centres[0] = x[rng.integers(len(x))]
    nearest = _assign(x, centres[:1], chunk)[1]
    trials = 2 + int(np.log(k))  # greedy k-means++ (as scikit-learn): the best of a few D^2 draws
    for j in range(1, k):
        total = nearest.sum()
        if total <= 0:  # every point sits on a centre already
            centres[j] = x[rng.integers(len(x))]
            continue
        drawn = np.minimum(np.searchsorted(np.cumsum(nearest), rng.random(trials) * total, side="right"),
                           len(x) - 1)
        after = np.minimum(nearest[:, None], _assign_all(x, x[drawn], chunk))
        best = int(np.argmin(after.sum(0)))  # ties to the first draw
        centres[j] = x[drawn[best]]
        nearest = after[:, best]
    labels = np.full(len(x), -1, dtype=np.int64)
    converged, iterations = False, 0
    for iterations in range(1, max_iter + 1):
        new, d2 = _assign(x, centres, chunk)
        if np.array_equal(new, labels):
            converged = True
            break
        labels = new
        counts = np.bincount(labels, minlength=k)
        member = np.zeros((k, len(x)))
        member[labels, np.arange(len(x))] = 1.0
        sums = member @ x  # per-cluster sums as one product (np.add.at is ~10x slower here)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
        taken = d2.copy()
        for j in np.flatnonzero(~filled):  # an empty cluster restarts at the point farthest from its centre
            far = int(np.argmax(taken))
            if taken[far] <= 0:
                break
            centres[j] = x[far]
            taken[far] = 0.0
    inertia = float(_assign(x, centres, chunk)[1].sum())
    return KMeansResult(labels=labels, centres=centres, inertia=inertia, iterations=iterations, converged=converged)


def typicality(points: np.ndarray, neighbours: int = 20, chunk: int = 1024) -> np.ndarray:
    """Typicality of each point within its set (TypiClust): 1 / the mean Euclidean distance to its
    min(``neighbours``, N - 1) nearest other points: [N]. A single point gets NaN (no neighbours); a point
    whose neighbours all coincide with it gets inf. Never forms more than chunk x N distances.
    """
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"points must be [N, D], got shape {x.shape}")
    n = len(x)
    k = min(neighbours, n - 1)
    out = np.full(n, np.nan)
    if k < 1:
        return out
    sq = (x**2).sum(1)
    for start in range(0, n, chunk):
        p = x[start:start + chunk]
        d2 = np.maximum(sq[start:start + chunk, None] - 2.0 * p @ x.T + sq[None, :], 0.0)
        d2[np.arange(len(p)), np.arange(start, start + len(p))] = np.inf  # not its own neighbour
        near = np.partition(d2, k - 1, axis=1)[:, :k]
        with np.errstate(divide="ignore"):
            out[start:start + chunk] = 1.0 / np.sqrt(near).mean(1)
    return out
