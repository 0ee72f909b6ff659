"""The paired bootstrap of simulate on synthetic runs whose differences are known."""

import numpy as np

from dgan_al.metrics import mean_iou
from dgan_al.workflows.simulate_analysis import analyse, miou, table_text


def _runs(qs: dict[str, list[float]], repeats=6, images=100, seed=0):
    """conf [R, S, T, N, 2, 2]: per image 50 pixels of each class; class-1 pixels are mistaken for class 0
    with probability q[t] of the strategy (its mIoU falls as q grows)."""
    rng = np.random.default_rng(seed)
    names = list(qs)
    t_n = len(next(iter(qs.values())))
    conf = np.zeros((repeats, len(names), t_n, images, 2, 2), dtype=np.int64)
    for s, name in enumerate(names):
        for t, q in enumerate(qs[name]):
            wrong = rng.binomial(50, q, size=(repeats, images))
            conf[:, s, t, :, 0, 0] = 50
            conf[:, s, t, :, 1, 0] = wrong
            conf[:, s, t, :, 1, 1] = 50 - wrong
    return names, conf


def _expected_miou(q: float) -> float:
    return (50 / (50 + 50 * q) + (1 - q)) / 2


def test_miou_matches_metrics():
    conf = np.random.default_rng(1).integers(0, 30, size=(4, 3, 3))
    conf[2, 1] = 0
    conf[2, :, 1] = 0  # class 1 absent from truth and prediction in one matrix
    assert np.allclose(miou(conf), [mean_iou(c) for c in conf])


def test_a_known_difference_is_inside_its_interval_and_a_null_one_covers_zero():
    names, conf = _runs({"random": [0.5, 0.3], "better": [0.5, 0.2], "same": [0.5, 0.3]})
    images = np.broadcast_to(np.array([1, 5]), (6, 3, 2))
    clicks = {"prefill": np.broadcast_to(np.array([100, 400]), (6, 3, 2)).astype(float)}
    out = analyse(conf, images, clicks, names, n_boot=400)
    better, same = out["curves"]["better"], out["curves"]["same"]
    truth = _expected_miou(0.2) - _expected_miou(0.3)  # 0.067
    lo, hi = better["diff_interval"][1]
    assert 0 < lo < truth < hi and abs(better["diff_to_random"][1] - truth) < 0.01
    lo, hi = same["diff_interval"][1]
    assert lo < 0 < hi
    # round 0: every strategy at q = 0.5, nothing to tell apart
    assert better["diff_interval"][0][0] < 0 < better["diff_interval"][0][1]
    assert 0 < out["test_sampling_se"]["last_round_mean"] < 0.01
    assert "diff_interval" not in out["curves"]["random"]


def test_savings_are_read_off_the_curves():
    names, conf = _runs({"random": [0.5, 0.4, 0.3], "better": [0.5, 0.3, 0.2], "worse": [0.5, 0.45, 0.4]})
    images = np.broadcast_to(np.array([1, 3, 5]), (6, 3, 3)).astype(float)
    clicks = {"prefill": np.broadcast_to(np.array([[10, 30, 50], [10, 25, 40], [10, 30, 50]]), (6, 3, 3)).astype(float)}
    out = analyse(conf, images, clicks, names, n_boot=300)
    savings = out["savings"]
    assert savings["random"]["images"]["needed"] == 5 and savings["random"]["images"]["saved"] == 0
    better = savings["better"]
    assert 2.6 < better["images"]["needed"] < 3.4 and 1.6 < better["images"]["saved"] < 2.4
    assert 22 < better["clicks_prefill"]["needed"] < 28
    assert better["images"]["reached_share"] > 0.9 and better["images"]["saved_interval"][0] > 0
    assert savings["worse"]["images"]["needed"] is None
    text = table_text(out)
    assert "not reached" in text and "better" in text and "vs random" in text


def test_prefill_against_scratch_per_round_is_paired_per_repeat():
    """Round 1 of strategy 0 pre-fills at +30 clicks per image over scratch in every repeat, round 2 at -10 +
    noise; strategy 1 exports empty files (pre-fill = scratch)."""
    names, conf = _runs({"random": [0.5, 0.4, 0.3], "al": [0.5, 0.4, 0.3]})
    rng = np.random.default_rng(3)
    images = np.broadcast_to(np.array([1, 5, 9]), (6, 2, 3)).astype(float)  # 4 images per round
    per_round = rng.integers(150, 250, size=(6, 2, 3)).astype(float)  # scratch clicks per image
    scratch = np.cumsum(per_round * [1, 4, 4], axis=-1)
    noise = rng.normal(0, 2, size=6)
    extra = np.zeros((6, 2, 3))
    extra[:, 0, 1], extra[:, 0, 2] = 30 * 4, (-10 + noise) * 4
    clicks = {"scratch": scratch, "prefill": scratch + np.cumsum(extra, axis=-1)}
    out = analyse(conf, images, clicks, names, n_boot=300)
    random, al = out["prefill_vs_scratch"]["random"], out["prefill_vs_scratch"]["al"]
    assert [e["round"] for e in random] == [1, 2]
    assert random[0]["diff"] == 30 and random[0]["diff_interval"] == [30, 30]
    assert abs(random[0]["scratch"] - per_round[:, 0, 1].mean()) < 1e-9
    lo, hi = random[1]["diff_interval"]
    assert lo < -10 + noise.mean() < hi and hi < 0
    assert all(e["diff"] == 0 and e["prefill"] == e["scratch"] for e in al)
    assert "round 1: " in table_text(out) and "+30 [+30, +30]" in table_text(out)


def test_per_class_iou_of_the_last_round_with_paired_intervals():
    """Class 1's IoU is 1 - q: 0.8 for 'better' against 0.7 for random; class 2 is in no truth and no
    prediction and is left out."""
    names, conf2 = _runs({"random": [0.5, 0.3], "better": [0.5, 0.2], "same": [0.5, 0.3]})
    conf = np.zeros(conf2.shape[:-2] + (3, 3), dtype=np.int64)
    conf[..., :2, :2] = conf2
    images = np.broadcast_to(np.array([1, 5]), (6, 3, 2))
    clicks = {"prefill": np.broadcast_to(np.array([100, 400]), (6, 3, 2)).astype(float)}
    out = analyse(conf, images, clicks, names, n_boot=400, classes=["background", "part", "never"])
    per_class = out["class_iou_last"]
    assert set(per_class) == {"background", "part"}
    better, same = per_class["part"]["better"], per_class["part"]["same"]
    assert abs(per_class["part"]["random"]["iou"] - 0.7) < 0.01 and abs(better["iou"] - 0.8) < 0.01
    lo, hi = better["diff_interval"]
    assert 0 < lo < 0.1 < hi and abs(better["diff_to_random"] - 0.1) < 0.01
    assert same["diff_interval"][0] < 0 < same["diff_interval"][1]
    assert "diff_interval" not in per_class["part"]["random"]
    assert "part" in table_text(out) and "never" not in table_text(out)


def test_a_class_missing_from_a_draw_keeps_its_whole_set_iou():
    """A part in 1 image of 100 that no run segments (IoU 0): draws without that image must not lift the
    mIoU above the point estimate (dropping the class would put the point at the interval's lower edge)."""
    names, conf2 = _runs({"random": [0.5, 0.3], "better": [0.5, 0.2]})
    conf = np.zeros(conf2.shape[:-2] + (3, 3), dtype=np.int64)
    conf[..., :2, :2] = conf2
    conf[:, :, :, 0, 2, 0] = 40  # image 0: 40 pixels of the rare class, predicted as background
    images = np.broadcast_to(np.array([1, 5]), (6, 2, 2))
    clicks = {"prefill": np.broadcast_to(np.array([100, 400]), (6, 2, 2)).astype(float)}
    out = analyse(conf, images, clicks, names, n_boot=400)
    for name in names:
        point, (lo, hi) = out["curves"][name]["miou"][1], out["curves"][name]["miou_interval"][1]
        assert lo < point < hi and (point - lo) > 0.2 * (hi - lo)


def test_effort_against_the_naive_way_counts_draws_that_miss_and_the_reference_reaches_its_own_target():
    """12 repeats (the mean of the last round and the last point of the mean curve can differ in the last bit):
    random, drawn from scratch, is the naive way (ratio 1); "edit" halves every click of "better", which
    reaches random's mIoU a round earlier; "worse" never reaches it, and its interval says so."""
    names, conf = _runs({"random": [0.5, 0.4, 0.3], "better": [0.5, 0.3, 0.2], "worse": [0.5, 0.45, 0.4]},
                        repeats=12, seed=4)
    images = np.broadcast_to(np.array([1, 3, 5]), (12, 3, 3)).astype(float)
    scratch = np.broadcast_to(np.array([100.0, 300, 500]), (12, 3, 3))
    out = analyse(conf, images, {"scratch": scratch, "edit": scratch / 2}, names, n_boot=300)
    effort = out["effort_vs_naive"]["strategies"]
    assert effort["random"]["scratch"]["ratio"] == 1 and effort["random"]["scratch"]["reached_share"] == 1
    assert effort["random"]["edit"]["ratio"] == 0.5
    assert 0.2 < effort["better"]["edit"]["ratio"] < 0.35  # about 300 / 2 of random's 500
    lo, hi = effort["better"]["edit"]["ratio_interval"]
    assert lo <= effort["better"]["edit"]["ratio"] <= hi < 0.5
    assert effort["worse"]["edit"]["ratio"] is None and effort["worse"]["edit"]["reached_share"] < 0.05
    assert effort["worse"]["edit"]["ratio_interval"] == [None, None]  # missed in every draw: no finite bound
    assert out["savings"]["random"]["images"]["needed"] == 5  # the reference reaches its own last-round mIoU
    text = table_text(out)
    assert "naive way" in text and "edit: not reached" in text and "edit 0.50 [0.50, 0.50]" in text
