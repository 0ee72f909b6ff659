"""A pool of photos end to end: a tiny random ADM UNet (upstream's tensor names, flags in ``<file>.json``) reads a
folder of toy-faces renders; ``init --images``, the oracle, ``next-round``, changes to the folder between rounds,
``status``, ``build-dataset`` (the pool's photos and another folder's) and ``evaluate`` on it."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from adm_formats import random_state, write_checkpoint
from dgan_al.cli import app
from dgan_al.generators.adm.source import DiffusionFeatures
from dgan_al.generators.toy_faces.classes import CLASSES
from dgan_al.generators.toy_faces.render_pool import write_render_pool
from dgan_al.workflows.next_round import next_round
from dgan_al.workflows.oracle import oracle_annotate
from dgan_al.workspace.image_pool import load_pool_image, scan_pool
from dgan_al.workspace.layout import Workspace

runner = CliRunner()
SIZE, STEPS, BLOCKS = 32, [10, 50], [1, 2, 3]


def invoke(*args: str) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """init --images on 14 renders -> the oracle annotates round 000 -> next-round (round 001)."""
    root = tmp_path_factory.mktemp("photos")
    write_checkpoint(root, random_state())
    write_render_pool(root / "photos", 14, seed=11)
    invoke("init", root / "ws", "--generator", root / "adm.pt", "--images", root / "photos", "--photo-size", SIZE,
           "--steps", ",".join(map(str, STEPS)), "--blocks", ",".join(map(str, BLOCKS)), "--classes", ",".join(CLASSES))
    toml = root / "ws" / "dgan-al.toml"
    toml.write_text(toml.read_text().replace("centers = 12", "centers = 4").replace("annotate = 6", "annotate = 2")
                    .replace("band = 0.1 ", "band = 0.5 "))
    ws = Workspace.find(root / "ws")
    oracle_annotate(ws, 0)
    assert next_round(ws).round == 1
    return root


@pytest.fixture
def root(made, tmp_path) -> Path:
    shutil.copytree(made, tmp_path / "copy")
    toml = tmp_path / "copy/ws/dgan-al.toml"  # the photos and the UNet lie outside the workspace: absolute paths
    toml.write_text(toml.read_text().replace(str(made), str(tmp_path / "copy")))
    return tmp_path / "copy"


def pooled_features(root: Path) -> tuple[list[str], np.ndarray]:
    """Every photo's maps averaged over their pixels, read here with DiffusionFeatures directly."""
    source = DiffusionFeatures.from_checkpoint(root / "adm.pt", steps=STEPS, blocks=BLOCKS, seed=0, size=SIZE)
    index = scan_pool(root / "photos")
    images = np.stack([load_pool_image(root / "photos", e, SIZE) for e in index.entries])
    maps = source.features(images)
    return [e.name for e in index.entries], torch.cat([m.mean(dim=(2, 3)) for m in maps], 1).double().numpy()


def test_round_zero_is_the_photo_nearest_the_mean_feature(made):
    names, pooled = pooled_features(made)
    nearest = names[int(np.argmin(((pooled - pooled.mean(0)) ** 2).sum(1)))]
    selection = json.loads((made / "ws/rounds/round_000/selection.json").read_text())
    assert [item["latent"]["name"] for item in selection["items"]] == [nearest]
    config = (made / "ws/dgan-al.toml").read_text()
    assert "[photos]" in config and f"size = {SIZE}" in config


def test_exported_items_name_their_photo_and_show_it_at_the_label_size(made):
    ws = made / "ws"
    selection = json.loads((ws / "rounds/round_001/selection.json").read_text())
    assert len(selection["items"]) == 4 and selection["pool"]["size"] == 14 and "seed" not in selection["pool"]
    by_name = scan_pool(made / "photos").by_name()
    for item in selection["items"]:
        entry = by_name[item["latent"]["name"]]
        assert item["latent"] == {"pool_id": entry.pool_id, "name": entry.name, "sha256": entry.sha256}
        assert item["id"] == entry.pool_id and item["z"] == []
        png = ws / "rounds/round_001/annotate" / item["image"]
        assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), load_pool_image(made / "photos", entry, SIZE))
        meta = json.loads((png.with_suffix(".json")).read_text())["dgan_al"]
        assert meta["latent"] == item["latent"] and meta["z"] == []
    assert any(item["prefilled_shapes"] > 0 for item in selection["items"])  # pre-filled from 1 annotation
    first = json.loads((ws / "rounds/round_000/selection.json").read_text())["items"][0]
    assert first["id"] not in {item["id"] for item in selection["items"]}  # the annotated photo is not offered again
    original = ws / "annotations/originals" / f"{first['id']}.png"  # the annotated file kept byte for byte
    assert sha(original) == first["latent"]["sha256"] == sha(made / "photos" / first["latent"]["name"])


def test_folder_changes_are_reported_and_an_annotated_photo_that_left_still_trains(root):
    ws = Workspace.find(root / "ws")
    photos = root / "photos"
    oracle_annotate(ws, 1, as_asked=True)  # 2 of 4 done, the rest unrealistic
    first = json.loads((root / "ws/rounds/round_000/selection.json").read_text())["items"][0]["latent"]["name"]
    offered = {i["latent"]["name"] for i in json.loads((root / "ws/rounds/round_001/selection.json").read_text())["items"]}
    others = sorted(p.name for p in photos.glob("*.png") if p.name != first and p.name not in offered)
    (photos / first).unlink()  # an annotated photo leaves the folder
    (photos / others[0]).rename(photos / "renamed.png")
    (photos / others[1]).unlink()
    Image.open(photos / others[3]).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(photos / "added.png")
    Image.open(photos / others[3]).transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(photos / others[2])
    status = json.loads(invoke("status", "--json", "-w", root / "ws"))
    assert status["photo_pool"]["photos"] == 13
    assert status["photo_pool"]["changes"] == {"added": ["added.png"], "removed": sorted([first, others[1]]),
                                               "changed": [others[2]], "renamed": [[others[0], "renamed.png"]]}
    shutil.rmtree(root / "ws/rounds/cache")  # features of the photo that left come from annotations/ now
    result = next_round(ws)
    assert result.pool_changes == "1 added, 2 removed, 1 changed, 1 renamed" and result.n_annotations == 3
    selection = json.loads((root / "ws/rounds/round_002/selection.json").read_text())
    assert selection["pool"]["changes"] == result.pool_changes and selection["pool"]["size"] == 13
    current = {e.pool_id for e in scan_pool(photos).entries}
    assert {item["id"] for item in selection["items"]} <= current
    again = next_round(ws)  # the changes are recorded: nothing new to report or do
    assert again.status == "up-to-date"
    assert "since the last round" not in invoke("status", "-w", root / "ws")


def test_build_dataset_labels_the_pool_photos_or_another_folder(root):
    out = root / "data"
    invoke("build-dataset", "-w", root / "ws", "--out", out, "--size", "100")
    rows = (out / "manifest.csv").read_text().splitlines()
    assert rows[0] == "id,photo,photo_index,score,rank,kept,image,mask"
    index = scan_pool(root / "photos")
    assert [r.split(",")[1] for r in rows[1:]] == [e.name for e in index.entries]  # every photo, by name
    entry = index.entries[3]
    assert np.array_equal(np.asarray(Image.open(out / "images" / f"{entry.pool_id}.png")),
                          load_pool_image(root / "photos", entry, SIZE))
    assert np.asarray(Image.open(out / "masks" / f"{entry.pool_id}.png")).shape == (SIZE, SIZE)
    write_render_pool(root / "other", 3, seed=12)
    invoke("build-dataset", "-w", root / "ws", "--out", root / "data2", "--images", root / "other")
    names = [r.split(",")[1] for r in (root / "data2/manifest.csv").read_text().splitlines()[1:]]
    assert names == [p.name for p in sorted((root / "other").glob("*.png"))]


def test_evaluate_cross_validates_photo_annotations(root):
    ws = Workspace.find(root / "ws")
    oracle_annotate(ws, 1, as_asked=True)
    next_round(ws)
    output = invoke("evaluate", "-w", root / "ws", "--folds", "3")
    assert "mIoU" in output and "3 annotations" in output


@pytest.mark.parametrize("args,message", [
    (["--images", "nowhere", "--blocks", "1,2,3"], "no such folder of photos"),
    (["--images", "empty", "--blocks", "1,2,3"], "holds no images"),
    (["--images", "photos", "--blocks", "1,2,9"], "blocks must be distinct indices in 0..3"),
])
def test_init_refuses_bad_photo_pools_and_writes_nothing(made, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    shutil.copytree(made / "photos", tmp_path / "photos")
    args = [str(tmp_path / a) if a in ("nowhere", "empty", "photos") else a for a in args]
    result = runner.invoke(app, ["init", str(tmp_path / "ws"), "--generator", str(made / "adm.pt"), "--photo-size",
                                 str(SIZE), "--steps", "10", "--classes", "a,b", *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "ws").exists()


def test_a_photo_pool_refuses_the_w_embedding(root):
    toml = root / "ws/dgan-al.toml"
    toml.write_text(toml.read_text().replace('embedding = "activations"', 'embedding = "w"'))
    result = runner.invoke(app, ["next-round", "-w", str(root / "ws")])
    assert result.exit_code == 2 and "a photo has no latent w" in result.output


@pytest.mark.parametrize("strategy", ["rare", "typical"])
def test_other_strategies_choose_from_the_photos(root, strategy):
    """``rare`` scores the pool's class JS in a pass of its own; ``typical`` clusters the activations."""
    toml = root / "ws/dgan-al.toml"
    toml.write_text(toml.read_text().replace('strategy = "al"', f'strategy = "{strategy}"'))
    ws = Workspace.find(root / "ws")
    oracle_annotate(ws, 1, as_asked=True)
    result = next_round(ws)
    selection = json.loads((root / "ws/rounds/round_002/selection.json").read_text())
    assert selection["settings"]["strategy"] == strategy and len(result.chosen) == 2
    pool = {e.pool_id for e in scan_pool(root / "photos").entries}
    used = {i["id"] for n in (0, 1) for i in json.loads(
        (root / f"ws/rounds/round_00{n}/selection.json").read_text())["items"]}
    assert {item["id"] for item in result.chosen} <= pool - used


def test_the_oracle_places_render_keypoints_through_the_resize(made, tmp_path):
    """A keypoint workspace on renders: the oracle's points are the renderer's, moved from 128 px to the 32 px
    label grid with pixel centres at integers: x' = (x + 0.5) * 32 / 128 - 0.5."""
    from dgan_al.generators.toy_faces.keypoints import KEYPOINTS
    from dgan_al.generators.toy_faces.render_pool import render_truth

    invoke("init", tmp_path / "kp", "--generator", made / "adm.pt", "--images", made / "photos", "--photo-size", SIZE,
           "--steps", "10", "--blocks", "1,3", "--classes", ",".join(CLASSES), "--keypoints", ",".join(KEYPOINTS))
    oracle_annotate(Workspace.find(tmp_path / "kp"), 0)
    item = json.loads((tmp_path / "kp/rounds/round_000/selection.json").read_text())["items"][0]
    shapes = json.loads((tmp_path / f"kp/rounds/round_000/annotate/{item['json']}").read_text())["shapes"]
    placed = {s["label"]: s["points"][0] for s in shapes if s["shape_type"] == "point"}
    _, truth = render_truth(made / "photos", item["latent"]["name"])
    expected = {n: [(x + 0.5) / 4 - 0.5, (y + 0.5) / 4 - 0.5] for n, (x, y, v) in zip(KEYPOINTS, truth) if v > 0}
    assert placed.keys() == expected.keys() and len(placed) >= 5
    for name, (x, y) in expected.items():
        assert placed[name] == pytest.approx([x, y], abs=1e-6)


def test_labels_at_a_larger_size_than_the_unet_reads(made, tmp_path):
    """--label-size 64 with the UNet at 32: the person annotates, and the interpreter labels, at 64 px; the UNet
    still reads the photo resized to 32 (its features equal DiffusionFeatures' own of that image)."""
    from dgan_al.workflows.features import load_maps

    invoke("init", tmp_path / "big", "--generator", made / "adm.pt", "--images", made / "photos", "--photo-size", SIZE,
           "--label-size", 64, "--steps", "10", "--blocks", "1,3", "--classes", ",".join(CLASSES))
    toml = tmp_path / "big/dgan-al.toml"
    toml.write_text(toml.read_text().replace("centers = 12", "centers = 4").replace("annotate = 6", "annotate = 2")
                    .replace("band = 0.1 ", "band = 0.5 "))
    ws = Workspace.find(tmp_path / "big")
    oracle_annotate(ws, 0)
    result = next_round(ws)
    by_name = scan_pool(made / "photos").by_name()
    item = result.chosen[0]
    png = tmp_path / "big/rounds/round_001/annotate" / item["image"]
    entry = by_name[item["latent"]["name"]]
    assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), load_pool_image(made / "photos", entry, 64))
    assert item["prefilled_shapes"] > 0 and ws.load_generator().resolution == (64, 64)
    first = json.loads((tmp_path / "big/rounds/round_000/selection.json").read_text())["items"][0]
    cached = next((tmp_path / "big/rounds/cache/features").glob(f"*/{first['id']}.pt"))
    source = DiffusionFeatures.from_checkpoint(made / "adm.pt", steps=[10], blocks=[1, 3], seed=0, size=SIZE)
    expected = source.features(load_pool_image(made / "photos", by_name[first["latent"]["name"]], SIZE)[None])
    assert all(torch.equal(m.float(), e[0].half().float()) for m, e in zip(load_maps(cached), expected))


def test_the_shipped_toy_diffusion_model_reads_a_pool_of_renders(made, tmp_path):
    """``--generator toy-faces-adm``: the shipped UNet with the features its ship gate chose, on 128 px renders
    labelled at 128 px; without --images it is refused."""
    invoke("init", tmp_path / "toy", "--generator", "toy-faces-adm", "--images", made / "photos", "--label-size", 128,
           "--classes", ",".join(CLASSES))
    ws = Workspace.find(tmp_path / "toy")
    p = ws.config.photos
    assert (ws.config.generator.spec, p.size, p.label_size, p.steps, p.blocks) == \
        ("toy-faces-adm", 64, 128, [50], [2, 3, 4, 5, 6, 7])
    generator = ws.load_generator()
    assert generator.resolution == (128, 128) and generator.identity.startswith("adm:")
    item = json.loads((tmp_path / "toy/rounds/round_000/selection.json").read_text())["items"][0]
    png = tmp_path / "toy/rounds/round_000/annotate" / item["image"]
    assert np.array_equal(np.asarray(Image.open(png).convert("RGB")),
                          np.asarray(Image.open(made / "photos" / item["latent"]["name"]).convert("RGB")))
    result = runner.invoke(app, ["init", str(tmp_path / "none"), "--generator", "toy-faces-adm"])
    assert result.exit_code == 2 and "reads photos" in result.output and not (tmp_path / "none").exists()


def test_a_latent_workspace_records_what_it_always_did(tmp_path):
    """The StyleGAN side of the shared pool: no [photos] section, items named by latent with their z, the pool
    record of a seed, and a second run on the same files gives the same selection byte for byte."""
    from workspaces import make_workspace

    ws = make_workspace(tmp_path / "faces", settings={"selection.band": 0.6})
    assert "[photos]" not in ws.config_path.read_text() and not ws.config.photo_pool
    oracle_annotate(ws, 0)
    shutil.copytree(tmp_path / "faces", tmp_path / "again")
    next_round(ws)
    selection = json.loads((tmp_path / "faces/rounds/round_001/selection.json").read_bytes())
    assert selection["pool"]["seed"] == 0 and selection["pool"]["size"] == 48 and "folder" not in selection["pool"]
    for item in selection["items"]:
        seed, index = item["latent"]["seed"], item["latent"]["index"]
        assert item["latent"] == {"seed": seed, "index": index} and item["id"] == f"s{seed}-{index:06d}"
        assert len(item["z"]) == 32
    next_round(Workspace.find(tmp_path / "again"))
    assert (tmp_path / "again/rounds/round_001/selection.json").read_bytes() == \
        (tmp_path / "faces/rounds/round_001/selection.json").read_bytes()
