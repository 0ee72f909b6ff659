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


# ---------------------------------------------------------------------------------------------------
# item 5: the export pre-fills the predicted points


def exported(ws, number):
    """Round ``number``'s exported files: id -> parsed JSON."""
    folder = ws.round_files(number).annotate
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


@pytest.fixture(scope="module")
def everything(tmp_path_factory):
    """Two rounds pre-filling every predicted point ([keypoints] prefill_confidence = 0)."""
    return two_rounds(tmp_path_factory.mktemp("kp0") / "ws", {"keypoints.prefill_confidence": 0.0})


def test_the_export_prefills_every_point_at_confidence_zero_after_the_polygons(everything):
    ws = everything
    files = exported(ws, 2)
    assert files
    selection = json.loads((ws.round_dir(2) / "selection.json").read_text())
    for item in selection["items"]:
        raw = files[item["id"]]
        kinds = [s["shape_type"] for s in raw["shapes"]]
        points = [s for s in raw["shapes"] if s["shape_type"] == "point"]
        assert [s["label"] for s in points] == NAMES  # each name once, in the settings' order
        assert "polygon" in kinds and kinds.index("point") > max(i for i, k in enumerate(kinds) if k == "polygon")
        assert raw["flags"]["keypoints"] is False and raw["flags"]["done"] is False  # the person ticks it
        assert all(0 <= s["points"][0][0] <= 127 and 0 <= s["points"][0][1] <= 127 for s in points)
        assert item["prefilled_points"] == len(NAMES)
        assert item["prefilled_shapes"] == kinds.count("polygon")
    # the points are the round's interpreter's predicted peaks (label pixels)
    ensemble = PixelEnsemble.load(ws.round_dir(2) / INTERPRETER_FILE)
    gen = ws.load_generator()
    item = selection["items"][0]
    pred = ensemble.predict(gen.synthesize(torch.tensor([item["z"]])).features).keypoints
    points = [s["points"][0] for s in files[item["id"]]["shapes"] if s["shape_type"] == "point"]
    expected = pred.positions[0].clamp(0, 127).numpy()
    assert abs(torch.tensor(points) - torch.tensor(expected)).max() <= 0.006


def test_the_prefilled_points_are_corrected_by_the_oracle_and_imported(everything, tmp_path):
    import shutil

    from dgan_al.workflows.importing import import_annotations

    shutil.copytree(everything.root, tmp_path / "ws")
    ws = Workspace.find(tmp_path / "ws")
    result = oracle_annotate(ws, 2)
    clicks = json.loads((ws.round_dir(2) / "clicks.json").read_text())
    for id in result.annotated:
        counts = clicks["items"][id]["keypoints"]
        assert counts["prefilled"] == len(NAMES)  # every pre-filled point counted against the truth
        assert counts["edit"] == counts["moved"] + counts["added"] + counts["deleted"] + counts["flagged"]
        assert result.keypoint_clicks[id]["edit"] == counts["edit"]
    import_annotations(ws, AnnotationStore(ws.annotations_dir))
    store = AnnotationStore(ws.annotations_dir)
    for id in result.annotated:
        assert set(store.records[id].keypoints) == set(NAMES)
    # round 1 was pre-filled too (prefill_min_annotations 1): its corrections were counted
    first = json.loads((ws.round_dir(1) / "clicks.json").read_text())
    assert all(v["keypoints"]["prefilled"] == len(NAMES) for v in first["items"].values() if "keypoints" in v)


def test_no_point_is_prefilled_at_the_top_confidence(tmp_path):
    ws = make_workspace(tmp_path / "ws", pool_size=48,  # the settings' top ([0, 1]); 1.01 below, directly
                        settings={"keypoints.names": NAMES, "keypoints.prefill_confidence": 1.0})
    oracle_annotate(ws, 0)
    next_round(Workspace.find(tmp_path / "ws"))
    files = exported(ws, 1)
    assert files and all(s["shape_type"] == "polygon" for raw in files.values() for s in raw["shapes"])
    assert any(raw["shapes"] for raw in files.values())  # the polygons are still pre-filled
    selection = json.loads((ws.round_dir(1) / "selection.json").read_text())
    assert all(item["prefilled_points"] == 0 for item in selection["items"])


def test_points_at_or_above_the_confidence_and_none_below(everything, tmp_path):
    from dgan_al.workflows.export import ExportItem, export_round

    ws = everything
    ensemble = PixelEnsemble.load(ws.round_dir(2) / INTERPRETER_FILE)
    gen = ws.load_generator()
    selection = json.loads((ws.round_dir(2) / "selection.json").read_text())
    z = torch.tensor([item["z"] for item in selection["items"]])
    confidence = ensemble.predict(gen.synthesize(z).features).keypoints.confidence
    items = [ExportItem(id=item["id"], z=z[k], latent=item["latent"]) for k, item in enumerate(selection["items"])]
    for limit in (float(confidence.median()), 0.0, 1.01):  # some above and some below; all; none
        folder = tmp_path / f"round_{limit}"
        export_round(folder, 2, gen, items, ws.config.classes, ensemble=ensemble, keypoints=NAMES,
                     prefill_confidence=limit)
        seen = 0
        for k, item in enumerate(items):
            raw = json.loads((folder / "annotate" / f"{item.id}.json").read_text())
            labels = [s["label"] for s in raw["shapes"] if s["shape_type"] == "point"]
            assert labels == [n for i, n in enumerate(NAMES) if float(confidence[k, i]) >= limit]
            seen += len(labels)
        assert seen == {0.0: len(NAMES) * len(items), 1.01: 0}.get(limit, seen)
        if limit not in (0.0, 1.01):
            assert 0 < seen < len(NAMES) * len(items)


def test_without_names_the_export_writes_no_points_and_no_count(tmp_path):
    ws = make_workspace(tmp_path / "ws", pool_size=48, settings={"keypoints.prefill_confidence": 0.0})
    oracle_annotate(ws, 0)
    next_round(Workspace.find(tmp_path / "ws"))
    selection = json.loads((ws.round_dir(1) / "selection.json").read_text())
    assert all("prefilled_points" not in item for item in selection["items"])
    assert all(s["shape_type"] == "polygon" for raw in exported(ws, 1).values() for s in raw["shapes"])


def test_keypoint_score_setting_ranks_the_pool_by_both_uncertainties(tmp_path, looped):
    """``[keypoints] score = true``: the pool chunks hold each latent's keypoint uncertainty and selection
    uses the mean of the JS and keypoint percentile ranks; off (the default), the chunks and selection.json
    are as in a parts-only round."""
    import numpy as np
    from scipy.stats import rankdata

    def chunks(ws, number):
        parts = [np.load(p) for p in sorted((ws.round_dir(number) / "scores").glob("chunk_*.npz"))]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0].files if k != "key"}

    off = chunks(looped, 2)
    assert "keypoint_uncertainty" not in off
    assert "keypoint_score" not in json.loads((looped.round_dir(2) / "selection.json").read_text())["settings"]

    ws = make_workspace(tmp_path / "ws", pool_size=48, settings={"keypoints.names": NAMES, "keypoints.score": True})
    oracle_annotate(ws, 0)
    next_round(Workspace.find(tmp_path / "ws"))
    on = chunks(ws, 1)
    u = on["keypoint_uncertainty"]
    assert u.shape == (48,) and np.isfinite(u).all() and (u >= 0).all() and u.std() > 0
    selection = json.loads((ws.round_dir(1) / "selection.json").read_text())
    assert selection["settings"]["keypoint_score"]
    assert selection["pool"]["candidates"] == 48  # round 0's image is the mean latent's, not a pool one
    expected = (rankdata(on["score_sum"]) + rankdata(u)) / (2 * 48)
    items = selection["items"]
    assert items and all(item["score"] == pytest.approx(expected[item["latent"]["index"]]) for item in items)
