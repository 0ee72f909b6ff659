"""Keypoint heatmap heads: the interpreter's second task (DatasetGAN §5.2), as extra outputs of each member.

Chosen: extra outputs on each member, because a separate ensemble doubles the cost (CPU, 128 px, toy-faces stack,
10 keypoints, ``benchmarks/bench_keypoints.py``, 2026-12-06: prediction x1.00 against x2.00, training x1.21
against x2.21). Every member MLP gets K more outputs, one Gaussian heatmap per keypoint, beside its class
logits; a separate ensemble would repeat the first layer's projection and upsampling, the part that costs.
The price: with keypoints configured the trunk is trained on both losses, so class outputs are not those of a
parts-only ensemble (close, not identical); without keypoints nothing changes, bit for bit.

Conventions:
    keypoint array   float32 [K, 3] (x, y, v) per name in the ensemble's order; x, y label-pixel coordinates
                     with pixel centres at integers (LabelMe, COCO); v 0 absent, 1 occluded, 2 visible.
                     None: the image is not annotated for keypoints (no heatmap loss at all). A row of NaNs:
                     not annotated for that name (no heatmap loss for it).
    target           exp(-d^2 / 2 sigma^2) for v >= 1 (occluded trains as present), 0 everywhere for v = 0
    training pixels  the usual class sample plus, per placed point, up to ``keypoint_pixels`` pixels of the
                     disc of radius 3 sigma around it, the nearest pixel always (``keypoint_disc_pixels``)
    prediction       members' heatmaps averaged; per keypoint a sub-pixel peak (argmax, then a parabola
                     through the 3 values on each axis, fitted to their logs when all are positive: exact
                     for a Gaussian), the averaged heatmap's peak value as confidence (clamped to [0, 1])
                     and the spread: sqrt(var x + var y) of the members' own peaks (population variance)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from dgan_al.peaks import heatmap_peaks

DISC_SIGMAS = 3.0  # radius of the sampled disc around a keypoint, in sigmas


@dataclass
class KeypointPrediction:
    """Keypoints of a batch of B images, K names (``names``), in label-pixel coordinates (centres at integers)."""

    names: list[str]
    positions: torch.Tensor  # float32 [B, K, 2] (x, y) sub-pixel peak of the averaged heatmap
    confidence: torch.Tensor  # float32 [B, K] the averaged heatmap's peak value, clamped to [0, 1]
    spread: torch.Tensor  # float32 [B, K] sqrt(var x + var y) of the members' peak positions, pixels
    heatmaps: torch.Tensor | None = None  # float32 [B, K, H, W] averaged heatmaps, if asked for


def keypoint_array(keypoints: Mapping[str, Sequence[float]] | np.ndarray | None, names: Sequence[str]):
    """An item's keypoints as float32 [K, 3] in ``names`` order, or None (not annotated for keypoints).

    Accepts ``AnnotationRecord.keypoints`` ({name: [x, y, v]}; a name missing from it: not annotated for
    that name, a NaN row) or an array [K, 3] already in order.
    """
    if keypoints is None:
        return None
    if isinstance(keypoints, Mapping):
        unknown = set(keypoints) - set(names)
        if unknown:
            raise ValueError(f"unknown keypoint names {sorted(unknown)}; the ensemble's are {list(names)}")
        rows = [keypoints.get(name, (math.nan, math.nan, math.nan)) for name in names]
        array = np.asarray(rows, dtype=np.float32).reshape(len(names), 3)
    else:
        array = np.asarray(keypoints, dtype=np.float32)
    if array.shape != (len(names), 3):
        raise ValueError(f"expected keypoints of shape ({len(names)}, 3), got {array.shape}")
    v = array[:, 2]
    known = ~np.isnan(v)
    if not np.isin(v[known], (0, 1, 2)).all():
        raise ValueError(f"keypoint visibility must be 0, 1 or 2, got {v[known].tolist()}")
    if np.isnan(array[known & (v > 0), :2]).any():
        raise ValueError("a placed keypoint (v 1 or 2) needs finite x, y")
    return array


def heatmap_targets(ys: np.ndarray, xs: np.ndarray, keypoints: np.ndarray, sigma: float):
    """Targets and weights at pixels (ys, xs) of one image: float32 [n, K] each.

    weight 1 where the image is annotated for that name (v 0, 1 or 2), 0 for a NaN row.
    """
    x, y, v = keypoints[:, 0], keypoints[:, 1], keypoints[:, 2]
    known = ~np.isnan(v)
    placed = known & (v > 0)
    dx = xs[:, None].astype(np.float32) - np.where(placed, x, 0)[None]
    dy = ys[:, None].astype(np.float32) - np.where(placed, y, 0)[None]
    target = np.exp(-(dx * dx + dy * dy) / np.float32(2 * sigma * sigma)).astype(np.float32)
    target[:, ~placed] = 0.0
    weight = np.broadcast_to(known.astype(np.float32)[None], target.shape).copy()
    return target, weight


def keypoint_disc_pixels(
    keypoints: np.ndarray, size: tuple[int, int], sigma: float, per_point: int, rng: np.random.Generator,
    taken: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Extra training pixels near each placed keypoint (v >= 1), none of them already ``taken``.

    taken: bool [H*W], updated in place. Per point: the nearest pixel (if inside the image and free) and
    up to ``per_point - 1`` more drawn from the disc of radius 3 sigma. Returns ``(ys, xs, n_nearest)``,
    the nearest pixels first.
    """
    height, width = size
    radius = DISC_SIGMAS * sigma
    r = int(math.ceil(radius))
    nearest, rest = [], []
    for x, y, v in keypoints:
        if not v > 0:  # absent, or not annotated (NaN)
            continue
        cy, cx = int(np.floor(y + 0.5)), int(np.floor(x + 0.5))
        if 0 <= cy < height and 0 <= cx < width and not taken[cy * width + cx]:
            taken[cy * width + cx] = True
            nearest.append(cy * width + cx)
        gy, gx = np.mgrid[max(cy - r, 0) : min(cy + r + 1, height), max(cx - r, 0) : min(cx + r + 1, width)]
        inside = (gy - y) ** 2 + (gx - x) ** 2 <= radius * radius
        flat = (gy * width + gx)[inside]
        flat = flat[~taken[flat]]
        pick = flat[rng.permutation(flat.size)[: max(per_point - 1, 0)]]
        taken[pick] = True
        rest.append(pick)
    flat = np.concatenate([np.asarray(nearest, dtype=np.int64)] + [p.astype(np.int64) for p in rest])
    return flat // width, flat % width, len(nearest)


def summarise_heatmaps(member_heat: torch.Tensor, names: Sequence[str], keep_heatmaps: bool = False):
    """Members' heatmaps [M, K, B, H, W] -> ``KeypointPrediction`` (on the heatmaps' device)."""
    mean = member_heat.mean(0)  # [K, B, H, W]
    positions, value = heatmap_peaks(mean)  # [K, B, 2], [K, B]
    member_positions, _ = heatmap_peaks(member_heat)  # [M, K, B, 2]
    spread = member_positions.var(0, unbiased=False).sum(-1).sqrt()  # [K, B]
    return KeypointPrediction(
        names=list(names),
        positions=positions.transpose(0, 1).contiguous(),
        confidence=value.clamp(0.0, 1.0).t().contiguous(),
        spread=spread.t().contiguous(),
        heatmaps=mean.transpose(0, 1).contiguous() if keep_heatmaps else None,
    )


def keypoint_uncertainty(spread: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """An image's keypoint uncertainty from [B, K] spreads (pixels) and confidences: the mean over keypoints of
    confidence x spread, float64 [B]. Weighting by confidence keeps absent keypoints out: where every member's
    heatmap is flat near 0 their argmax positions scatter at random, a spread that means nothing."""
    return (spread.to(torch.float64) * confidence.to(torch.float64)).mean(1)


def pixel_set_keypoints(member_heat: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(spread [B, K], confidence [B, K]) from the members' heads at a set of n label pixels.

    member_heat [M, K, B, n]; ys, xs int64 [n] the pixels' rows and columns. Each member's peak is its
    highest pixel of the set (no sub-pixel step: the set is a grid or a scatter, not a neighbourhood), the
    spread sqrt(var x + var y) of those peaks over members, the confidence the averaged heads' highest value
    clamped to [0, 1]. On a grid of step S positions are multiples of S: a coarser but like-for-like spread.
    """
    index = member_heat.argmax(dim=-1).cpu()  # [M, K, B]
    px, py = xs.cpu()[index].to(torch.float64), ys.cpu()[index].to(torch.float64)
    spread = (px.var(0, unbiased=False) + py.var(0, unbiased=False)).sqrt()  # [K, B]
    confidence = member_heat.mean(0).amax(dim=-1).clamp(0.0, 1.0).cpu()  # [K, B]
    return spread.t().contiguous(), confidence.t().contiguous()
