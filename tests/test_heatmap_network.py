"""The downstream heatmap network (dgan_al.segmenter.heatmaps): left/right pairs, the flip, and learning a point."""

import numpy as np
import torch

from dgan_al.generators.toy_faces.keypoints import KEYPOINT_PAIRS, KEYPOINTS
from dgan_al.keypoint_metrics import pck_counts
from dgan_al.segmenter.heatmaps import (HeatmapSettings, flip_keypoints, flip_pairs, flip_permutation,
                                        gaussian_heatmaps, mirror_name, train_heatmap_network)

TINY = {"width": 8, "depth": 2}


def test_flip_pairs_give_toy_faces_pairs():
    assert flip_pairs(KEYPOINTS) == KEYPOINT_PAIRS


def test_flip_pairs_of_other_namings():
    names = ["nose", "l_ankle", "r_ankle", "Left-Hand", "Right-Hand", "tail_right", "tail_left", "ear_l", "left_only"]
    assert flip_pairs(names) == (("l_ankle", "r_ankle"), ("Left-Hand", "Right-Hand"), ("tail_right", "tail_left"))
    assert mirror_name("nose_tip") == "nose_tip" and mirror_name("ear_l") == "ear_r"
    assert mirror_name("a_l_b") == "a_l_b"  # a one-letter word in the middle is no side
    perm = flip_permutation(names)
    assert [names[i] for i in perm] == ["nose", "r_ankle", "l_ankle", "Right-Hand", "Left-Hand", "tail_left",
                                       "tail_right", "ear_l", "left_only"]


def test_flip_mirrors_x_about_pixel_centres_and_swaps_the_pair():
    names = ["left_eye", "right_eye", "nose", "left_ear", "right_ear"]
    points = np.array([[30, 5, 2], [10, 6, 1], [0, 7, 2], [0, 0, 0], [np.nan] * 3], np.float32)
    flipped = flip_keypoints(points, 40, flip_permutation(names))
    # the right eye at x = 10 shows at 40 - 1 - 10 = 29 and is now the left eye; pixel 0 <-> pixel 39
    np.testing.assert_array_equal(flipped[:3], [[29, 6, 1], [9, 5, 2], [39, 7, 2]])
    assert np.isnan(flipped[3]).all()  # right_ear (not annotated) became left_ear
    np.testing.assert_array_equal(flipped[4], [0, 0, 0])  # left_ear (absent) became right_ear, still 0, 0
    np.testing.assert_array_equal(flip_keypoints(flipped, 40, flip_permutation(names)), points)


def test_flipped_targets_are_the_mirrored_targets_with_channels_swapped():
    names = ["left_eye", "right_eye", "chin"]
    points = np.array([[[12.3, 4.6, 2], [3.0, 5.0, 1], [0, 0, 0]]], np.float32)
    perm = flip_permutation(names)
    target, weight = gaussian_heatmaps(torch.from_numpy(points), 9, 16, 1.5)
    flipped, _ = gaussian_heatmaps(torch.from_numpy(flip_keypoints(points, 16, perm)), 9, 16, 1.5)
    torch.testing.assert_close(flipped, target.flip(-1)[:, perm])
    assert float(target[0, 2].abs().max()) == 0 and weight.tolist() == [[1, 1, 1]]
    assert target[0, 1, 5, 3] == 1  # the peak at pixel (row y, column x)


def dots(n: int, seed: int, size: int = 32):
    """Dark images with one bright 3x3 dot each, and its centre as the keypoint 'dot'."""
    rng = np.random.default_rng(seed)
    images = np.full((n, size, size, 3), 40, np.uint8)
    points = np.zeros((n, 1, 3), np.float32)
    for i in range(n):
        x, y = rng.integers(2, size - 3, 2)
        images[i, y - 1:y + 2, x - 1:x + 2] = 255
        points[i, 0] = (x, y, 2)
    return images, points


def test_a_tiny_network_learns_a_planted_point():
    images, points = dots(64, 0)
    test_images, truth = dots(16, 1)
    settings = HeatmapSettings(epochs=6, model_options=TINY, seed=3)
    run = train_heatmap_network(images, points, ["dot"], settings, list(test_images))
    assert run.positions.shape == (6, 16, 1, 2) and run.confidence.shape == (6, 16, 1) and run.steps == 8
    assert run.losses[-1] < run.losses[0]
    counts = pck_counts(run.positions[-1], run.confidence[-1] >= 0.5, truth, 32, ["dot"])
    assert counts.mean_pck()[1] >= 0.9  # PCK@0.1: within 3.2 px
    again = train_heatmap_network(images, points, ["dot"], settings, list(test_images))
    np.testing.assert_array_equal(again.positions, run.positions)  # same seed, same run


def test_steps_per_epoch_and_unannotated_rows():
    images, points = dots(3, 2)
    points[1] = np.nan  # not annotated: no loss; a batch of only such rows makes no step
    settings = HeatmapSettings(epochs=2, steps_per_epoch=5, batch=2, model_options=TINY)
    run = train_heatmap_network(images, points, ["dot"], settings, [images[0], images[0, :20, :24]])
    assert run.steps == 5 and len(run.losses) == 2 and np.isfinite(run.losses).all()
    assert run.positions.shape == (2, 2, 1, 2)
    assert (run.positions[-1, 1] <= [23, 19]).all()  # a test image of its own size
