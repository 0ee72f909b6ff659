"""The annotation loop end to end on toy-faces with the oracle, resumption after kill -9, and bad inputs
that must leave annotations/ and the round folder byte-identical."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dgan_al.cli import app
from dgan_al.labelme import read_labelme
from dgan_al.workflows.next_round import next_round
from dgan_al.workflows.oracle import oracle_annotate
from dgan_al.workflows.status import workspace_status
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.layout import Workspace
from dgan_al.workspace.lock import WorkspaceLock

from workspaces import make_workspace, snapshot

runner = CliRunner()
@pytest.fixture(scope="module")
def round1(tmp_path_factory) -> Path:
    """A workspace after init -> oracle annotates round 000 -> next-round (round 001 exported)."""
    root = tmp_path_factory.mktemp("ws") / "faces"
    ws = make_workspace(root)
    oracle_annotate(ws, 0)
    result = next_round(Workspace.find(root))
    assert result.status == "exported" and result.round == 1
    return root


def copy_of(round1: Path, tmp_path: Path) -> Workspace:
    target = tmp_path / "faces"
    shutil.copytree(round1, target)
    return Workspace.find(target)


@pytest.mark.slow
def test_end_to_end_loop(round1, tmp_path):
    ws = copy_of(round1, tmp_path)
    folder = ws.round_dir(1)
    selection = json.loads((folder / "selection.json").read_text())
    assert len(selection["items"]) == 4
    lo, hi = selection["band"]["ranks"]
    assert all(lo <= item["rank"] <= hi for item in selection["items"])
    assert {p.name for p in folder.iterdir()} == {"README.txt", "selection.json", "contact_sheet.png",
                                                  "interpreter.pt", "state.json", "scores", "annotate"}
    annotate = folder / "annotate"  # what LabelMe opens: only the files to annotate
    assert sorted(p.name for p in annotate.iterdir()) == sorted(
        ["labels.txt", *(item["json"] for item in selection["items"]), *(item["image"] for item in selection["items"])])
    for item in selection["items"]:  # exported files open in our strict reader; pre-filled shapes present
        ann = read_labelme(annotate / item["json"], ws.config.classes)
        assert not ann.done and ann.extra["dgan_al"]["id"] == item["id"]
        assert item["prefilled_shapes"] == len(ann.shapes) > 0
        assert item["prefilled_vertices"] == sum(len(shape.points) for shape in ann.shapes)
    assert Image.open(folder / "contact_sheet.png").size[0] > 3 * 128

    oracle_annotate(ws, 1, keep=2)  # the expert keeps 2 of the 4
    result = next_round(ws)
    exported = {item["id"] for item in selection["items"]}
    assert len(result.imports.imported) == 2 and len(result.imports.skipped) == 2
    assert set(result.imports.imported) | set(result.imports.skipped) == exported
    assert result.round == 2 and result.n_annotations == 3
    store = AnnotationStore(ws.annotations_dir)
    assert set(store.ids()) == {"mean", *result.imports.imported}
    for id in store.ids():  # copies byte for byte, mask consistent with the JSON
        record = store.records[id]
        source = ws.root / record.source
        assert store.json_path(id).read_bytes() == source.read_bytes()
        assert store.mask(id).shape == (128, 128)
    chosen = {item["id"] for item in result.chosen}
    assert not chosen & (set(store.ids()) | set(store.skipped) | {i["id"] for i in selection["items"]})

    status = workspace_status(ws)
    assert status.annotations == 3 and status.skipped == 2
    assert [r.number for r in status.rounds] == [0, 1, 2]
    assert "annotate round 002" in status.next_step

    before = snapshot(ws.annotations_dir, ws.rounds_dir)
    again = next_round(ws)
    assert again.status == "up-to-date"
    assert snapshot(ws.annotations_dir, ws.rounds_dir) == before

    cli = runner.invoke(app, ["status", "-w", str(ws.root)])
    assert cli.exit_code == 0 and "annotations 3" in cli.output


@pytest.mark.slow
def test_files_are_pre_filled_only_from_prefill_min_annotations_on(tmp_path):
    """Round 1's interpreter has seen 1 image (< 3): its files are empty and say why; round 2's (3 images) are
    pre-filled."""
    ws = make_workspace(tmp_path / "faces", settings={"run.prefill_min_annotations": 3})
    oracle_annotate(ws, 0)
    cli = runner.invoke(app, ["next-round", "-w", str(ws.root)])
    assert cli.exit_code == 0, cli.output
    folder = ws.round_dir(1)
    selection = json.loads((folder / "selection.json").read_text())
    why = selection["prefill"]["why"]
    assert selection["prefill"]["used"] is False and "fewer than [run] prefill_min_annotations = 3" in why
    assert f"files {why}" in cli.output  # the CLI says it too
    for item in selection["items"]:
        assert item["prefilled_shapes"] == 0
        assert read_labelme(folder / "annotate" / item["json"], ws.config.classes).shapes == []
    readme = (folder / "README.txt").read_text()
    assert "The JSON files are empty: draw every part." in readme and "pre-filled with the current" not in readme
    oracle_annotate(ws, 1, keep=2)
    second = next_round(Workspace.find(ws.root))
    assert second.n_annotations == 3 and second.prefill_note.startswith("pre-filled")
    assert all(item["prefilled_shapes"] > 0 for item in second.chosen)
    assert "pre-filled with the current prediction" in (second.folder / "README.txt").read_text()


def test_status_of_a_workspace_without_rounds_says_what_to_run(round1, tmp_path):
    """A fresh clone of this repository has annotations but no rounds/ (git-ignored): the next step is a round."""
    ws = copy_of(round1, tmp_path)
    shutil.rmtree(ws.rounds_dir)
    status = workspace_status(ws)
    assert status.rounds == [] and "`dgan-al next-round`" in status.next_step and "1 annotation" in status.next_step
    shutil.rmtree(ws.annotations_dir)
    assert "`dgan-al init DIR`" in workspace_status(Workspace.find(ws.root)).next_step


def test_edit_in_place_is_reimported_with_history_and_remove_moves_aside(round1, tmp_path):
    ws = copy_of(round1, tmp_path)
    store = AnnotationStore(ws.annotations_dir)
    path = store.json_path("mean")
    data = json.loads(path.read_text())
    data["shapes"] = [s for s in data["shapes"] if s["label"] != "hair"]
    path.write_text(json.dumps(data))
    result = next_round(ws)
    assert result.imports.reimported == ["mean"]
    store = AnnotationStore(ws.annotations_dir)
    assert store.records["mean"].version == 2
    assert (ws.annotations_dir / "history" / "mean" / "v1.json").is_file()
    assert "hair" not in store.records["mean"].class_pixels

    edited = path.read_bytes()
    cli = runner.invoke(app, ["remove", "mean", "-w", str(ws.root)])
    assert cli.exit_code == 0, cli.output
    store = AnnotationStore(ws.annotations_dir)
    assert "mean" not in store.records and "mean" in store.removed and not path.exists()
    moved = [p for p in (ws.annotations_dir / "removed" / "mean").rglob("*.json") if p.name == path.name]
    assert len(moved) == 1 and moved[0].read_bytes() == edited  # moved aside byte for byte, not deleted
    assert runner.invoke(app, ["remove", "nope", "-w", str(ws.root)]).exit_code == 2


def _done(path: Path) -> dict:
    data = json.loads(path.read_text())
    data["flags"]["done"] = True
    return data


def _bad_malformed(folder, first, second):
    first.write_text(first.read_text()[:-40])


def _bad_unknown_label(folder, first, second):
    data = _done(first)
    data["shapes"][0]["label"] = "eyes"
    first.write_text(json.dumps(data))


def _bad_size(folder, first, second):
    data = _done(first)
    data["imageHeight"] = 100
    first.write_text(json.dumps(data))


def _bad_path_escape(folder, first, second):
    data = _done(first)
    data["imagePath"] = "../../../outside.png"
    first.write_text(json.dumps(data))


def _bad_never_exported(folder, first, second):
    data = _done(first)
    (folder / "s9-999999.json").write_text(json.dumps(data))


def _bad_checksum(folder, first, second):
    first.write_text(json.dumps(_done(first)))
    png = first.with_suffix(".png")
    pixels = np.array(Image.open(png))
    pixels[0, 0] = 255 - pixels[0, 0]
    Image.fromarray(pixels).save(png)


@pytest.mark.parametrize("corrupt,message", [
    (_bad_malformed, "not valid JSON"),
    (_bad_unknown_label, "eyes"),
    (_bad_size, "100x128"),
    (_bad_path_escape, "outside"),
    (_bad_never_exported, "s9-999999"),
    (_bad_checksum, "sha256"),
])
def test_bad_annotation_files_import_nothing_and_change_nothing(round1, tmp_path, corrupt, message):
    ws = copy_of(round1, tmp_path)
    folder = ws.round_dir(1)
    items = json.loads((folder / "selection.json").read_text())["items"]
    oracle_annotate(ws, 1)  # every image done: a valid file beside the broken one must not be imported either
    annotate = ws.round_files(1).annotate
    first, second = annotate / items[0]["json"], annotate / items[1]["json"]
    corrupt(annotate, first, second)
    before = snapshot(ws.annotations_dir, folder)
    cli = runner.invoke(app, ["next-round", "-w", str(ws.root)])
    assert cli.exit_code == 2, cli.output
    assert message in cli.output and "nothing was imported" in cli.output
    assert "Traceback" not in cli.output
    assert snapshot(ws.annotations_dir, folder) == before
    assert ws.latest_round() == 1


def test_concurrent_next_round_is_refused(round1, tmp_path):
    ws = copy_of(round1, tmp_path)
    before = snapshot(ws.annotations_dir, ws.rounds_dir)
    with WorkspaceLock(ws.root, "next-round"):
        cli = runner.invoke(app, ["next-round", "-w", str(ws.root)])
    assert cli.exit_code == 2 and "busy" in cli.output and str(os.getpid()) in cli.output
    assert snapshot(ws.annotations_dir, ws.rounds_dir) == before


def test_init_refuses_an_existing_workspace(round1):
    cli = runner.invoke(app, ["init", str(round1)])
    assert cli.exit_code == 2 and "already exists" in cli.output


@pytest.mark.slow
def test_kill_9_during_scoring_resumes_with_the_same_selection(tmp_path):
    root = tmp_path / "killed"
    ws = make_workspace(root, pool_size=64, settings={"run.chunk": 8, "run.batch": 4})
    n_chunks = 8
    oracle_annotate(ws, 0)
    twin = tmp_path / "twin"
    shutil.copytree(root, twin)

    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "dgan_al", "next-round", "-w", str(root)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    scores = root / "rounds" / "round_001" / "scores"
    deadline = time.time() + 240
    while time.time() < deadline and len(list(scores.glob("chunk_*.npz"))) < 3 and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    present = len(list(scores.glob("chunk_*.npz")))
    assert 1 <= present < n_chunks, "the kill must land during scoring"

    resumed = next_round(Workspace.find(root))
    assert resumed.round == 1 and resumed.interpreter_reused
    assert resumed.chunks_reused == present and resumed.chunks_computed == n_chunks - present  # one chunk lost at most
    # the same run uninterrupted, in the same kind of process (thread count changes float rounding)
    subprocess.run([sys.executable, "-m", "dgan_al", "next-round", "-w", str(twin)], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    a = json.loads((root / "rounds" / "round_001" / "selection.json").read_text())
    b = json.loads((twin / "rounds" / "round_001" / "selection.json").read_text())
    assert [i["id"] for i in a["items"]] == [i["id"] for i in b["items"]]
    assert [i["score"] for i in a["items"]] == pytest.approx([i["score"] for i in b["items"]], rel=1e-6)
    assert [i["coreset_distance"] for i in a["items"]] == pytest.approx([i["coreset_distance"] for i in b["items"]], rel=1e-6)


def test_a_used_latent_is_never_offered_again_under_its_pool_id(round1, tmp_path):
    """The first image (id "mean") is the sample nearest the average w: with pool seed 0 it is also a pool
    latent (toy-faces: s0-000957). Whatever its id, an annotated or exported latent is excluded."""
    import torch

    from dgan_al.workflows.next_round import _already_used, pool_rows_of
    from dgan_al.workflows.pool import workspace_pool
    from dgan_al.workspace.layout import latent_id

    ws = copy_of(round1, tmp_path)
    store = AnnotationStore(ws.annotations_dir)
    generator = ws.load_generator()
    pool = workspace_pool(ws, generator)
    pool.keys = pool.keys.clone()
    assert "mean" in store.records and pool_rows_of(pool.keys, [generator.mean_latent()]) == []
    pool.keys[5] = generator.mean_latent()  # as in a pool of seed 0 with 958 latents or more
    exported = json.loads((ws.round_dir(1) / "selection.json").read_text())["items"]
    used = _already_used(ws, store, 2, pool)
    assert latent_id(ws.config.pool.seed, 5) in used  # the annotated first image, under its pool id
    assert {item["id"] for item in exported} <= used  # round 001's exports, by id
    others = [i for i in range(len(pool)) if latent_id(ws.config.pool.seed, i) not in used]
    assert others and all(not torch.equal(pool.keys[i], generator.mean_latent()) for i in others)
    assert pool_rows_of(pool.keys, [[0.0] * 3]) == []  # another length: not a z of this pool
