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

import torch


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
