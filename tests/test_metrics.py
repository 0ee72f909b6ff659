"""Confusion matrices, IoU, folds and the checkpoint-selection protocol against hand-computed figures."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dgan_al.metrics import (
    confusion_matrix,
    iou_per_class,
    k_folds,
    mean_iou,
    select_and_score,
    summarize_folds,
)


def test_confusion_and_iou_by_hand():
    truth = np.array([[0, 0, 1, 1],
                      [0, 2, 2, 255]])
    pred = np.array([[0, 1, 1, 1],
                     [0, 2, 0, 3]])
    conf = confusion_matrix(pred, truth, 4)
    # rows = truth: class 0 -> (0,0,0),(0,1),(1,0): pred 0,1,0 ; class 1 -> 1,1 ; class 2 -> 2,0 ; 255 ignored
    expected = np.array([[2, 1, 0, 0],
                         [0, 2, 0, 0],
                         [1, 0, 1, 0],
                         [0, 0, 0, 0]])
    assert np.array_equal(conf, expected)
    iou = iou_per_class(conf)
    # class 0: tp 2, union 3 + 3 - 2 = 4; class 1: 2 / (2 + 3 - 2); class 2: 1 / (2 + 1 - 1); class 3 absent
    assert iou[:3] == pytest.approx([2 / 4, 2 / 3, 1 / 2])
    assert np.isnan(iou[3])
    assert mean_iou(conf) == pytest.approx((2 / 4 + 2 / 3 + 1 / 2) / 3)
    # a class predicted but absent from the truth scores 0, not NaN
    fp = confusion_matrix(np.array([3, 0]), np.array([0, 0]), 4)
    assert iou_per_class(fp)[3] == 0.0 and mean_iou(fp) == pytest.approx(0.25)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, 40), st.integers(0, 2**31 - 1))
def test_confusion_matches_a_plain_loop(k, n, seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    truth[rng.random(n) < 0.2] = 255
    pred = rng.integers(0, k, n)
    plain = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(truth, pred):
        if t != 255:
            plain[t, p] += 1
    assert np.array_equal(confusion_matrix(pred, truth, k), plain)


def test_bad_class_ids_are_refused():
    with pytest.raises(ValueError, match="class ids"):
        confusion_matrix(np.array([5]), np.array([0]), 3)
    with pytest.raises(ValueError, match="differ in size"):
        confusion_matrix(np.zeros(3), np.zeros(4), 3)


@pytest.mark.parametrize("n,k", [(2, 5), (4, 5), (5, 5), (13, 5), (100, 5), (7, 3)])
def test_folds_partition_the_items(n, k):
    folds = k_folds(n, k, seed=1)
    assert len(folds) == min(n, k)
    assert sorted(np.concatenate(folds).tolist()) == list(range(n))  # each held out exactly once
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    if n < k:
        assert sizes == [1] * n  # leave-one-out
    assert [f.tolist() for f in k_folds(n, k, seed=1)] == [f.tolist() for f in folds]
    with pytest.raises(ValueError):
        k_folds(1, k)


def test_select_and_score_by_hand():
    # 2 checkpoints, 4 test images, 2 classes; image i at checkpoint e
    def c(tp0, fn0, fp0, tp1):  # [[tp0, fn0], [fp0, tp1]]
        return np.array([[tp0, fn0], [fp0, tp1]])

    perfect, bad = c(5, 0, 0, 5), c(0, 5, 5, 0)
    confusions = np.array([[perfect, perfect, bad, bad],   # checkpoint 0: good on images 0, 1
                           [bad, bad, perfect, perfect]])  # checkpoint 1: good on images 2, 3
    folds = [np.array([0, 1]), np.array([2, 3])]
    chosen, scored = select_and_score(confusions, folds)
    assert chosen.tolist() == [0, 1]
    # fold 0 picks checkpoint 0 and is scored on images 2, 3 there (both bad): IoU 0
    assert mean_iou(scored[0]) == 0.0 and mean_iou(scored[1]) == 0.0
    summary = summarize_folds(scored, ["a", "b"])
    assert summary.miou_mean == 0.0 and summary.miou_std == 0.0
    # the reported figure never uses the fold that chose the checkpoint
    confusions[0, 2] = perfect
    chosen, scored = select_and_score(confusions, folds)
    assert chosen.tolist() == [0, 1] and mean_iou(scored[0]) == pytest.approx((5 / 15 + 5 / 15) / 2)


def test_fold_summary_statistics():
    a = np.array([[3, 1], [0, 4]])  # IoU 3/4, 4/5
    b = np.array([[1, 0], [0, 0]])  # IoU 1, NaN (class 1 absent in this fold)
    s = summarize_folds([a, b], ["x", "y"])
    assert s.fold_miou.tolist() == pytest.approx([(0.75 + 0.8) / 2, 1.0])
    assert s.miou_mean == pytest.approx(np.mean(s.fold_miou)) and s.miou_std == pytest.approx(np.std(s.fold_miou))
    assert s.class_iou.tolist() == pytest.approx([(0.75 + 1) / 2, 0.8])
    assert s.to_dict()["class_iou"]["y"] == pytest.approx(0.8)
