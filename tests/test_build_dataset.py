"""build-dataset on a small toy-faces workspace: outputs, the filter, resumption, shards and merge, bad input."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dgan_al.cli import app
from dgan_al.errors import UserError
from dgan_al.generators.protocol import sample_latents
from dgan_al.workflows.build_dataset import build_dataset, dataset_latents, merge_dataset
from dgan_al.workflows.importing import import_annotations
from dgan_al.workflows.oracle import oracle_annotate
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.layout import Workspace
from workspaces import after_first_round, snapshot

runner = CliRunner()
SIZE, CHUNK = 21, 6  # 4 chunks, the last one short


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A workspace whose round 001 interpreter was trained on its one annotation (the mean image)."""
    root = tmp_path_factory.mktemp("ws") / "faces"
    after_first_round(root, pool_size=40)
    return root


@pytest.fixture(scope="module")
def reference(workspace, tmp_path_factory) -> Path:
    """One uninterrupted, unsharded build: what every other way of building must reproduce."""
    out = tmp_path_factory.mktemp("data") / "ref"
    result = build_dataset(Workspace.find(workspace), out, SIZE, filter_fraction=0.2, chunk=CHUNK)
    assert result.chunks_computed == 4 and result.merge is not None and result.messages == []
    return out


def manifest(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_layout_and_contents(workspace, reference):
    ws = Workspace.find(workspace)
    rows = manifest(reference)
    assert [r["id"] for r in rows] == [f"d1-{i:07d}" for i in range(SIZE)]
    assert (reference / "labels.txt").read_text().splitlines() == ws.config.classes
    settings = json.loads((reference / "dataset.json").read_text())
    assert settings["size"] == SIZE and settings["merged"]["kept"] == sum(r["kept"] == "1" for r in rows)
    generator = ws.load_generator()
    z = dataset_latents(generator.z_dim, 1, 0, 3)
    synthesis = generator.synthesize(z)
    for j, row in enumerate(rows[:3]):
        image = np.asarray(Image.open(reference / row["image"]))
        # the PNG is the generator's image, losslessly (up to 1 level where another batch size rounds differently)
        diff = np.abs(image.astype(int) - synthesis.images[j].numpy().astype(int))
        assert diff.max() <= 1 and (diff == 0).mean() > 0.99
        mask = Image.open(reference / row["mask"])
        assert mask.mode == "P" and mask.size == image.shape[1::-1]
        assert np.asarray(mask).max() < len(ws.config.classes)
    assert Image.open(reference / "contact_sheet.png").size[0] > 4 * 128


def test_dataset_latents_are_not_pool_latents():
    pool = sample_latents(32, 200, seed=1)
    data = dataset_latents(32, 1, 0, 200)
    assert not any(np.allclose(d, p) for d in data.numpy() for p in pool.numpy())
    assert np.array_equal(dataset_latents(32, 1, 5, 3), data[5:8])  # a larger --size extends a smaller one


def test_filter_drops_exactly_the_most_uncertain_fraction(reference):
    rows = manifest(reference)
    scores = np.array([float(r["score"]) for r in rows])
    kept = np.array([r["kept"] == "1" for r in rows])
    n_drop = round(0.2 * SIZE)
    assert (~kept).sum() == n_drop
    assert scores[~kept].min() >= scores[kept].max()
    assert sorted(int(r["rank"]) for r in rows) == list(range(1, SIZE + 1))
    train = (reference / "train.txt").read_text().split()
    assert train == [r["id"] for r in rows if r["kept"] == "1"]
    # the scores are the ones the chunks recorded
    parts = [row for p in sorted((reference / "parts").glob("chunk_*.json")) for row in json.loads(p.read_text())["rows"]]
    assert [row["score_sum"] for row in parts] == scores.tolist()
    # re-merging with another filter re-applies it over every score
    merged = merge_dataset(reference, 0.5)
    assert merged.rejected == round(0.5 * SIZE) and len((reference / "train.txt").read_text().split()) == merged.kept
    merge_dataset(reference, 0.2)
    assert manifest(reference) == rows


def test_interrupted_build_resumes_to_identical_files(workspace, reference, tmp_path):
    out = tmp_path / "data"
    seen = []

    def stop_after_two_batches(task, done, total):
        if task == "generating samples" and done > 0:
            seen.append(done)
            if len(seen) == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_dataset(Workspace.find(workspace), out, SIZE, filter_fraction=0.2, chunk=CHUNK,
                      progress=stop_after_two_batches)
    assert not (out / "manifest.csv").exists()
    finished_before = len(list((out / "parts").glob("chunk_*.json")))
    assert finished_before < 4
    result = build_dataset(Workspace.find(workspace), out, SIZE, filter_fraction=0.2, chunk=CHUNK)
    assert result.chunks_reused == finished_before and result.chunks_computed == 4 - finished_before
    assert _relative(snapshot(out), out) == _relative(snapshot(reference), reference)


def test_shards_are_disjoint_complete_and_merge_to_the_unsharded_result(workspace, reference, tmp_path):
    ws = Workspace.find(workspace)
    a, b = tmp_path / "a", tmp_path / "b"  # two machines, two folders
    first = build_dataset(ws, a, SIZE, filter_fraction=0.2, chunk=CHUNK, shard=(0, 2))
    second = build_dataset(ws, b, SIZE, filter_fraction=0.2, chunk=CHUNK, shard=(1, 2))
    assert first.merge is None and second.merge is None  # neither holds every chunk
    chunks_a = {p.name for p in (a / "parts").iterdir()}
    chunks_b = {p.name for p in (b / "parts").iterdir()}
    assert not chunks_a & chunks_b and len(chunks_a | chunks_b) == 4
    with pytest.raises(UserError, match="2 of 4 chunks are not finished"):
        merge_dataset(a, 0.2)
    for sub in ("images", "masks", "parts"):
        shutil.copytree(b / sub, a / sub, dirs_exist_ok=True)
    merge_dataset(a, 0.2)
    assert _relative(snapshot(a), a) == _relative(snapshot(reference), reference)
    # shards in one shared folder: the last one to finish merges by itself
    shared = tmp_path / "shared"
    for i in range(3):
        result = build_dataset(ws, shared, SIZE, filter_fraction=0.2, chunk=CHUNK, shard=(i, 3))
    assert result.merge is not None
    assert _relative(snapshot(shared), shared) == _relative(snapshot(reference), reference)


def test_trains_an_interpreter_when_no_round_matches_the_annotations(workspace, tmp_path):
    root = tmp_path / "faces"
    shutil.copytree(workspace, root)
    ws = Workspace.find(root)
    oracle_annotate(ws, 1, keep=1)
    early = build_dataset(ws, tmp_path / "early", 2, chunk=CHUNK)  # the finished file is not imported yet
    assert any("1 finished annotation file(s)" in m and "not imported" in m for m in early.messages)
    assert not early.trained  # round 001's interpreter still matches the imported set
    store = AnnotationStore(ws.annotations_dir)
    import_annotations(ws, store)
    assert len(store.records) == 2
    result = build_dataset(ws, tmp_path / "data", 4, chunk=CHUNK)
    assert result.trained and "trained now on all 2 annotations" in result.interpreter_source
    again = build_dataset(Workspace.find(root), tmp_path / "data", 4, chunk=CHUNK)
    assert not again.trained and again.chunks_reused == 1 and again.messages == []
    changed = AnnotationStore(ws.annotations_dir)
    changed.remove([i for i in changed.ids() if i != "mean"][0])  # `dgan-al remove`: the set changes
    pinned = build_dataset(Workspace.find(root), tmp_path / "data", 4, chunk=CHUNK)
    assert not pinned.trained and any("annotations changed" in m for m in pinned.messages)


def test_bad_invocations_exit_2_and_touch_nothing(workspace, reference, tmp_path):
    before = snapshot(reference)
    for args, named in ((["--out", str(reference), "--size", str(SIZE), "--seed", "2"], "another seed"),
                        (["--out", str(reference), "--size", "5"], "--size: "),  # shrink
                        (["--out", str(reference), "--size", str(SIZE), "--shard", "2/2"], "--shard: "),
                        (["--out", str(reference), "--size", str(SIZE), "--filter", "1.5"], "--filter: "),
                        (["--out", str(workspace / "annotations" / "data"), "--size", "4"], "--out: ")):
        result = runner.invoke(app, ["build-dataset", "-w", str(workspace), "--chunk", str(CHUNK), "--filter", "0.2", *args])
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output and named in " ".join(result.output.split()), result.output
    assert snapshot(reference) == before
    assert not (workspace / "annotations" / "data").exists()
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"not ours")
    result = runner.invoke(app, ["build-dataset", "-w", str(workspace), "--out", str(foreign), "--size", "4"])
    assert result.exit_code == 2 and "not a dgan-al dataset" in result.output
    assert [p.name for p in foreign.iterdir()] == ["holiday.jpg"]
    result = runner.invoke(app, ["build-dataset", "--merge", str(foreign)])
    assert result.exit_code == 2 and "no dataset.json" in result.output


def _relative(files: dict[str, bytes], root: Path) -> dict[str, bytes]:
    return {str(Path(k).relative_to(root)): v for k, v in files.items()}
