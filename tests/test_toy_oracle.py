"""`dgan-al toy oracle`: labels the visible truth through the LabelMe files and counts its clicks."""

import json

import numpy as np
from typer.testing import CliRunner

from dgan_al.cli import app
from dgan_al.generators.toy_faces import load_toy_faces
from dgan_al.labelme import read_labelme, write_labelme
from dgan_al.labelme.clicks import scratch_clicks, trace
from dgan_al.workflows.init import init_workspace
from workspaces import after_first_round

runner = CliRunner()


def test_oracle_counts_clicks_from_scratch_and_with_a_prefill(tmp_path):
    ws = init_workspace(tmp_path / "ws", "toy-faces", pool_size=20).workspace
    folder = ws.round_dir(0)
    path = ws.round_files(0).annotate / "mean.json"
    gen = load_toy_faces()
    z = gen.mean_latent()[None]
    truth = gen.oracle_mask(z)[0]
    classes = ws.config.classes
    result = runner.invoke(app, ["toy", "oracle", "0", "--workspace", str(ws.root)])
    assert result.exit_code == 0, result.output
    record = json.loads((folder / "clicks.json").read_text())
    expected = scratch_clicks(truth, classes)
    item = record["items"]["mean"]
    assert item["scratch"] == item["prefill"] == item["edit"] == expected  # no pre-fill
    assert item["edits"] == {"deleted": 0, "moved": 0, "inserted": 0, "drawn": expected}
    assert record["total"] == {"scratch": expected, "prefill": expected, "edit": expected}
    assert "total" in result.output and str(expected) in result.output
    annotation = read_labelme(path, classes)
    assert annotation.flags["done"] and len(annotation.shapes) == len(trace(truth, classes))
    # a file pre-filled with exactly the annotator's polygons costs no click
    raw = json.loads(path.read_text())
    write_labelme(path, None, trace(truth, classes), extra={"dgan_al": raw["dgan_al"]})
    (folder / "clicks.json").unlink()
    result = runner.invoke(app, ["toy", "oracle", "0", "--workspace", str(ws.root)])
    assert result.exit_code == 0, result.output
    record = json.loads((folder / "clicks.json").read_text())
    assert record["items"]["mean"]["prefill"] == 0 == record["items"]["mean"]["edit"]
    assert record["items"]["mean"]["scratch"] == expected


def test_oracle_truth_option(tmp_path):
    ws = init_workspace(tmp_path / "ws", "toy-faces", pool_size=20).workspace
    bad = runner.invoke(app, ["toy", "oracle", "0", "--workspace", str(ws.root), "--truth", "painted"])
    assert bad.exit_code == 2 and "--truth" in bad.output
    good = runner.invoke(app, ["toy", "oracle", "0", "--workspace", str(ws.root), "--truth", "renderer"])
    assert good.exit_code == 0, good.output
    record = json.loads((ws.round_dir(0) / "clicks.json").read_text())
    assert record["items"]["mean"]["truth"] == "renderer"
    gen = load_toy_faces()
    renderer = gen.oracle_mask(gen.mean_latent()[None], truth="renderer")[0]
    assert record["items"]["mean"]["scratch"] == scratch_clicks(renderer, ws.config.classes)


def test_oracle_annotates_as_many_as_the_round_asks_without_keep(tmp_path):
    ws = after_first_round(tmp_path / "ws", pool_size=40)  # round 001: 4 exported, [selection] annotate = 2
    readme = (ws.round_dir(1) / "README.txt").read_text()
    assert "Of these 4 images, annotate the 2 that look most realistic." in readme
    annotate = ws.round_files(1).annotate
    files = sorted(p for p in annotate.glob("*.json"))
    assert len(files) == 4
    # a person already finished one file: the oracle annotates one more, skips the other two
    raw = json.loads(files[0].read_text())
    raw["flags"] = {"done": True, "unrealistic": False}
    files[0].write_text(json.dumps(raw))
    result = runner.invoke(app, ["toy", "oracle", "1", "--workspace", str(ws.root)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    flags = {p.stem: json.loads(p.read_text())["flags"] for p in files}
    assert sum(f["done"] for f in flags.values()) == 2 and sum(f["unrealistic"] for f in flags.values()) == 2
    assert flags[files[0].stem]["done"]
    assert ("annotated 1, ticked 'unrealistic' on 2: round_001 asks for the 2 most realistic of its 4 images "
            "(README.txt); 1 already done") in result.output
    # --keep still overrides it
    for p in files:
        raw = json.loads(p.read_text())
        raw["flags"] = {"done": False, "unrealistic": False}
        p.write_text(json.dumps(raw))
    result = runner.invoke(app, ["toy", "oracle", "1", "--keep", "4", "--workspace", str(ws.root)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert all(json.loads(p.read_text())["flags"]["done"] for p in files)
    assert "annotated 4, ticked 'unrealistic' on 0 (--keep 4" in result.output
