"""Issue 32 items 3 and 5 in the loop: next-round trains the keypoint heads on the records' keypoints, and the
export pre-fills the predicted points."""

import json

import pytest
import torch

from dgan_al.generators.toy_faces import KEYPOINTS
from dgan_al.interpreter import PixelEnsemble
from dgan_al.workflows.interpreter import INTERPRETER_FILE, KeypointTrainingItems, training_items
from dgan_al.workflows.next_round import next_round
from dgan_al.workflows.oracle import oracle_annotate
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.layout import Workspace
from workspaces import make_workspace

NAMES = list(KEYPOINTS)


def two_rounds(path, settings=None):
    """A small toy-faces workspace with toy-faces' keypoint names: the oracle annotates round 0 (points
    placed), next-round, the oracle annotates round 1, next-round again (round 002 exported)."""
    ws = make_workspace(path, pool_size=48, settings={"keypoints.names": NAMES, **(settings or {})})
    oracle_annotate(ws, 0)
    next_round(Workspace.find(path))
    oracle_annotate(Workspace.find(path), 1)
    next_round(Workspace.find(path))
    return Workspace.find(path)


@pytest.fixture(scope="module")
def looped(tmp_path_factory):
    return two_rounds(tmp_path_factory.mktemp("kp") / "ws")


def test_next_round_trains_the_heads_on_the_records_keypoints(looped):
    ws = looped
    store = AnnotationStore(ws.annotations_dir)
    ids = store.ids()
    assert len(ids) > 1 and all(store.records[i].keypoints is not None for i in ids)
    assert sum(v > 0 for i in ids for _, _, v in store.records[i].keypoints.values()) > 0
    items = training_items(ws, store, ids, [ws.root / "unused"] * len(ids))
    assert isinstance(items, KeypointTrainingItems)
    assert items.keypoints == [store.records[i].keypoints for i in ids]
    for number in (1, 2):
        ensemble = PixelEnsemble.load(ws.round_dir(number) / INTERPRETER_FILE)
        assert ensemble.keypoints == NAMES and ensemble.sigma == ws.config.keypoints.sigma
    gen = ws.load_generator()
    pred = ensemble.predict(gen.synthesize(gen.mean_latent()[None]).features)
    assert pred.keypoints is not None and pred.keypoints.names == NAMES
    assert pred.keypoints.positions.shape == (1, len(NAMES), 2)
    assert pred.keypoints.confidence.shape == pred.keypoints.spread.shape == (1, len(NAMES))
    assert torch.isfinite(pred.keypoints.positions).all()


def test_an_image_not_annotated_for_keypoints_trains_the_parts_only(tmp_path):
    ws = make_workspace(tmp_path / "ws", pool_size=48, settings={"keypoints.names": NAMES})
    oracle_annotate(ws, 0)
    path = ws.round_files(0).annotate / "mean.json"  # untick the flag and drop the points: parts only
    raw = json.loads(path.read_text())
    raw["flags"]["keypoints"] = False
    raw["shapes"] = [s for s in raw["shapes"] if s["shape_type"] != "point"]
    path.write_text(json.dumps(raw))
    next_round(Workspace.find(tmp_path / "ws"))
    store = AnnotationStore(ws.annotations_dir)
    assert store.records["mean"].keypoints is None
    items = training_items(ws, store, ["mean"], [ws.root / "unused"])
    assert items.keypoints == [None]
    assert PixelEnsemble.load(ws.round_dir(1) / INTERPRETER_FILE).keypoints == NAMES


def test_without_names_the_items_are_the_parts_only_items(tmp_path):
    ws = make_workspace(tmp_path / "ws", pool_size=48)
    oracle_annotate(ws, 0)
    next_round(Workspace.find(tmp_path / "ws"))
    store = AnnotationStore(ws.annotations_dir)
    assert type(training_items(ws, store, ["mean"], [ws.root / "unused"])).__name__ == "TrainingItems"
    assert PixelEnsemble.load(ws.round_dir(1) / INTERPRETER_FILE).keypoints == []
