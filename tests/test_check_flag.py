"""The shape flag ``check`` (CHECK_FLAG): the pre-fill ticks it on exactly the polygons its members disagree on,
the real LabelMe keeps it when it saves (the label dialog shows it ticked), and an import ignores it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dgan_al.labelme import find_labelme, labelme_command, rasterize, read_labelme, write_labelme
from dgan_al.labelme.format import CHECK_FLAG
from dgan_al.labelme.rasterize import shape_mask
from dgan_al.labelme.format import shape_from_mapping
from dgan_al.workflows.export import CHECK_JS_RATIO, ExportItem, export_round, prefill_shapes
from dgan_al.workflows.importing import import_annotations
from dgan_al.workflows.oracle import oracle_annotate
from dgan_al.workflows.status import round_files_status
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.layout import Workspace, latent_id
from dgan_al.workspace.rounds import STATE_FILE

sys.path.insert(0, str(Path(__file__).parent))
from workspaces import make_workspace  # noqa: E402

CLASSES = ["background", "skin", "eye", "mouth"]

# In LabelMe's Python (6.x PyQt5 or 7.x PySide6), LabelMe's own main() with our argv. Once the image is up:
# report each shape's flags as LabelMe holds them, open the label dialog of the first shape flagged "check"
# (as a double click does), report its check boxes and press OK, tick "done" (autosaves) and quit.
FLAG_GUI = r"""
import json, os, sys, traceback
try:
    from PySide6 import QtCore, QtWidgets
except ImportError:
    from PyQt5 import QtCore, QtWidgets
import labelme.__main__ as entry

CHECKED = QtCore.Qt.CheckState.Checked


class Inspected(entry.MainWindow):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._report, self._waits = {}, 0
        QtCore.QTimer.singleShot(300, self.inspect)

    def inspect(self):
        report = self._report
        try:
            canvas = self._canvas_widgets.canvas
            report["image"] = os.path.basename(self._image_path or "")
            report["shapes"] = [{"label": s.label, "flags": dict(s.flags or {})} for s in canvas.shapes]
            flagged = [s for s in canvas.shapes if (s.flags or {}).get("check")]
            if flagged:
                labels = self._docks.label_list
                labels.select_item(item=labels.find_item_by_shape(shape=flagged[0]))
                QtCore.QTimer.singleShot(300, self.in_dialog)
                self._edit_label()  # modal until in_dialog presses OK
            flags = self._docks.flag_list
            for i in range(flags.count()):
                if flags.item(i).text() == "done":
                    flags.item(i).setCheckState(CHECKED)  # autosaves
        except Exception:
            report["error"] = traceback.format_exc()
        QtCore.QTimer.singleShot(100, self.finish)

    def in_dialog(self):
        dialog = self._label_dialog
        try:
            self._report["dialog"] = {"visible": dialog.isVisible(), "label": dialog.edit.text(),
                                      "boxes": {b.text(): b.isChecked() for b in dialog.findChildren(QtWidgets.QCheckBox)
                                                if b.isVisible()}}
            ok = dialog.findChild(QtWidgets.QDialogButtonBox).button(QtWidgets.QDialogButtonBox.StandardButton.Ok)
            ok.click()
        except Exception:
            self._report["error"] = traceback.format_exc()
            dialog.reject()

    def finish(self):
        self._waits += 1
        writer = getattr(self, "_save_writer", None)  # 7.x saves in a thread
        if writer is not None and writer.is_busy and self._waits < 100:
            QtCore.QTimer.singleShot(100, self.finish)
            return
        with open(os.environ["GUI_REPORT"], "w") as f:
            json.dump(self._report, f)
        os._exit(0)


entry.MainWindow = Inspected
sys.argv = ["labelme", *sys.argv[1:]]
entry.main()
"""


# ---------------------------------------------------------------------------------------------------
# what the pre-fill flags


def two_regions() -> np.ndarray:
    mask = np.zeros((100, 120), np.uint8)  # wide background: the regions' JS can be many times the mean
    mask[5:31, 5:26] = 1  # skin
    mask[10:26, 35:56] = 2  # eye
    return mask


def js_on(region: np.ndarray, ratio: float) -> np.ndarray:
    """JS 0.01 outside ``region`` and, inside it, ``ratio`` times the image's mean JS."""
    share = region.mean()
    high = ratio * 0.01 * (1 - share) / (1 - ratio * share)  # solves high = ratio * mean(js)
    js = np.full(region.shape, 0.01, np.float32)
    js[region] = high
    np.testing.assert_allclose(js[region].mean() / js.mean(), ratio, rtol=1e-5)
    return js


def test_prefill_flags_exactly_the_polygon_its_members_disagree_on():
    mask = two_regions()
    plain = prefill_shapes(mask, CLASSES)
    assert sorted(s["label"] for s in plain) == ["eye", "skin"]
    assert not any(s["flags"] for s in plain)  # no JS: nothing flagged

    flagged = prefill_shapes(mask, CLASSES, js_on(mask == 2, 1.2 * CHECK_JS_RATIO))
    assert [s["points"] for s in flagged] == [s["points"] for s in plain]  # the flag changes no polygon
    assert {s["label"]: s["flags"] for s in flagged} == {"skin": {}, "eye": {CHECK_FLAG: True}}
    for shape in flagged:  # the polygon's own pixels are the region's
        own = shape_mask(shape_from_mapping(shape), *mask.shape)
        np.testing.assert_array_equal(own, mask == CLASSES.index(shape["label"]))

    # the threshold is CHECK_JS_RATIO times the image's mean JS
    assert not any(s["flags"] for s in prefill_shapes(mask, CLASSES, js_on(mask == 2, 0.8 * CHECK_JS_RATIO)))
    both = prefill_shapes(mask, CLASSES, js_on(mask > 0, 1.2 * CHECK_JS_RATIO))
    assert {s["label"]: s["flags"] for s in both} == {"skin": {CHECK_FLAG: True}, "eye": {CHECK_FLAG: True}}


# ---------------------------------------------------------------------------------------------------
# a round annotated for real, then flagged


@pytest.fixture(scope="module")
def annotated(tmp_path_factory) -> Path:
    """A toy-faces workspace whose round 001 (two images, exported as next-round does) the oracle finished."""
    root = tmp_path_factory.mktemp("check") / "ws"
    ws = make_workspace(root, pool_size=8)
    generator = ws.load_generator()
    pool = ws.pool_latents(generator.z_dim)
    items = [ExportItem(id=latent_id(0, i), z=pool[i], latent={"seed": 0, "index": i}) for i in range(2)]
    export_round(ws.round_dir(1), 1, generator, items, ws.config.classes)
    (ws.round_dir(1) / STATE_FILE).write_text(json.dumps({"round": 1, "stage": "complete"}))
    oracle_annotate(ws, 1)
    return root


def copy_of(annotated: Path, tmp_path: Path) -> Workspace:
    shutil.copytree(annotated, tmp_path / "ws")
    return Workspace.find(tmp_path / "ws")


def prefill_with_one_flag(ws: Workspace) -> tuple[Path, np.ndarray, list[bool]]:
    """Rewrite round 001's first file as the export pre-fills it, from its finished mask and a JS map high on
    its smallest single-polygon class only, not ticked done yet: (the JSON, the mask it paints, each shape's check flag)."""
    classes = ws.config.classes
    path = sorted(ws.round_files(1).annotate.glob("*.json"))[0]
    finished = read_labelme(path, classes)
    mask = rasterize(finished, finished.height, finished.width, classes)
    plain = prefill_shapes(mask, classes)
    once = [s["label"] for s in plain if s["label"] in classes and [t["label"] for t in plain].count(s["label"]) == 1]
    # the smallest class drawn as one polygon: its JS can be many times the image's mean
    label = min(once, key=lambda name: int(np.sum(mask == classes.index(name))))
    js = js_on(mask == classes.index(label), 1.2 * CHECK_JS_RATIO)
    shapes = prefill_shapes(mask, classes, js)
    write_labelme(path, None, shapes, extra=finished.extra)
    checks = [bool(s["flags"].get(CHECK_FLAG)) for s in shapes]
    assert [s["label"] for s, c in zip(shapes, checks) if c] == [label]  # one flagged polygon
    return path, rasterize(read_labelme(path, classes), *mask.shape, classes), checks


def test_a_leftover_check_flag_never_blocks_an_import(annotated, tmp_path):
    plain = copy_of(annotated, tmp_path / "plain")
    flagged = copy_of(annotated, tmp_path / "flagged")
    paths = sorted(flagged.round_files(1).annotate.glob("*.json"))
    for path in paths:  # finished files whose shapes still carry the flag, ticked and not
        data = json.loads(path.read_text())
        assert data["flags"]["done"] and len(data["shapes"]) >= 2
        data["shapes"][0]["flags"] = {CHECK_FLAG: True}
        data["shapes"][1]["flags"] = {CHECK_FLAG: False}
        path.write_text(json.dumps(data))
    states = {f.id: f.state for f in round_files_status(flagged.round_dir(1), flagged,
                                                         AnnotationStore(flagged.annotations_dir))}
    assert states == {p.stem: "done" for p in paths}

    ours, theirs = AnnotationStore(flagged.annotations_dir), AnnotationStore(plain.annotations_dir)
    report, reference = import_annotations(flagged, ours), import_annotations(plain, theirs)
    assert sorted(report.imported) == sorted(reference.imported) == sorted(p.stem for p in paths)
    ours, theirs = AnnotationStore(flagged.annotations_dir), AnnotationStore(plain.annotations_dir)
    for path in paths:  # the same masks as without the flag
        np.testing.assert_array_equal(ours.mask(path.stem), theirs.mask(path.stem))
        assert ours.records[path.stem].mask_sha256 == theirs.records[path.stem].mask_sha256


def run_flag_gui(python: str, ws: Workspace, image: Path, install, env: dict[str, str], tmp_path: Path) -> dict:
    """Start LabelMe (``python``, as ``install``) as ``dgan-al annotate`` does, at ``image``, under FLAG_GUI."""
    folder = ws.round_files(1).annotate
    argv = labelme_command(folder, folder / "labels.txt", install=install, start=image)
    report_path = tmp_path / "report.json"
    done = subprocess.run([python, "-c", FLAG_GUI, *argv[len(install.argv):]], cwd=folder, capture_output=True,
                          text=True, timeout=180, env={**env, "GUI_REPORT": str(report_path)})  # fmt: skip
    assert report_path.exists(), done.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert "error" not in report, report["error"]
    return report


def check_kept_on_save(ws: Workspace, path: Path, mask: np.ndarray, checks: list[bool], report: dict,
                       version: str) -> None:
    """What LabelMe showed and saved, and that the saved file imports with the mask it was given."""
    assert report["image"] == path.with_suffix(".png").name
    assert [bool(s["flags"].get(CHECK_FLAG)) for s in report["shapes"]] == checks  # as loaded
    flagged = [s["label"] for s, c in zip(report["shapes"], checks) if c]
    assert report["dialog"]["visible"] and [report["dialog"]["label"]] == flagged
    assert report["dialog"]["boxes"] == {CHECK_FLAG: True}  # the label dialog shows the box, ticked

    raw = json.loads(path.read_text())
    assert raw["version"] == version and raw["flags"]["done"]  # LabelMe saved it
    # kept on the flagged shape; every other shape gets the label flag annotate offers, unticked
    assert [shape["flags"] for shape in raw["shapes"]] == [{CHECK_FLAG: flagged} for flagged in checks]
    saved = read_labelme(path, ws.config.classes)
    np.testing.assert_array_equal(rasterize(saved, saved.height, saved.width, ws.config.classes), mask)

    report = import_annotations(ws, AnnotationStore(ws.annotations_dir))
    assert path.stem in report.imported
    np.testing.assert_array_equal(AnnotationStore(ws.annotations_dir).mask(path.stem), mask)


def labelme_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "PYTHON", "QT_"))}
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    (tmp_path / "home").mkdir(exist_ok=True)  # LabelMe writes ~/.labelmerc on first start
    env.update(QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path / "home"), XDG_RUNTIME_DIR=str(runtime))
    return env


@pytest.mark.slow
def test_labelme_keeps_the_check_flag_on_save(annotated, tmp_path):
    labelme = pytest.importorskip("labelme", reason="runs the real LabelMe (pip install labelme)")
    ws = copy_of(annotated, tmp_path)
    path, mask, checks = prefill_with_one_flag(ws)
    install = find_labelme()
    report = run_flag_gui(sys.executable, ws, path.with_suffix(".png"), install, labelme_env(tmp_path), tmp_path)
    check_kept_on_save(ws, path, mask, checks, report, labelme.__version__)
