"""Which pixels of an annotated image the interpreter trains on.

The paper samples pixels at random from each annotated image, "making sure every labelled region is
sampled at least once". We draw, per image:

1. one pixel, uniformly at random, from every connected region of every class (4-connected, as
   ``scipy.ndimage.label`` finds them): a one-pixel eyebrow fragment is seen as surely as the background;
2. the rest of the budget spread over the classes present with weight ``count ** (1 - class_balance)``
   (``class_balance=1``: every class the same share, ``0``: in proportion to its area), each class's
   share drawn without replacement from its pixels (a class smaller than its share gives all its pixels
   and the remainder goes to the others).

Pixels labelled ``IGNORE`` (255) are never drawn. Masks are uint8 [H, W] class ids.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

IGNORE = 255  # the mask value of unlabelled pixels


def connected_regions(mask: np.ndarray, ignore: int = IGNORE) -> tuple[np.ndarray, np.ndarray]:
    """Label every 4-connected region of every class.

    Returns ``(region_of_pixel int64 [H, W], class_of_region int64 [n_regions])``: region ids are
    1..n_regions (0 where the mask is ``ignore``).
    """
    regions = np.zeros(mask.shape, dtype=np.int64)
    region_class: list[int] = []
    for cls in np.unique(mask):
        if cls == ignore:
            continue
        labelled, n = ndimage.label(mask == cls)
        regions[labelled > 0] = labelled[labelled > 0] + len(region_class)
        region_class.extend([int(cls)] * n)
    return regions, np.asarray(region_class, dtype=np.int64)


def class_quotas(counts: np.ndarray, total: int, class_balance: float) -> np.ndarray:
    """Split ``total`` draws over classes with ``counts`` available pixels, none above its count.

    counts: int64 [K] (0 for absent classes). Weight of a present class: ``count ** (1 - class_balance)``.
    Classes whose share exceeds their pixels are capped and the excess is shared among the others
    (water filling); integer rounding goes to the largest fractional parts, ties to the smaller id.
    Returns int64 [K] with sum == min(total, counts.sum()).
    """
    counts = np.asarray(counts, dtype=np.int64)
    quotas = np.zeros(len(counts), dtype=np.int64)
    total = int(min(total, counts.sum()))
    open_ = counts > 0
    remaining = total
    while remaining > 0 and open_.any():
        weight = np.where(open_, counts.astype(np.float64) ** (1.0 - class_balance), 0.0)
        share = remaining * weight / weight.sum()
        room = counts - quotas
        capped = open_ & (share >= room)
        if capped.any():  # these classes get all their pixels; share the rest again
            remaining -= int(room[capped].sum())
            quotas[capped] = counts[capped]
            open_ &= ~capped
            continue
        floor = np.floor(share).astype(np.int64)
        leftover = remaining - int(floor.sum())
        order = np.lexsort((np.arange(len(counts)), -(share - floor)))  # largest fraction first
        floor[order[:leftover]] += 1
        quotas += floor
        remaining = 0
    return quotas


def sample_training_pixels(
    mask: np.ndarray, n_pixels: int, rng: np.random.Generator, class_balance: float = 1.0, ignore: int = IGNORE
) -> tuple[np.ndarray, np.ndarray, int]:
    """Distinct pixel coordinates to train on: every region once, then a class-balanced random rest.

    mask: uint8 [H, W]; n_pixels: the budget (exceeded only if there are more regions than it).
    Returns ``(ys, xs, n_regions)``: int64 [n] each; the first ``n_regions`` are the region
    representatives (one per region, in region-id order).
    """
    mask = np.asarray(mask)
    regions, region_class = connected_regions(mask, ignore)
    flat_regions = regions.reshape(-1)
    labelled = np.flatnonzero(flat_regions)  # flat indices of labelled pixels
    if labelled.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0

    # 1. one uniformly random pixel per region: the first pixel of each region in a random order
    shuffled = labelled[rng.permutation(labelled.size)]
    _, first = np.unique(flat_regions[shuffled], return_index=True)
    representatives = shuffled[first]  # [n_regions], ordered by region id

    # 2. the rest, class by class, among pixels not already taken
    taken = np.zeros(flat_regions.size, dtype=bool)
    taken[representatives] = True
    flat_mask = mask.reshape(-1).astype(np.int64)
    rest_pool = shuffled[~taken[shuffled]]  # still in random order
    rest_class = flat_mask[rest_pool]
    n_classes = int(max(region_class.max(), 0)) + 1
    counts = np.bincount(rest_class, minlength=n_classes)
    quotas = class_quotas(counts, max(n_pixels - representatives.size, 0), class_balance)
    chosen = [representatives]
    for cls in np.flatnonzero(quotas):
        chosen.append(rest_pool[rest_class == cls][: quotas[cls]])  # a random subset: the pool is shuffled
    flat = np.concatenate(chosen)
    width = mask.shape[1]
    return flat // width, flat % width, int(representatives.size)
