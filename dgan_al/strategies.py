"""Selection strategies: strategy name -> the pool images to export, one entry point for every caller.

``choose`` is what ``next-round`` and ``simulate`` both call, so a strategy is written once. Pure
functions over arrays (K = images annotated per round):

- ``random``: K candidates uniformly at random.
- ``random-expert``: 2K at random; the expert keeps the K most realistic.
- ``uncertainty``: the K with the highest image score (JS summed over pixels).
- ``coreset``: k-center greedy over every candidate (K centres), seeded with the annotated images.
- ``al``: the paper's protocol (DatasetGAN §5.1): drop the top ``skip_top`` by score, k-center greedy
  (``centers`` centres) on the ``band`` below; the expert keeps K.
- ``rare``: class-balanced uncertainty, aimed at the rare parts the paper's protocol misses: each
  image's JS summed per predicted class (``class_js`` [N, C]), each class weighted by the inverse of its
  predicted pixel share over the candidates to the power ``rare_power``; the K highest.

Every choice comes with its record (for ``selection.json``): the band's ranks and score range where a
band is used (``selection.uncertainty_band``), the coreset radius, the class weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dgan_al.selection import band_ranks, k_center_greedy, rank_order, uncertainty_band

STRATEGIES = ("random", "random-expert", "uncertainty", "coreset", "al", "rare")
EXPERT_STRATEGIES = frozenset({"random-expert", "al"})  # export 2K (or centers); the expert keeps K


def needs(strategy: str) -> set[str]:
    """What ``choose`` needs for a strategy: a subset of {"scores", "embeddings", "class_js"}."""
    return {"random": set(), "random-expert": set(), "uncertainty": {"scores"}, "coreset": {"embeddings"},
            "al": {"scores", "embeddings"}, "rare": {"class_js"}}[strategy]


def exported(strategy: str, per_round: int, centers: int) -> int:
    """How many images a strategy exports in a round (the expert strategies export more than K)."""
    return {"random-expert": 2 * per_round, "al": centers}.get(strategy, per_round)


@dataclass
class Choice:
    order: np.ndarray  # int64 [n]: indices into the candidates, in the order chosen
    keep: int | None  # how many the expert annotates (None: all)
    record: dict = field(default_factory=dict)  # why: band, coreset, class weights
    coreset_distances: np.ndarray | None = None  # [n] each pick's distance to the nearest earlier centre


def class_weights(class_share: np.ndarray, power: float) -> np.ndarray:
    """Per class, (1 / its mean predicted pixel share over the candidates) ** power, normalised to mean 1
    over the classes predicted at all (the others weigh 0): [C]. class_share: [N, C], rows sum to 1."""
    share = np.asarray(class_share, dtype=np.float64).mean(0)
    seen = share > 0
    weights = np.zeros(len(share))
    weights[seen] = share[seen] ** -power
    return weights / weights[seen].mean() if seen.any() else weights


def choose(strategy: str, n_candidates: int, *, per_round: int, rng: np.random.Generator, scores: np.ndarray | None = None,
           embeddings: np.ndarray | None = None, seed_embeddings: np.ndarray | None = None,
           class_js: np.ndarray | None = None, class_share: np.ndarray | None = None, skip_top: float = 0.10,
           band: float = 0.10, centers: int = 12, rare_power: float = 1.0) -> Choice:
    """Choose among ``n_candidates`` candidates (the arrays' rows); see the module doc. Raises ValueError
    for an unknown strategy, a missing array, or too few candidates (in the band)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: choose from {', '.join(STRATEGIES)}")
    given = {"scores": scores, "embeddings": embeddings, "class_js": class_js}
    missing = sorted(name for name in needs(strategy) if given[name] is None)
    if missing:
        raise ValueError(f"strategy {strategy!r} needs {', '.join(missing)}")
    k = per_round
    if n_candidates < exported(strategy, per_round, centers):
        raise ValueError(f"only {n_candidates} candidates left; {strategy} exports "
                         f"{exported(strategy, per_round, centers)}")
    if strategy in ("random", "random-expert"):
        picked = rng.choice(n_candidates, size=exported(strategy, per_round, centers), replace=False)
        return Choice(picked.astype(np.int64), keep=k if strategy == "random-expert" else None,
                      record={"strategy": strategy})
    if strategy == "uncertainty":
        order = rank_order(scores)[:k]
        return Choice(order.astype(np.int64), None, {"strategy": strategy})
    if strategy == "rare":
        if class_share is None:
            raise ValueError("strategy 'rare' needs class_share")
        weights = class_weights(class_share, rare_power)
        weighted = np.asarray(class_js, dtype=np.float64) @ weights
        order = rank_order(weighted)[:k]
        return Choice(order.astype(np.int64), None, {"strategy": strategy, "rare_power": rare_power,
                                                     "class_weights": [float(w) for w in weights]})
    if strategy == "coreset":
        result = k_center_greedy(embeddings, seed_embeddings, k)
        return Choice(result.order, None, {"strategy": strategy, "coreset": {"radius_after": result.radius}},
                      result.distances)
    scores = np.asarray(scores, dtype=np.float64)
    inside = uncertainty_band(scores, skip_top, band)
    if len(inside) < centers:
        raise ValueError(f"the uncertainty band holds {len(inside)} images, fewer than the {centers} centres")
    result = k_center_greedy(embeddings[inside], seed_embeddings, centers)
    start, stop = band_ranks(len(scores), skip_top, band)
    record = {"strategy": strategy,
              "band": {"ranks": [start, stop - 1],
                       "score_range": [float(scores[inside].min()), float(scores[inside].max())],
                       "size": int(len(inside))},
              "coreset": {"radius_after": result.radius}}
    return Choice(inside[result.order].astype(np.int64), min(k, centers), record, result.distances)


def image_ranks(scores: np.ndarray) -> np.ndarray:
    """Rank of each image by descending score (0 = the most uncertain), ties to the lower index: [N]."""
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[rank_order(scores)] = np.arange(len(scores))
    return ranks
