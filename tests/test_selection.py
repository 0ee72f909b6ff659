"""Selection: the uncertainty band and k-center greedy against brute-force references."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dgan_al.selection import band_ranks, k_center_greedy, rank_agreement, uncertainty_band


def test_band_bounds_on_10k():
    rng = np.random.default_rng(0)
    scores = rng.random(10_000)
    band = uncertainty_band(scores, 0.10, 0.10)
    ranks = np.argsort(np.argsort(-scores))
    assert len(band) == 1000
    assert ranks[band].min() == 1000 and ranks[band].max() == 1999
    assert list(ranks[band]) == sorted(ranks[band])  # returned in rank order
    assert scores[band].max() <= np.sort(scores)[::-1][1000]


def test_band_ties_break_by_index_and_validation():
    scores = np.array([1.0, 3.0, 3.0, 2.0, 3.0, 0.0, 1.0, 2.0, 2.0, 5.0])
    assert list(uncertainty_band(scores, 0.1, 0.3)) == [1, 2, 4]
    assert list(uncertainty_band(scores, 0.4, 0.3)) == [3, 7, 8]
    with pytest.raises(ValueError):
        uncertainty_band(scores, 1.0, 0.1)
    with pytest.raises(ValueError):
        uncertainty_band(np.array([1.0, np.nan]))


def test_band_rule_rounds_to_the_nearest_rank_despite_float_error():
    assert band_ranks(100, 0.29, 0.1) == (29, 39)  # 0.29 * 100 = 28.999999999999996
    assert band_ranks(35, 0.1, 0.1) == (4, 7)  # 3.5 -> 4 (halves up), 7.0 -> 7
    assert band_ranks(25, 0.1, 0.1) == (3, 5)  # 2.5 -> 3, 5.0 -> 5
    assert band_ranks(10, 0.5, 1.0) == (5, 10)  # stop at most n
    assert band_ranks(0, 0.1, 0.1) == (0, 0)
    for n in range(1, 200):  # the band function and the ranks it reports agree for every pool size
        start, stop = band_ranks(n, 0.1, 0.1)
        band = uncertainty_band(np.arange(n, dtype=float)[::-1].copy(), 0.1, 0.1)  # image i has rank i
        assert band.tolist() == list(range(start, stop))


def test_rank_agreement():
    scores = np.arange(100, dtype=float)  # image i has score i
    band = uncertainty_band(scores, 0.1, 0.1)
    assert sorted(band.tolist()) == list(range(80, 90))  # ranks 10..19 by descending score
    same = rank_agreement(scores, scores * 3 + 1)
    assert same["spearman"] > 1 - 1e-12 and same["band_overlap"] == 1.0
    reversed_ = rank_agreement(scores, -scores)
    assert reversed_["spearman"] < -1 + 1e-12 and reversed_["band_overlap"] == 0.0
    noisy = rank_agreement(scores, scores + np.random.default_rng(0).normal(0, 3, 100))
    assert 0.9 < noisy["spearman"] < 1.0 and 0.0 <= noisy["band_overlap"] <= 1.0
    with pytest.raises(ValueError, match="one length"):
        rank_agreement(scores, scores[:5])


def brute_force_greedy(x, seeds, n):
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    centres = []
    if seeds is not None and len(seeds):
        nearest = np.sqrt(((x[:, None] - seeds[None]) ** 2).sum(-1)).min(1)
    else:
        first = int(np.argmin(((x - x.mean(0)) ** 2).sum(1)))
        centres.append(first)
        nearest = d[first].copy()
    while len(centres) < n:
        masked = nearest.copy()
        masked[centres] = -1
        pick = int(np.argmax(masked))
        centres.append(pick)
        nearest = np.minimum(nearest, d[pick])
    return centres


@settings(max_examples=40, deadline=None)
@given(st.integers(5, 40), st.integers(1, 5), st.integers(0, 3), st.integers(0, 10_000))
def test_k_center_equals_brute_force_greedy(n_points, n_pick, n_seeds, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_points, 3))
    seeds = rng.normal(size=(n_seeds, 3)) if n_seeds else None
    n_pick = min(n_pick, n_points)
    result = k_center_greedy(x, seeds, n_pick, chunk=7)
    assert list(result.order) == brute_force_greedy(x, seeds, n_pick)
    assert len(set(result.order)) == n_pick


@settings(max_examples=25, deadline=None)
@given(st.integers(4, 10), st.integers(1, 3), st.integers(0, 10_000))
def test_k_center_within_twice_the_optimal_radius(n_points, k, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_points, 2))
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    optimal = min(d[:, list(c)].min(1).max() for c in itertools.combinations(range(n_points), k))
    result = k_center_greedy(x, None, k)
    assert result.radius <= 2 * optimal + 1e-9


def test_seeding_with_annotated_points_avoids_them():
    x = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0], [11.0, 0.0]])
    annotated = np.array([[5.0, 5.05]])
    result = k_center_greedy(x, annotated, 2)
    assert list(result.order) == [4, 0]  # farthest from the annotated cluster first
    assert result.distances[0] == pytest.approx(np.hypot(6.0, 5.05))


def test_duplicates_and_ties_pick_distinct_lowest_indices():
    x = np.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
    result = k_center_greedy(x, np.zeros((1, 2)), 4)
    assert list(result.order) == [0, 2, 1, 3]
    assert result.radius == 0.0
