"""JS divergence, majority vote, image scores and the rank-agreement check."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from dgan_al.interpreter.uncertainty import (
    image_score_sum,
    image_score_top_fraction,
    js_divergence,
    majority_vote,
)


def js_by_definition(probs: np.ndarray) -> np.ndarray:
    """H(mean p) - mean H(p) in float64, probs [M, P, K] (classes last here, for numpy's sake)."""
    def entropy(p):
        return -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0)).sum(-1)
    return entropy(probs.mean(0)) - entropy(probs).mean(0)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.integers(1, 30), st.integers(2, 6), st.floats(0.01, 30), st.integers(0, 2**16))
def test_js_matches_the_definition_and_is_never_negative(m, p, k, scale, seed):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(m, k, p, generator=gen) * scale
    log_probs = torch.log_softmax(logits, 1)  # [M, K, P]
    js = js_divergence(log_probs)
    assert js.shape == (p,)
    assert (js >= 0).all()
    assert (js <= math.log(m) + 1e-5).all()  # JS among M distributions is at most log M
    expected = js_by_definition(log_probs.double().exp().transpose(1, 2).numpy())
    np.testing.assert_allclose(js.numpy(), expected, atol=2e-5)


def test_js_is_zero_when_members_agree():
    logits = torch.randn(1, 7, 50).expand(5, 7, 50)  # five identical members, [M, K, P]
    js = js_divergence(torch.log_softmax(logits, 1))
    assert torch.all(js >= 0) and float(js.max()) < 1e-6  # zero up to float32 rounding


def test_js_is_log2_for_two_certain_members_that_disagree():
    log_probs = torch.log_softmax(torch.tensor([[[100.0], [0.0]], [[0.0], [100.0]]]), 1)  # [M=2, K=2, P=1]
    assert abs(float(js_divergence(log_probs)[0]) - math.log(2)) < 1e-5


def test_vote_ties_go_to_the_smaller_class_id():
    votes = torch.tensor([[3, 1, 2, 0], [1, 3, 2, 0], [3, 1, 0, 2], [1, 3, 0, 2]])  # [M=4, P=4]
    assert majority_vote(votes, 4).tolist() == [1, 1, 0, 0]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 11), st.integers(1, 40), st.integers(2, 6), st.integers(0, 2**16))
def test_vote_equals_scipy_mode(m, p, k, seed):
    votes = torch.randint(0, k, (m, p), generator=torch.Generator().manual_seed(seed))
    expected = stats.mode(votes.t().numpy(), axis=1, keepdims=False).mode
    assert majority_vote(votes, k).numpy().tolist() == expected.tolist()


def test_image_scores():
    js = torch.arange(20, dtype=torch.float32).reshape(1, 4, 5)
    assert image_score_sum(js).item() == sum(range(20))
    assert image_score_top_fraction(js, 0.1).item() == (19 + 18) / 2  # top int(20 * 0.1) = 2 pixels
    assert image_score_top_fraction(js[:, :1, :3], 0.1).item() == 2  # at least one pixel
