"""Training-pixel sampling: every labelled region at least once, classes balanced, ignore never drawn."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from dgan_al.interpreter.sampling import IGNORE, class_quotas, connected_regions, sample_training_pixels


def random_mask(seed: int, height: int, width: int, n_classes: int) -> np.ndarray:
    """Blobs of classes, scattered single pixels, and an unlabelled stripe."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, n_classes, size=(max(1, height // 4), max(1, width // 4)))
    mask = np.kron(coarse, np.ones((4, 4), dtype=np.int64))[:height, :width]
    mask = np.pad(mask, ((0, height - mask.shape[0]), (0, width - mask.shape[1])), mode="edge")
    for _ in range(rng.integers(0, 6)):  # isolated one-pixel regions
        mask[rng.integers(0, height), rng.integers(0, width)] = rng.integers(0, n_classes)
    mask[:, rng.integers(0, width)] = IGNORE
    return mask.astype(np.uint8)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 40), st.integers(2, 40), st.integers(1, 6), st.integers(1, 300))
def test_every_region_is_sampled_and_ignore_never(seed, height, width, n_classes, budget):
    mask = random_mask(seed, height, width, n_classes)
    ys, xs, n_regions = sample_training_pixels(mask, budget, np.random.default_rng(seed))
    regions, region_class = connected_regions(mask)
    assert n_regions == len(region_class)
    hit = np.unique(regions[ys, xs])
    assert set(hit.tolist()) == set(range(1, n_regions + 1))  # every region, no ignore (id 0)
    assert np.all(mask[ys, xs] != IGNORE)
    assert len(set(zip(ys.tolist(), xs.tolist()))) == len(ys)  # distinct pixels
    labelled = int((mask != IGNORE).sum())
    assert len(ys) == max(n_regions, min(budget, labelled))
    # the first n_regions pixels are one per region
    assert sorted(regions[ys[:n_regions], xs[:n_regions]].tolist()) == list(range(1, n_regions + 1))


def test_one_pixel_regions_are_always_drawn():
    mask = np.zeros((30, 30), dtype=np.uint8)
    mask[5, 5] = 3  # a lone pixel of a rare class
    mask[20, 7] = 3  # another one, not connected to the first
    mask[10, 10] = 1
    mask[11, 11] = 1  # diagonal: two separate 4-connected regions
    for seed in range(20):
        ys, xs, n_regions = sample_training_pixels(mask, 10, np.random.default_rng(seed))
        assert n_regions == 5
        chosen = set(zip(ys.tolist(), xs.tolist()))
        assert {(5, 5), (20, 7), (10, 10), (11, 11)} <= chosen


def test_regions_are_4_connected_per_class():
    mask = np.array([[1, 1, 0], [0, 1, 0], [2, 0, 1]], dtype=np.uint8)
    regions, region_class = connected_regions(mask)
    expected = sum(ndimage.label(mask == c)[1] for c in (0, 1, 2))
    assert len(region_class) == expected == 6


def test_balanced_draws_give_each_class_an_equal_share():
    mask = np.zeros((100, 100), dtype=np.uint8)
    mask[:10, :10] = 1  # 100 pixels
    mask[50:, :] = 2  # 5000 pixels
    ys, xs, _ = sample_training_pixels(mask, 300, np.random.default_rng(0), class_balance=1.0)
    counts = np.bincount(mask[ys, xs], minlength=3)
    assert counts.tolist() == [100, 100, 100]
    ys, xs, _ = sample_training_pixels(mask, 300, np.random.default_rng(0), class_balance=0.0)
    counts = np.bincount(mask[ys, xs], minlength=3)
    assert abs(counts[2] - 300 * 5000 / 10000) <= 2 and abs(counts[1] - 3) <= 2  # proportional to area


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=8), st.integers(0, 200), st.floats(0, 1))
def test_class_quotas_never_exceed_counts_and_sum_to_the_budget(counts, total, balance):
    counts = np.array(counts)
    quotas = class_quotas(counts, total, balance)
    assert np.all(quotas <= counts) and np.all(quotas >= 0)
    assert quotas.sum() == min(total, counts.sum())
    if balance == 1.0 and quotas.sum() < counts.sum():  # water filling: open classes differ by at most 1
        open_ = quotas < counts
        if open_.any():
            assert quotas[open_].max() - quotas[open_].min() <= 1
            assert quotas[open_].min() >= quotas[~open_].max(initial=0)


def test_sampling_is_seeded():
    mask = random_mask(3, 32, 32, 4)
    a = sample_training_pixels(mask, 100, np.random.default_rng([7, 1]))
    b = sample_training_pixels(mask, 100, np.random.default_rng([7, 1]))
    c = sample_training_pixels(mask, 100, np.random.default_rng([8, 1]))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not (np.array_equal(a[0], c[0]) and np.array_equal(a[1], c[1]))


def test_a_mask_with_nothing_labelled_gives_no_pixels():
    ys, xs, n = sample_training_pixels(np.full((4, 4), IGNORE, np.uint8), 10, np.random.default_rng(0))
    assert len(ys) == len(xs) == n == 0
