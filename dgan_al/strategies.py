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
- ``typical``: TypiClust (Hacohen et al., ICML 2022), for small budgets: k-means of candidates + annotated
  images into (annotated + K) clusters, then the most typical candidate of each of the K largest clusters
  that hold no annotated image (``typical_choice``).
- ``typical-al``: ``typical`` while fewer than ``switch_at`` images are annotated, then ``al``
  (``round_strategy``). Ask ``exported`` and ``expert_round`` with the number annotated.

Every choice comes with its record (for ``selection.json``): the band's ranks and score range where a
band is used (``selection.uncertainty_band``), the coreset radius, the class weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dgan_al.selection import band_ranks, k_center_greedy, kmeans, rank_order, typicality, uncertainty_band

# new names go last: simulate seeds its generators with STRATEGIES.index(strategy)
STRATEGIES = ("random", "random-expert", "uncertainty", "coreset", "al", "rare", "typical", "typical-al")
# strategies with expert rounds (they export 2K or ``centers``; the expert keeps K). typical-al's rounds are
# expert rounds only from ``switch_at`` annotations on: ask ``expert_round``. Choice.keep is None otherwise.
EXPERT_STRATEGIES = frozenset({"random-expert", "al", "typical-al"})
SWITCH_AT = 10  # typical-al's default: al from this many annotated images on
TYPICAL_NEIGHBOURS = 20  # TypiClust's typicality: mean distance to min(20, cluster size - 1) neighbours


def needs(strategy: str) -> set[str]:
    """What ``choose`` needs for a strategy: a subset of {"scores", "embeddings", "class_js"}. typical-al
    needs what both of its branches need."""
    return {"random": set(), "random-expert": set(), "uncertainty": {"scores"}, "coreset": {"embeddings"},
            "al": {"scores", "embeddings"}, "rare": {"class_js"}, "typical": {"embeddings"},
            "typical-al": {"scores", "embeddings"}}[strategy]


def round_strategy(strategy: str, n_annotated: int, switch_at: int = SWITCH_AT) -> str:
    """The strategy a round runs: typical-al is ``typical`` while n_annotated < switch_at, then ``al``;
    every other strategy is itself."""
    if strategy != "typical-al":
        return strategy
    return "typical" if n_annotated < switch_at else "al"


def exported(strategy: str, per_round: int, centers: int, n_annotated: int | None = None,
             switch_at: int = SWITCH_AT) -> int:
    """How many images a strategy exports in a round (the expert strategies export more than K).

    typical-al depends on the round: give ``n_annotated`` (the images annotated before it); without it,
    the most it exports in any round, max(per_round, centers) (for pool-size checks)."""
    if strategy == "typical-al":
        if n_annotated is None:
            return max(per_round, centers)
        strategy = round_strategy(strategy, n_annotated, switch_at)
    return {"random-expert": 2 * per_round, "al": centers}.get(strategy, per_round)


def expert_round(strategy: str, n_annotated: int | None = None, switch_at: int = SWITCH_AT) -> bool:
    """Whether the expert keeps K of the round's export (``choose`` then returns Choice.keep = K).
    typical-al needs ``n_annotated``: an expert round from ``switch_at`` annotated images on."""
    if strategy == "typical-al":
        if n_annotated is None:
            raise ValueError("typical-al: whether the expert keeps K depends on n_annotated")
        strategy = round_strategy(strategy, n_annotated, switch_at)
    return strategy in EXPERT_STRATEGIES


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


def typical_choice(embeddings: np.ndarray, seed_embeddings: np.ndarray | None, k: int, rng: np.random.Generator,
                   neighbours: int = TYPICAL_NEIGHBOURS) -> Choice:
    """TypiClust (Hacohen et al., ICML 2022): K typical candidates from K clusters the annotations miss.

    embeddings: [N, D] candidates; seed_embeddings: [M, D] the annotated images (or None), both used as
    given (nothing standardised). Candidates and annotated images together go into M + K clusters by
    ``selection.kmeans`` (seeded from ``rng``). Clusters holding at least one candidate are ranked by their
    number of annotated images (fewest first), then by their number of candidates (most first), then by
    cluster index; the first K of that ranking are taken, one pick each, in that order. So the K largest
    clusters without annotation come first; there are always K of them unless k-means leaves clusters
    empty (fewer distinct points than clusters), since the annotations occupy at most M of the M + K
    clusters. Only then do clusters with annotations fill in, fewest annotations first, as TypiClust sorts;
    if still short (fewer non-empty clusters than K), the ranking is walked again, a further pick per
    cluster among its candidates not yet picked (TypiClust's wrap-around).

    A pick is the candidate of highest ``selection.typicality`` among the cluster's candidates not yet
    picked (annotated images are not neighbours): 1 / mean distance to its min(``neighbours``, n - 1)
    nearest; a one-candidate cluster gives that candidate (typicality recorded as None, as is an infinite
    one from duplicates); ties to the lower index. Unlike TypiClust, small clusters are not dropped.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be [N, D], got shape {x.shape}")
    seeds = np.zeros((0, x.shape[1])) if seed_embeddings is None else np.asarray(seed_embeddings, np.float64)
    if seeds.ndim != 2 or (len(seeds) and seeds.shape[1] != x.shape[1]):
        raise ValueError(f"seed_embeddings must be [M, {x.shape[1]}], got shape {seeds.shape}")
    if not 1 <= k <= len(x):
        raise ValueError(f"typical: cannot pick {k} of {len(x)} candidates")
    n, m = len(x), len(seeds)
    clusters = m + k
    result = kmeans(np.concatenate([x, seeds]), clusters, rng)
    labels, seed_labels = result.labels[:n], result.labels[n:]
    sizes = np.bincount(labels, minlength=clusters)
    annotated = np.bincount(seed_labels, minlength=clusters)
    ranking = [int(c) for c in np.lexsort((np.arange(clusters), -sizes, annotated)) if sizes[c] > 0]
    taken = np.zeros(n, dtype=bool)
    order, chosen, typical = [], [], []
    while len(order) < k:
        for c in ranking:
            members = np.flatnonzero((labels == c) & ~taken)
            if len(order) == k or len(members) == 0:
                continue
            values = typicality(x[members], neighbours)
            best = 0 if len(members) == 1 else int(np.argmax(values))
            taken[members[best]] = True
            order.append(int(members[best]))
            chosen.append(c)
            typical.append(float(values[best]) if np.isfinite(values[best]) else None)
    record = {"strategy": "typical",
              "typical": {"clusters": clusters, "annotated": m, "neighbours": neighbours,
                          "free_clusters": int(((annotated == 0) & (sizes > 0)).sum()),
                          "kmeans": {"iterations": result.iterations, "converged": result.converged,
                                     "inertia": result.inertia},
                          "cluster_sizes": [int(sizes[c]) for c in chosen],  # candidates, per pick
                          "cluster_annotated": [int(annotated[c]) for c in chosen],
                          "typicality": typical}}
    return Choice(np.array(order, dtype=np.int64), None, record)


def choose(strategy: str, n_candidates: int, *, per_round: int, rng: np.random.Generator, scores: np.ndarray | None = None,
           embeddings: np.ndarray | None = None, seed_embeddings: np.ndarray | None = None,
           class_js: np.ndarray | None = None, class_share: np.ndarray | None = None, skip_top: float = 0.10,
           band: float = 0.10, centers: int = 12, rare_power: float = 1.0, n_annotated: int | None = None,
           switch_at: int = SWITCH_AT) -> Choice:
    """Choose among ``n_candidates`` candidates (the arrays' rows); see the module doc. Raises ValueError
    for an unknown strategy, a missing array, or too few candidates (in the band).

    ``n_annotated`` (default: len(seed_embeddings), 0 without them) and ``switch_at`` only matter to
    typical-al: the branch that ran is in record["branch"], its record beside it."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: choose from {', '.join(STRATEGIES)}")
    given = {"scores": scores, "embeddings": embeddings, "class_js": class_js}
    missing = sorted(name for name in needs(strategy) if given[name] is None)
    if missing:
        raise ValueError(f"strategy {strategy!r} needs {', '.join(missing)}")
    if strategy == "typical-al":
        if n_annotated is None:
            n_annotated = 0 if seed_embeddings is None else len(seed_embeddings)
        branch = round_strategy(strategy, n_annotated, switch_at)
        choice = choose(branch, n_candidates, per_round=per_round, rng=rng, scores=scores, embeddings=embeddings,
                        seed_embeddings=seed_embeddings, skip_top=skip_top, band=band, centers=centers)
        choice.record = {"strategy": strategy, "branch": branch, "n_annotated": int(n_annotated),
                         "switch_at": switch_at, **{k: v for k, v in choice.record.items() if k != "strategy"}}
        return choice
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
    if strategy == "typical":
        return typical_choice(embeddings, seed_embeddings, k, rng)
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
