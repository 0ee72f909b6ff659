"""The selection entry point shared by next-round and simulate: each strategy on fixed arrays."""

import numpy as np
import pytest

from dgan_al.selection import k_center_greedy, kmeans, typicality, uncertainty_band
from dgan_al.strategies import (EXPERT_STRATEGIES, STRATEGIES, choose, class_weights, expert_round, exported, needs,
                                 round_strategy)
from dgan_al.workspace.config import SelectionSettings


def _arrays(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random(n), rng.normal(size=(n, 5)), rng.normal(size=(3, 5))


def test_uncertainty_takes_the_highest_scores_ties_to_the_lower_index():
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.2])
    choice = choose("uncertainty", 5, per_round=2, rng=np.random.default_rng(0), scores=scores)
    assert choice.order.tolist() == [1, 3] and choice.keep is None


def test_al_is_the_band_then_k_center_and_records_its_ranks():
    scores, emb, seeds = _arrays()
    choice = choose("al", 200, per_round=3, rng=np.random.default_rng(0), scores=scores, embeddings=emb,
                    seed_embeddings=seeds, skip_top=0.1, band=0.2, centers=6)
    band = uncertainty_band(scores, 0.1, 0.2)
    expected = band[k_center_greedy(emb[band], seeds, 6).order]
    assert choice.order.tolist() == expected.tolist() and choice.keep == 3
    ranks = np.argsort(np.argsort(-scores, kind="stable"), kind="stable")
    assert choice.record["band"]["ranks"] == [int(ranks[band].min()), int(ranks[band].max())] == [20, 59]
    assert choice.record["band"]["size"] == len(band) == 40
    with pytest.raises(ValueError, match="band holds"):
        choose("al", 200, per_round=3, rng=np.random.default_rng(0), scores=scores, embeddings=emb,
               seed_embeddings=seeds, skip_top=0.1, band=0.02, centers=6)


def test_random_strategies_are_seeded_and_the_expert_keeps_k():
    a = choose("random-expert", 50, per_round=4, rng=np.random.default_rng(3))
    b = choose("random-expert", 50, per_round=4, rng=np.random.default_rng(3))
    assert np.array_equal(a.order, b.order) and len(set(a.order.tolist())) == 8 and a.keep == 4
    assert len(choose("random", 50, per_round=4, rng=np.random.default_rng(3)).order) == 4


def test_rare_weighs_uncertainty_by_the_inverse_class_share():
    # 3 classes; class 2 is rare (1% of the pixels); image 0 is uncertain on common pixels, image 1 a
    # little uncertain on the rare class: rare picks image 1 first, uncertainty image 0
    share = np.array([[0.5, 0.5, 0.0], [0.48, 0.49, 0.03], [0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    cjs = np.array([[5.0, 5.0, 0.0], [0.5, 0.5, 1.0], [1.0, 1.0, 0.0], [0.2, 0.2, 0.0]])
    weights = class_weights(share, 1.0)
    assert weights[2] > 50 * weights[0] and np.isclose(weights.mean(), 1.0)
    rare = choose("rare", 4, per_round=1, rng=np.random.default_rng(0), class_js=cjs, class_share=share)
    plain = choose("uncertainty", 4, per_round=1, rng=np.random.default_rng(0), scores=cjs.sum(1))
    assert rare.order.tolist() == [1] and plain.order.tolist() == [0]
    flat = choose("rare", 4, per_round=1, rng=np.random.default_rng(0), class_js=cjs, class_share=share, rare_power=0)
    assert flat.order.tolist() == [0]  # power 0: plain uncertainty


def test_missing_inputs_and_unknown_strategies():
    with pytest.raises(ValueError, match="needs scores"):
        choose("uncertainty", 10, per_round=2, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown strategy"):
        choose("smart", 10, per_round=2, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="only 3 candidates"):
        choose("random", 3, per_round=4, rng=np.random.default_rng(0))
    assert all(isinstance(needs(s), set) for s in STRATEGIES)
    assert exported("al", 6, 12) == 12 and exported("random-expert", 6, 12) == 12 and exported("rare", 6, 12) == 6
    assert SelectionSettings().strategy == "al"


def _mixture(seed=0, dim=8):
    """Six well-separated Gaussian clusters of sizes 120, 100, 80, 60, 40, 30 (centres 40 apart in dim
    dimensions, unit spread), and three annotated points: two in cluster 0 (the largest), one in cluster 2."""
    rng = np.random.default_rng(seed)
    sizes = [120, 100, 80, 60, 40, 30]
    means = 40.0 * np.eye(dim)[:len(sizes)]
    truth = np.repeat(np.arange(len(sizes)), sizes)
    points = means[truth] + rng.normal(size=(len(truth), dim))
    seeds = means[[0, 0, 2]] + rng.normal(size=(3, dim))
    return points, truth, seeds


def _most_typical(points):
    """Brute force: the index of the point whose mean distance to its min(20, n - 1) nearest others is least."""
    d = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    k = min(20, len(points) - 1)
    mean_near = np.array([np.sort(np.delete(row, i))[:k].mean() for i, row in enumerate(d)])
    return int(np.argmin(mean_near)), 1.0 / mean_near.min()


def test_kmeans_recovers_separated_clusters_and_typicality_matches_brute_force():
    points, truth, _ = _mixture(3)
    result = kmeans(points, 6, np.random.default_rng(0), chunk=50)  # chunks smaller than the data
    assert result.converged and len(np.unique(result.labels)) == 6
    assert all(len(np.unique(result.labels[truth == c])) == 1 for c in range(6))  # a cluster per blob
    assert np.isclose(result.inertia, sum(((points[truth == c] - points[truth == c].mean(0)) ** 2).sum()
                                          for c in range(6)))
    members = points[truth == 5]
    d = np.sqrt(((members[:, None] - members[None]) ** 2).sum(-1))
    for neighbours in (3, 20, 100):
        k = min(neighbours, len(members) - 1)
        expected = [1.0 / np.sort(np.delete(row, i))[:k].mean() for i, row in enumerate(d)]
        assert np.allclose(typicality(members, neighbours, chunk=7), expected)
    assert np.isnan(typicality(members[:1])).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_typical_picks_the_most_typical_point_of_each_largest_cluster_without_annotations(seed):
    points, truth, seeds = _mixture(seed)
    choice = choose("typical", len(points), per_round=3, rng=np.random.default_rng(seed), embeddings=points,
                    seed_embeddings=seeds)
    # clusters free of annotations: 1 (100), 3 (60), 4 (40), 5 (30); the three largest, largest first
    assert truth[choice.order].tolist() == [1, 3, 4]
    assert choice.keep is None and choice.coreset_distances is None
    for pick, cluster in zip(choice.order, [1, 3, 4]):
        members = np.flatnonzero(truth == cluster)
        best, value = _most_typical(points[members])
        assert pick == members[best]
    record = choice.record["typical"]
    assert choice.record["strategy"] == "typical" and record["clusters"] == 6 and record["annotated"] == 3
    assert record["cluster_sizes"] == [100, 60, 40] and record["cluster_annotated"] == [0, 0, 0]
    assert record["free_clusters"] == 4
    expected = [_most_typical(points[truth == c])[1] for c in (1, 3, 4)]
    assert np.allclose(record["typicality"], expected)


def test_typical_without_annotations_and_with_more_picks_than_free_clusters():
    points, truth, _ = _mixture(0)
    choice = choose("typical", len(points), per_round=6, rng=np.random.default_rng(0), embeddings=points)
    assert truth[choice.order].tolist() == [0, 1, 2, 3, 4, 5]  # no annotations: every cluster, largest first
    # three distinct points (10, 5 and 3 copies) and one annotation on the first: 4 clusters, one empty;
    # the two free clusters come first (largest first), then the annotated one fills in
    base = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    dup = np.repeat(base, [10, 5, 3], axis=0)
    choice = choose("typical", len(dup), per_round=3, rng=np.random.default_rng(0), embeddings=dup,
                    seed_embeddings=base[:1])
    assert [tuple(dup[i]) for i in choice.order] == [(10.0, 0.0), (0.0, 10.0), (0.0, 0.0)]
    assert choice.order.tolist() == [10, 15, 0]  # ties to the lower index
    assert choice.record["typical"]["cluster_annotated"] == [0, 0, 1]
    # two distinct points, three picks: a second pick from the larger cluster, never a repeat
    two = np.repeat(base[:2], [4, 2], axis=0)
    choice = choose("typical", len(two), per_round=3, rng=np.random.default_rng(0), embeddings=two)
    assert choice.order.tolist() == [0, 4, 1]


def test_typical_is_deterministic_for_a_seed_and_refuses_too_few_candidates():
    rng = np.random.default_rng(5)
    points, seeds = rng.normal(size=(300, 16)), rng.normal(size=(4, 16))  # no cluster structure: k-means++ matters
    runs = [choose("typical", 300, per_round=5, rng=np.random.default_rng(s), embeddings=points,
                   seed_embeddings=seeds) for s in (7, 7, 8)]
    assert np.array_equal(runs[0].order, runs[1].order) and runs[0].record == runs[1].record
    assert len(set(runs[0].order.tolist())) == 5
    assert not np.array_equal(runs[0].order, runs[2].order)
    with pytest.raises(ValueError, match="only 4 candidates left; typical exports 5"):
        choose("typical", 4, per_round=5, rng=np.random.default_rng(0), embeddings=points[:4])
    with pytest.raises(ValueError, match="needs embeddings"):
        choose("typical", 300, per_round=5, rng=np.random.default_rng(0))


def test_typical_al_switches_to_al_at_switch_at_annotations():
    scores, emb, _ = _arrays()
    rng = np.random.default_rng(1)
    common = dict(per_round=3, scores=scores, embeddings=emb, skip_top=0.1, band=0.2, centers=6, switch_at=4)
    for n in range(1, 7):
        seeds = rng.normal(size=(n, 5))
        choice = choose("typical-al", 200, rng=np.random.default_rng(0), seed_embeddings=seeds, **common)
        branch = "typical" if n < 4 else "al"
        plain = choose(branch, 200, rng=np.random.default_rng(0), seed_embeddings=seeds, **common)
        assert choice.record["branch"] == branch and choice.record["strategy"] == "typical-al"
        assert choice.record["n_annotated"] == n and choice.record["switch_at"] == 4
        assert choice.order.tolist() == plain.order.tolist() and choice.keep == plain.keep
        assert choice.keep == (3 if n >= 4 else None) and len(choice.order) == (6 if n >= 4 else 3)
        assert exported("typical-al", 3, 6, n_annotated=n, switch_at=4) == len(choice.order)
        assert expert_round("typical-al", n, switch_at=4) == (n >= 4) == (choice.keep is not None)
        assert round_strategy("typical-al", n, 4) == branch
    # an explicit count overrides len(seed_embeddings); the default switch is at 10
    choice = choose("typical-al", 200, rng=np.random.default_rng(0), seed_embeddings=rng.normal(size=(2, 5)),
                    n_annotated=4, **common)
    assert choice.record["branch"] == "al"
    default = {k: v for k, v in common.items() if k != "switch_at"}
    for n, branch in ((9, "typical"), (10, "al")):
        choice = choose("typical-al", 200, rng=np.random.default_rng(0), seed_embeddings=rng.normal(size=(n, 5)),
                        **default)
        assert choice.record["branch"] == branch
    assert needs("typical-al") == {"scores", "embeddings"} and needs("typical") == {"embeddings"}
    assert exported("typical-al", 3, 6) == 6 and exported("typical", 3, 6) == 3  # without n: the most it exports
    assert "typical-al" in EXPERT_STRATEGIES and "typical" not in EXPERT_STRATEGIES
    assert not expert_round("typical") and expert_round("al") and expert_round("random-expert")
    with pytest.raises(ValueError, match="n_annotated"):
        expert_round("typical-al")
    with pytest.raises(ValueError, match="needs scores"):  # typical-al needs both branches' arrays
        choose("typical-al", 200, per_round=3, rng=np.random.default_rng(0), embeddings=emb)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["rare"])
def test_next_round_runs_the_configured_strategy(tmp_path, strategy):
    import json

    from dgan_al.workflows.next_round import next_round
    from dgan_al.workflows.oracle import oracle_annotate
    from dgan_al.workspace.layout import Workspace
    from workspaces import make_workspace

    ws = make_workspace(tmp_path / "ws", pool_size=40, settings={"selection.strategy": strategy})
    oracle_annotate(ws, 0)
    next_round(Workspace.find(ws.root))
    selection = json.loads((ws.round_dir(1) / "selection.json").read_text())
    assert selection["settings"]["strategy"] == strategy and len(selection["items"]) == 2  # annotate = 2
    assert "band" not in selection
    if strategy == "uncertainty":
        assert sorted(item["rank"] for item in selection["items"]) == [0, 1]  # the two highest scores
    else:
        weights = selection["class_weights"]
        assert len(weights) == len(ws.config.classes) and max(weights) > 1 > min(w for w in weights if w > 0)
    assert strategy in (ws.round_dir(1) / "README.txt").read_text()
