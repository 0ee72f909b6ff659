"""The selection entry point shared by next-round and simulate: each strategy on fixed arrays."""

import numpy as np
import pytest

from dgan_al.selection import k_center_greedy, uncertainty_band
from dgan_al.strategies import STRATEGIES, choose, class_weights, exported, needs
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
