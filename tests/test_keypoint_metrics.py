"""PCK and false positives (dgan_al.keypoint_metrics) on hand-worked cases."""

import math

import numpy as np
import pytest

from dgan_al.keypoint_metrics import PCKCounts, pck_counts

NAMES = ["a", "b"]
NAN = [math.nan] * 3


def test_pck_by_hand():
    # image side 100: thresholds 5 px and 10 px
    truth = np.array([[[10, 10, 2], [50, 50, 0]],
                      [[20, 20, 2], [60, 60, 1]],
                      [[30, 30, 2], NAN]], dtype=float)
    positions = np.array([[[13, 14, 0], [0, 0, 0]],    # 5 px off: within both
                          [[27, 20, 0], [99, 99, 0]],  # 7 px off: within 0.1 only
                          [[30, 50, 0], [0, 0, 0]]], dtype=float)[..., :2]
    present = np.array([[True, True], [False, True], [True, False]])
    counts = pck_counts(positions, present, truth, 100, NAMES)
    assert counts.visible.tolist() == [3, 0]
    assert counts.hits.tolist() == [[1, 0], [2, 0]]
    assert counts.missed.tolist() == [1, 0]  # image 1's "a" is visible, predicted absent (position still counts)
    assert counts.absent.tolist() == [0, 1]  # occluded (v=1) and not annotated (NaN) are in no count
    assert counts.false_positive.tolist() == [0, 1]
    pck = counts.pck()
    assert pck[0, 0] == pytest.approx(1 / 3) and pck[1, 0] == pytest.approx(2 / 3)
    assert math.isnan(pck[0, 1])
    assert counts.mean_pck().tolist() == pytest.approx([1 / 3, 2 / 3])
    assert counts.mean_error()[0] == pytest.approx((5 + 7 + 20) / 3) and math.isnan(counts.mean_error()[1])
    assert counts.mean_error()[2] == pytest.approx((5 + 7 + 20) / 3)


def test_sizes_per_image_and_adding_folds():
    truth = np.array([[[0, 0, 2]], [[0, 0, 2]]], dtype=float)
    positions = np.array([[[0, 8]], [[0, 8]]], dtype=float)
    one = pck_counts(positions, np.ones((2, 1), bool), truth, [100, 200], ["a"])
    # 8 px: outside 0.05 x 100 = 5, inside 0.05 x 200 = 10; inside 0.1 of both
    assert one.hits[:, 0].tolist() == [1, 2]
    both = one + one
    assert both.visible.tolist() == [4] and both.hits.tolist() == (one.hits * 2).tolist()
    again = PCKCounts.from_dict(both.to_dict())
    assert again.hits.tolist() == both.hits.tolist() and again.names == ["a"]
    assert again.error_sum.tolist() == pytest.approx([32.0]) and both.mean_error().tolist() == pytest.approx([8.0, 8.0])
    with pytest.raises(ValueError):
        one + pck_counts(positions, np.ones((2, 1), bool), truth, 100, ["b"])
