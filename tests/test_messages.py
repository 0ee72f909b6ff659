"""What a refused command says: one short line naming the file, what is wrong and its own fix.

Issue 36: a label of a million characters stalled the import and printed a 2-million-character line; a
damaged ``selection.json`` was called an annotation file with LabelMe's fix; an ``imagePath`` LabelMe
cannot open was accepted; one bad file took three lines. Every case runs the real command on real files.
"""

import json
import os
import time

import pytest
from typer.testing import CliRunner

from dgan_al.cli import app
from dgan_al.errors import UserError
from dgan_al.workflows.features import cached_features, load_maps
from dgan_al.workflows.importing import import_annotations
from dgan_al.workspace.annotations import AnnotationStore
from workspaces import annotated, edit_json, mean_json, snapshot, ws  # noqa: F401 (fixtures)

runner = CliRunner()


def next_round_refused(ws) -> str:
    """Run ``dgan-al next-round`` on ``ws``: it must exit 2 with one line and change nothing; that line."""
    before = snapshot(ws.root)
    result = runner.invoke(app, ["next-round", "-w", str(ws.root)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert snapshot(ws.root) == before
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


# --- item 1: a long label -------------------------------------------------------------------------

def test_a_label_of_a_million_characters_is_refused_at_once_in_one_short_line(ws):
    label = "a" * 1_000_000
    edit_json(mean_json(ws), lambda raw: raw["shapes"][0].update(label=label))
    t0 = time.perf_counter()
    line = next_round_refused(ws)
    seconds = time.perf_counter() - t0
    assert seconds < 2, seconds
    assert len(line) < 300, len(line)
    assert "rounds/round_000/annotate/mean.json" in line and "(1000000 characters)" in line
    assert "unknown label" in line and "LabelMe" in line  # the problem and the fix


def test_a_long_config_key_is_refused_at_once_in_a_short_message(ws):
    config = ws.root / "dgan-al.toml"
    config.write_text(config.read_text().replace("[run]\n", "[run]\n" + "b" * 1_000_000 + " = 1\n"))
    t0 = time.perf_counter()
    line = next_round_refused(ws)
    assert time.perf_counter() - t0 < 2
    assert len(line) < 400 and "dgan-al.toml" in line and "unknown setting 'run.bbbb" in line
    assert "(1000004 characters)" in line  # the key as written: run.<key>


# --- item 2: the loop's own records say what they are and their own fix ----------------------------

def test_a_damaged_selection_is_named_as_the_loops_record_with_its_own_fix(ws):
    (ws.round_dir(0) / "selection.json").write_text('{"items": [')
    line = next_round_refused(ws)
    assert line.startswith("error: rounds/round_000/selection.json: damaged (not valid JSON")
    assert "dgan-al's record of what round 000 exported, not an annotation file" in line
    assert "restore it from a backup" in line and "move the folder round_000 out of rounds/" in line
    assert "do not delete selection.json alone" in line
    assert "LabelMe" not in line and "annotate opens" not in line and "annotation file has" not in line


def test_a_damaged_state_is_named_as_the_loops_record_with_its_own_fix(ws):
    (ws.round_dir(0) / "state.json").write_bytes(b'{"round": 0, "stage": "compl')
    line = next_round_refused(ws)
    assert line.startswith("error: ") and "rounds/round_000/state.json: damaged (not valid JSON" in line
    assert "dgan-al's record of how far round_000 got, not an annotation file" in line
    assert "restore it from a backup" in line and "do not delete state.json alone" in line
    assert "LabelMe" not in line


@pytest.mark.parametrize("content, why", [
    (b"{\"annotations\": {", "not valid JSON"),
    (b"\xff\xfe", "not UTF-8 text"),
    (b"{\"annotations\": {\"mean\": {\"id\": \"mean\"}}}", "not the index dgan-al writes"),
    (b"[1, 2]", "not the index dgan-al writes"),
])
def test_a_damaged_annotation_index_is_named_as_the_loops_record_with_its_own_fix(ws, content, why):
    import_annotations(ws, AnnotationStore(ws.annotations_dir))  # the index exists
    (ws.annotations_dir / "index.json").write_bytes(content)
    line = next_round_refused(ws)
    assert f"index.json: damaged ({why}" in line
    assert "dgan-al's record of the imported annotations, not an annotation file" in line
    assert "git checkout annotations/index.json" in line and "do not delete it" in line
    assert "LabelMe" not in line


def test_a_cache_file_damaged_after_its_check_is_called_derived_and_safe_to_delete(ws):
    generator = ws.load_generator()
    (path,) = cached_features(generator, ws.cache_dir, ["a"], generator.sample_latents(1, seed=3))
    assert isinstance(load_maps(path), list)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserError) as err:
        load_maps(path)
    text = str(err.value)
    assert str(path) in text and "derived data" in text and "delete it" in text and "computed again" in text


def test_a_mask_that_cannot_be_rebuilt_names_the_mask_and_the_file_to_fix(ws):
    import_annotations(ws, AnnotationStore(ws.annotations_dir))
    (ws.annotations_dir / "masks" / "mean.png").write_bytes(b"garbage")
    (ws.annotations_dir / "mean.png").write_bytes(b"not an image either")  # the JSON can no longer be read
    line = next_round_refused(ws)
    assert "annotations/masks/mean.png: this mask (derived data) is damaged and cannot be rebuilt from mean.json" in line
    assert "restore mean.json and mean.png from rounds/round_000/annotate/ (where they were imported from)" in line
    assert "dgan-al remove mean" in line


# --- item 4: imagePath as LabelMe and the export write it -------------------------------------------

@pytest.mark.parametrize("image_path, said", [
    ("sub/../mean.png", "goes through '..'"),
    ("sub\\..\\mean.png", "goes through '..'"),
    ("./mean.png", "not the image's plain file name 'mean.png'"),
])
def test_an_image_path_that_is_not_the_plain_file_name_is_refused_with_the_fix(ws, image_path, said):
    edit_json(mean_json(ws), lambda raw: raw.update(imagePath=image_path))
    line = next_round_refused(ws)
    assert "rounds/round_000/annotate/mean.json" in line and said in line and "'mean.png'" in line


def test_the_image_path_labelme_itself_writes_is_accepted(ws):
    """LabelMe's save_labels writes ``os.path.relpath(image, json folder)``, the image being the JSON's
    folder joined with the imagePath it read (tests/test_labelme_gui.py saves through the real GUI)."""
    path = mean_json(ws)
    raw = json.loads(path.read_text())
    assert raw["imagePath"] == "mean.png"  # as exported
    edit_json(path, lambda raw: raw.update(imagePath=os.path.relpath(str(path.parent / raw["imagePath"]),
                                                                     str(path.parent))))
    assert import_annotations(ws, AnnotationStore(ws.annotations_dir)).imported == ["mean"]


# --- item 5: one line for one file, a list for several ---------------------------------------------

def test_one_bad_file_is_one_line_with_its_problem_and_fix(ws):
    edit_json(mean_json(ws), lambda raw: raw["shapes"][0].update(label="skn"))
    line = next_round_refused(ws)
    assert line == ("error: rounds/round_000/annotate/mean.json: shape 0: unknown label 'skn' (closest known "
                    "label: 'skin'); nothing was imported (fix the file in LabelMe or an editor and run again; "
                    "`dgan-al annotate` opens the round)")


def test_one_file_with_several_problems_is_still_one_line(ws):
    edit_json(mean_json(ws), lambda raw: (raw["shapes"][0].update(label="skn"), raw["shapes"][1].update(label="x")))
    line = next_round_refused(ws)
    assert line.startswith("error: rounds/round_000/annotate/mean.json: 2 problems: [1] shape 0: unknown label 'skn'")
    assert "; [2] shape 1: unknown label 'x'" in line and line.endswith("opens the round)")


def test_several_bad_files_are_listed_each_with_its_fix(ws):
    edit_json(mean_json(ws), lambda raw: raw["shapes"][0].update(label="skn"))
    stray = ws.round_files(0).annotate / "s9-999999.json"
    stray.write_text(mean_json(ws).read_text().replace("skn", "skin"))
    before = snapshot(ws.root)
    with pytest.raises(UserError) as err:
        import_annotations(ws, AnnotationStore(ws.annotations_dir))
    assert snapshot(ws.root) == before
    lines = str(err.value).splitlines()
    assert lines[0] == "2 files have problems; nothing was imported:"
    assert lines[1].startswith("  rounds/round_000/annotate/mean.json: shape 0: unknown label 'skn'")
    assert lines[1].endswith("(fix the file in LabelMe or an editor and run again; `dgan-al annotate` opens the round)")
    assert lines[2].startswith("  rounds/round_000/annotate/s9-999999.json: no image 's9-999999' was exported")
    assert lines[2].endswith("move this one out of the round folder)")
    assert lines[3] == " (fix each as said and run again)"
