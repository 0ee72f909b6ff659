"""How much the ensemble's members disagree, per pixel and per image, and the majority vote.

Shape conventions (members first, then classes, then any pixel dimensions):
    log_probs      float [M, K, ...]   log-softmax of each member's logits over K classes
    member_labels  int64 [M, ...]      each member's argmax
    js             float [B, H, W]     per-pixel Jensen-Shannon divergence, in nats
(classes before pixels keeps the pixel axis contiguous: a log-softmax over a short last axis is ~10x
slower on a CPU.) Each function is small and does one thing, after baal's ``heuristics.py``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats


def js_divergence(log_probs: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence among members: ``H(mean_m p_m) - mean_m H(p_m)``, in nats.

    log_probs: float [M, K, ...]. Returns float [...] >= 0 (rounding below zero is clamped to 0; it is 0,
    up to rounding, when all members give the same distribution). The paper's formula on softmax
    probabilities, not on averaged logits (the reference code's early bug).
    """
    n_members = log_probs.shape[0]
    mean_entropy = -(log_probs.exp() * log_probs).sum(1).mean(0)  # [...]
    log_mean = torch.logsumexp(log_probs, dim=0) - math.log(n_members)  # [K, ...] log of mean_m p_m
    entropy_of_mean = -(log_mean.exp() * log_mean).sum(0)  # [...]
    return (entropy_of_mean - mean_entropy).clamp_(min=0.0)


def majority_vote(member_labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """The most frequent label among members; ties go to the smaller class id (as ``scipy.stats.mode``).

    member_labels: int64 [M, ...]. Returns int64 [...].
    """
    n_members = member_labels.shape[0]
    flat = member_labels.reshape(n_members, -1).t()  # [P, M]
    counts = torch.zeros(flat.shape[0], n_classes, dtype=torch.int32, device=flat.device)
    counts.scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.int32))
    return counts.argmax(1).reshape(member_labels.shape[1:])  # argmax returns the first maximum


def image_score_sum(js: torch.Tensor) -> torch.Tensor:
    """The paper's image score: JS summed over all pixels. js [B, H, W] -> float64 [B]."""
    return js.reshape(js.shape[0], -1).to(torch.float64).sum(1)


def image_score_top_fraction(js: torch.Tensor, fraction: float = 0.1) -> torch.Tensor:
    """The reference code's image score: mean of the top ``fraction`` of pixel JS values.

    js [B, H, W] -> float64 [B]. As ``js.sort()[-int(n * fraction):].mean()``, with at least one pixel.
    """
    flat = js.reshape(js.shape[0], -1)
    k = max(1, int(flat.shape[1] * fraction))
    return flat.topk(k, dim=1).values.to(torch.float64).mean(1)


def uncertainty_band_indices(scores: np.ndarray, skip_top: float = 0.10, width: float = 0.10) -> np.ndarray:
    """Indices of the images ranked from ``skip_top`` to ``skip_top + width`` by descending score.

    The paper's band: drop the top 10% most uncertain (likely GAN failures), keep the next 10%.
    Ranks are positions ``floor(skip_top*n) .. floor((skip_top+width)*n) - 1``; ties by index.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.size
    order = np.lexsort((np.arange(n), -scores))
    return order[int(math.floor(skip_top * n)) : int(math.floor((skip_top + width) * n))]


def rank_agreement(
    full_scores: np.ndarray, approximate_scores: np.ndarray, skip_top: float = 0.10, width: float = 0.10
) -> dict[str, float]:
    """How well a cheap image score ranks a pool like the full-resolution one.

    Returns ``{"spearman": rank correlation, "band_overlap": |band_full & band_approx| / |band_full|}``
    where a band is the ``skip_top .. skip_top + width`` slice of the ranking (the images the loop would
    choose among). The issue's bar for making a cheap score a default: spearman >= 0.95, overlap >= 0.8.
    """
    full_scores = np.asarray(full_scores, dtype=np.float64)
    approximate_scores = np.asarray(approximate_scores, dtype=np.float64)
    if full_scores.shape != approximate_scores.shape or full_scores.ndim != 1:
        raise ValueError(
            f"expected two score vectors of one length, got shapes {full_scores.shape} and {approximate_scores.shape}"
        )
    band_full = uncertainty_band_indices(full_scores, skip_top, width)
    band_approx = uncertainty_band_indices(approximate_scores, skip_top, width)
    overlap = len(np.intersect1d(band_full, band_approx)) / max(len(band_full), 1)
    spearman = float(stats.spearmanr(full_scores, approximate_scores).statistic)
    return {"spearman": spearman, "band_overlap": float(overlap)}
