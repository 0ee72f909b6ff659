"""A round as the annotator meets it: the folder LabelMe opens holds only the files to annotate, a round
in the earlier layout still imports, `status` and `annotate` say what is left, and an import refuses a
file whose embedded image (what LabelMe showed) is not the exported one."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import dgan_al.cli.annotate  # noqa: F401  (registers the command on the app)
from dgan_al.cli import app
from dgan_al.errors import UserError
from dgan_al.labelme import find_labelme, labelme_command, read_labelme
from dgan_al.labelme.launch import shell_command
from dgan_al.workflows.export import ExportItem, export_round
from dgan_al.workflows.importing import import_annotations
from dgan_al.workspace.rounds import STATE_FILE
from dgan_al.workflows.oracle import oracle_annotate
from dgan_al.workflows.status import round_files_status, workspace_status
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.layout import Workspace, latent_id

from workspaces import make_workspace, snapshot

runner = CliRunner()


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """init (round 000: the mean image), then round 001 exported with four pool latents, no interpreter."""
    root = tmp_path_factory.mktemp("round") / "ws"
    ws = make_workspace(root, pool_size=8)
    generator = ws.load_generator()
    pool = ws.pool_latents(generator.z_dim)
    items = [ExportItem(id=latent_id(0, i), z=pool[i], latent={"seed": 0, "index": i}) for i in range(4)]
    export_round(ws.round_dir(1), 1, generator, items, ws.config.classes, keep=2)
    (ws.round_dir(1) / STATE_FILE).write_text(json.dumps({"round": 1, "stage": "complete"}))
    return root


def copy_of(exported: Path, tmp_path: Path) -> Workspace:
    shutil.copytree(exported, tmp_path / "ws")
    return Workspace.find(tmp_path / "ws")


def test_the_annotate_folder_holds_only_what_a_person_annotates(exported, tmp_path):
    ws = copy_of(exported, tmp_path)
    files = ws.round_files(1)
    assert files.annotate == ws.round_dir(1) / "annotate"
    assert {p.name for p in ws.round_dir(1).iterdir()} == {"annotate", "selection.json", "contact_sheet.png",
                                                           "README.txt", STATE_FILE}
    ids = [latent_id(0, i) for i in range(4)]
    assert sorted(p.name for p in files.annotate.rglob("*")) == sorted(
        ["labels.txt", *(f"{i}.png" for i in ids), *(f"{i}.json" for i in ids)])
    selection = json.loads(files.selection.read_text())
    assert [item["image"] for item in selection["items"]] == [f"{i}.png" for i in ids]
    # the annotate command opens that folder, with its labels file
    cli = runner.invoke(app, ["annotate", str(ws.round_dir(1)), "--print-command"])
    assert cli.exit_code == 0, cli.output
    argv = cli.output.split()  # cd ROUND/annotate && labelme ...: LabelMe runs there, its paths relative to it
    assert argv[:3] == ["cd", str(files.annotate), "&&"] and argv[argv.index("--labels") + 1] == files.labels.name


def test_a_round_in_the_earlier_layout_imports_and_reports(exported, tmp_path):
    """Before annotate/ existed, a round's images, JSON and labels file lay in the round folder itself."""
    ws = copy_of(exported, tmp_path)
    folder = ws.round_dir(1)
    for path in (folder / "annotate").iterdir():
        path.rename(folder / path.name)
    (folder / "annotate").rmdir()
    assert ws.round_files(1).annotate == folder
    oracle_annotate(ws, 1, keep=2)  # writes where the files are
    assert not (folder / "annotate").exists()
    store = AnnotationStore(ws.annotations_dir)
    report = import_annotations(ws, store)
    assert len(report.imported) == 2 and len(report.skipped) == 2
    assert all(store.records[i].source.startswith("rounds/round_001/s0-") for i in report.imported)
    states = {f.id: f.state for f in round_files_status(folder, ws, AnnotationStore(ws.annotations_dir))}
    assert sorted(states.values()) == ["done", "done", "unrealistic", "unrealistic"]


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _tick_done(data: dict) -> None:
    data["flags"]["done"] = True


def test_status_lists_each_file_and_annotate_opens_the_first_unfinished(exported, tmp_path, monkeypatch):
    ws = copy_of(exported, tmp_path)
    annotate = ws.round_files(1).annotate
    a, b, c, d = sorted(annotate.glob("*.json"))
    oracle_annotate(ws, 1, keep=4)  # all four drawn and done ...
    _edit(b, lambda data: data["flags"].update(done=False, unrealistic=True))  # ... one skipped instead
    _edit(c, lambda data: data["shapes"][0].update(label="bottle"))  # a typo in a finished file
    shutil.copy(exported / "rounds" / "round_001" / "annotate" / d.name, d)  # back as exported
    _edit(a, lambda data: data["flags"].update(done=False))  # drawn, not finished yet

    status = workspace_status(ws)
    files = {f.id: f for f in status.rounds[1].files}
    assert {f.id: f.state for f in files.values()} == {a.stem: "edited", b.stem: "unrealistic", c.stem: "problem",
                                                       d.stem: "untouched"}
    assert "unknown label 'bottle' (not a class of this workspace)" in files[c.stem].problem
    assert status.rounds[1].pending == 3 and status.rounds[0].files[0].state == "untouched"
    assert "1 file(s) have a problem" in status.next_step and "dgan-al annotate 1" in status.next_step

    cli = runner.invoke(app, ["status", "-w", str(ws.root)])
    assert cli.exit_code == 0, cli.output
    lines = cli.output.splitlines()
    assert f"  edited (1): {a.stem}" in lines and f"  untouched (1): {d.stem}" in lines
    assert f"  unrealistic (1): {b.stem}" in lines
    assert any(line.startswith(f"  problem: {c.name}: shape 0") and "bottle" in line for line in lines)

    # annotate opens LabelMe at the first unfinished image, the others of the round in its list
    monkeypatch.chdir(ws.root)
    cli = runner.invoke(app, ["annotate", "1", "--print-command"])
    assert cli.exit_code == 0, cli.output
    install = find_labelme()
    images = Path("rounds/round_001/annotate")
    assert cli.output.strip() == shell_command(images, labelme_command(images, images / "labels.txt", install=install,
                                                                       start=images / f"{a.stem}.png"))
    assert f"{a.stem}.png" in cli.output.split()  # LabelMe 6 is installed here: it opens the image, lists the folder
    _edit(a, _tick_done)
    cli = runner.invoke(app, ["annotate", "1", "--print-command"])
    assert f"{c.stem}.png" in cli.output  # now the one with the problem comes first


def test_annotate_says_how_many_are_left(exported, tmp_path, monkeypatch):
    """Run for real, with a LabelMe program that only records its arguments."""
    ws = copy_of(exported, tmp_path)
    annotate = ws.round_files(1).annotate
    first = sorted(annotate.glob("*.json"))[0]
    _edit(first, lambda data: data["flags"].update(unrealistic=True))
    recorder = tmp_path / "labelme"
    recorder.write_text("#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/argv.txt\"\n")
    recorder.chmod(0o755)
    import dgan_al.labelme as labelme_api
    from dgan_al.labelme import LabelMeInstall

    monkeypatch.setattr(labelme_api, "find_labelme", lambda: LabelMeInstall((str(recorder),), "7.9.1"))
    monkeypatch.chdir(ws.root)
    cli = runner.invoke(app, ["annotate"])
    assert cli.exit_code == 0, cli.output
    assert "3 of 4 images left" in cli.output
    argv = (tmp_path / "argv.txt").read_text().split()
    assert Path(argv[0]).name == sorted(annotate.glob("*.png"))[1].name


def _embed(path: Path, image: Path) -> None:
    _edit(path, lambda data: data.update(imageData=base64.b64encode(image.read_bytes()).decode()))


def test_an_embedded_image_that_is_not_the_export_is_refused(exported, tmp_path):
    ws = copy_of(exported, tmp_path)
    annotate = ws.round_files(1).annotate
    oracle_annotate(ws, 1, keep=4)
    a, b = sorted(annotate.glob("*.json"))[:2]
    _embed(a, a.with_suffix(".png"))  # its own image embedded (LabelMe's --with-image-data): fine
    _embed(b, a.with_suffix(".png"))  # another exported image: the mask was drawn on the wrong face
    before = snapshot(ws.annotations_dir, ws.rounds_dir)
    with pytest.raises(UserError) as err:
        import_annotations(ws, AnnotationStore(ws.annotations_dir))
    message = str(err.value)
    assert f"{b.name}: its embedded image (imageData) differs from {b.stem}.png in" in message
    assert f"re-open {b.stem}.png from its round folder" in message and a.name not in message
    assert snapshot(ws.annotations_dir, ws.rounds_dir) == before
    # the same pixels, differently encoded, are the same image
    pixels = np.asarray(Image.open(b.with_suffix(".png")))
    Image.fromarray(pixels).save(tmp_path / "again.png", compress_level=0)
    assert (tmp_path / "again.png").read_bytes() != b.with_suffix(".png").read_bytes()
    _embed(b, tmp_path / "again.png")
    report = import_annotations(ws, AnnotationStore(ws.annotations_dir))
    assert sorted(report.imported) == sorted(p.stem for p in annotate.glob("*.json"))
    assert read_labelme(ws.annotations_dir / b.name, ws.config.classes).image_data is not None
