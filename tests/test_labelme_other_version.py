"""Our files against a LabelMe 7 installed in another Python (LabelMe 7 needs Python >= 3.12, so it
cannot live beside this one): its argparse takes ``dgan-al annotate``'s flags, its GUI (offscreen), run in
the round's folder as annotate runs it, opens our round at the image we name and lists only the exported
images by their bare file names, its loader reads our files, its rasteriser gives our masks, our
reader reads what it saves, and it keeps the shape flag ``check`` the pre-fill ticks.

Runs where ``DGAN_AL_LABELME7_PYTHON`` names that Python, skipped otherwise (docs/labelme.md says how:
``python3.12 -m venv DIR && DIR/bin/pip install labelme==7.9.1``).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dgan_al.labelme import (
    LabelMeInstall,
    labelme_command,
    mask_to_polygons,
    rasterize,
    read_labelme,
    write_labelme,
    write_labels_file,
)

from test_check_flag import annotated, check_kept_on_save, copy_of, labelme_env, prefill_with_one_flag, run_flag_gui  # noqa: F401

PYTHON = os.environ.get("DGAN_AL_LABELME7_PYTHON", "")
pytestmark = pytest.mark.skipif(not (PYTHON and Path(PYTHON).is_file()),
                                reason="set DGAN_AL_LABELME7_PYTHON to a Python with LabelMe 7 installed")

CLASSES = ["background", "skin", "eye", "mouth"]
H, W = 48, 64
BITMAP = np.array([[1, 0, 1], [0, 1, 1]], dtype=bool)
EVERY_SHAPE = [  # every shape type LabelMe rasterises; the linestrip turns, so its joints count
    {"label": "skin", "points": [[2, 2], [60, 3], [56, 44], [4, 45]], "shape_type": "polygon"},
    {"label": "eye", "points": [[5.5, 5.5], [11.25, 9.0]], "shape_type": "rectangle"},
    {"label": "eye", "points": [[40, 14], [43, 17]], "shape_type": "circle"},
    {"label": "mouth", "points": [[8, 30], [30, 31]], "shape_type": "line"},
    {"label": "mouth", "points": [[8, 36], [20, 44], [32, 36], [44, 44]], "shape_type": "linestrip"},
    {"label": "eye", "points": [[50, 30]], "shape_type": "point"},
    {"label": "skin", "points": [[1, 1], [4, 0], [5, 3], [2, 4]], "shape_type": "oriented_rectangle"},
    {"label": "mouth", "points": [[20, 20], [22, 21]], "shape_type": "mask", "mask": BITMAP},
    {"label": "__ignore__", "points": [[58, 40], [62, 46]], "shape_type": "rectangle"},
]

# In LabelMe's Python: load each file with LabelMe's own loader and rasterise it with its shapes_to_label.
RASTERISE = r"""
import json, sys
import numpy as np
import labelme
from labelme._label_file import read_label_file
from labelme._utils import img_data_to_pil, shapes_to_label

values = json.loads(sys.argv[1])
out = {"version": labelme.__version__}
for path in sys.argv[2:]:
    annotation = read_label_file(filename=path)
    width, height = img_data_to_pil(annotation.image_data).size
    cls, _ = shapes_to_label(img_shape=(height, width), shapes=annotation.shapes, label_name_to_value=values)
    out[path] = {"mask": cls.tolist(), "flags": annotation.flags, "other": annotation.other_data}
print(json.dumps(out))
"""

# LabelMe's own main() with our argv; once the window shows the image, report what it shows, tick "done"
# as an annotator would, wait for the autosave to be written, and quit.
GUI = r"""
import json, os, sys, traceback
from PySide6 import QtCore, QtWidgets
import labelme.__main__ as entry


class Inspected(entry.MainWindow):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._report, self._waits = {}, 0
        QtCore.QTimer.singleShot(300, self.inspect)

    def inspect(self):
        report = self._report
        try:
            flags = self._docks.flag_list
            report["image"] = os.path.basename(self._image_path or "")
            report["paths"] = [os.path.abspath(p) for p in self.image_list]
            report["list"] = [self._docks.file_list.item(i).text() for i in range(self._docks.file_list.count())]
            report["shapes"] = [{"label": s.label, "shape_type": s.shape_type,
                                 "points": [[float(p[0]), float(p[1])] for p in s.points]}
                                for s in self._canvas_widgets.canvas.shapes]
            report["flags"] = {flags.item(i).text(): flags.item(i).checkState() == QtCore.Qt.CheckState.Checked
                               for i in range(flags.count())}
            report["accepts"] = {name: self.validate_label(label=name) for name in ["eye", "eyes"]}
            report["autosave"] = self._actions.save_auto.isChecked()
            report["with_image_data"] = self._config["with_image_data"]
            for i in range(flags.count()):
                if flags.item(i).text() == "done":
                    flags.item(i).setCheckState(QtCore.Qt.CheckState.Checked)  # autosaves
        except Exception:
            report["error"] = traceback.format_exc()
        QtCore.QTimer.singleShot(100, self.finish)

    def finish(self):
        self._waits += 1
        if self._save_writer.is_busy and self._waits < 100:
            QtCore.QTimer.singleShot(100, self.finish)
            return
        with open(os.environ["GUI_REPORT"], "w") as f:
            json.dump(self._report, f)
        os._exit(0)


entry.MainWindow = Inspected
sys.argv = ["labelme", *sys.argv[1:]]
entry.main()
"""


def other_version() -> str:
    done = subprocess.run([PYTHON, "-c", "import labelme; print(labelme.__version__)"], capture_output=True,
                          text=True, timeout=120, check=True)  # fmt: skip
    return done.stdout.strip()


def env(tmp_path: Path, **more: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "PYTHON", "QT_"))}
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    (tmp_path / "home").mkdir(exist_ok=True)
    out.update(QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path / "home"), XDG_RUNTIME_DIR=str(runtime), **more)
    return out


def part_mask() -> np.ndarray:
    y, x = np.mgrid[:H, :W]
    mask = np.zeros((H, W), np.uint8)
    mask[((x - 32) / 24) ** 2 + ((y - 24) / 20) ** 2 <= 1] = 1
    mask[((x - 24) / 5) ** 2 + ((y - 18) / 3) ** 2 <= 1] = 2
    mask[((x - 40) / 5) ** 2 + ((y - 18) / 3) ** 2 <= 1] = 2
    mask[((x - 32) / 9) ** 2 + ((y - 33) / 2.5) ** 2 <= 1] = 3
    return mask


@pytest.fixture()
def round_folder(tmp_path) -> Path:
    """A round's annotate/ folder: a pre-filled image, one with every shape type, a blank one."""
    folder = tmp_path / "rounds" / "round_001" / "annotate"
    rng = np.random.default_rng(0)
    for name, shapes in (("s0-000001", mask_to_polygons(part_mask(), CLASSES)), ("s0-000002", EVERY_SHAPE),
                         ("s0-000003", [])):
        image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        write_labelme(folder / f"{name}.json", image, shapes, extra={"dgan_al": {"id": name}})
    write_labels_file(folder / "labels.txt", CLASSES)
    (folder.parent / "contact_sheet.png").write_bytes((folder / "s0-000003.png").read_bytes())  # must not be listed
    return folder


def test_its_argparse_takes_our_flags_without_warnings(tmp_path, round_folder):
    version = other_version()
    install = LabelMeInstall((PYTHON, "-m", "labelme"), version)
    assert install.major >= 7
    argv = labelme_command(round_folder, round_folder / "labels.txt", install=install,
                           start=round_folder / "s0-000002.png")
    done = subprocess.run([*argv, "--version"], env=env(tmp_path), cwd=round_folder, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().lower() == f"labelme {version}"  # 7.x prints "Labelme 7.9.1"
    assert "warn" not in done.stderr.lower() and "deprecat" not in done.stderr.lower(), done.stderr


def their_masks(tmp_path: Path, paths: list[Path]) -> dict:
    """{path: {"mask", "flags", "other"}} from LabelMe's own loader and rasteriser, and its "version"."""
    values = {"_background_": 0, **{c: i for i, c in enumerate(CLASSES) if i}, "__ignore__": 255}
    done = subprocess.run([PYTHON, "-c", RASTERISE, json.dumps(values), *map(str, paths)], env=env(tmp_path),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_its_loader_and_rasteriser_give_our_masks(tmp_path, round_folder):
    # a file LabelMe 7 saved after a mask shape was dragged by a fraction of a pixel
    moved = round_folder / "s0-000004.json"
    write_labelme(moved, np.zeros((H, W, 3), np.uint8), [{**EVERY_SHAPE[7], "points": [[20.6, 20.4], [22.6, 21.4]]}],
                 extra={"dgan_al": {"id": moved.stem}})
    moved.write_text(moved.read_text().replace('"version": "5.5.0"', '"version": "7.9.1"'))
    paths = sorted(round_folder.glob("*.json"))
    theirs = their_masks(tmp_path, paths)
    for path in paths:
        annotation = read_labelme(path, CLASSES)
        ours = rasterize(annotation, H, W, CLASSES, rules=7)
        np.testing.assert_array_equal(np.array(theirs[str(path)]["mask"]), ours, err_msg=str(path))
        assert theirs[str(path)]["flags"] == {"done": False, "unrealistic": False}
        assert theirs[str(path)]["other"] == {"dgan_al": {"id": path.stem}}
        if path.stem in ("s0-000001", "s0-000003"):  # polygons (our pre-fill) paint alike in every version
            np.testing.assert_array_equal(rasterize(annotation, H, W, CLASSES), ours)
    assert rasterize(read_labelme(moved, CLASSES), H, W, CLASSES)[20, 21] == 3  # pasted at x = round(20.6)
    # LabelMe 7 rounds a linestrip's joints, LabelMe 5 and 6 do not: the one difference in our files
    every = read_labelme(round_folder / "s0-000002.json", CLASSES)
    differs = rasterize(every, H, W, CLASSES, rules=6) != rasterize(every, H, W, CLASSES, rules=7)
    linestrip = rasterize(every.shapes[4:5], H, W, CLASSES, rules=7) > 0
    assert 0 < differs.sum() and np.all(linestrip[differs])


@pytest.mark.slow
def test_its_gui_opens_our_round_and_what_it_saves_reads_back(tmp_path, round_folder):
    version = other_version()
    install = LabelMeInstall((PYTHON, "-m", "labelme"), version)
    start = round_folder / "s0-000002.png"
    argv = labelme_command(round_folder, round_folder / "labels.txt", install=install, start=start)
    report_path = tmp_path / "report.json"
    done = subprocess.run([PYTHON, "-c", GUI, *argv[len(install.argv):]], env=env(tmp_path, GUI_REPORT=str(report_path)),
                          cwd=round_folder, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert report_path.exists(), done.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert "error" not in report, report["error"]
    assert report["paths"] == [str(round_folder / f"s0-00000{i}.png") for i in (1, 2, 3)]  # no contact sheet
    assert report["list"] == [f"s0-00000{i}.png" for i in (1, 2, 3)]  # run in the folder: bare file names
    assert report["image"] == "s0-000002.png"  # the image we named, the others reachable
    before = read_labelme(round_folder / "s0-000002.json", CLASSES)
    assert [(s["label"], s["shape_type"]) for s in report["shapes"]] == [(s.label, s.shape_type) for s in before.shapes]
    assert report["flags"] == {"done": False, "unrealistic": False}
    assert report["accepts"] == {"eye": True, "eyes": False}
    assert report["autosave"] and not report["with_image_data"]

    saved = read_labelme(round_folder / "s0-000002.json", CLASSES)  # ticking done autosaved it
    assert saved.version == version and saved.done and not saved.unrealistic
    assert saved.extra == {"dgan_al": {"id": "s0-000002"}} and saved.raw["imageData"] is None
    # a file LabelMe 7 saved follows LabelMe 7's rasteriser: the mask it makes of it is the one we import
    theirs = their_masks(tmp_path, [saved.json_path])[str(saved.json_path)]["mask"]
    np.testing.assert_array_equal(rasterize(saved, H, W, CLASSES), np.array(theirs))
    np.testing.assert_array_equal(rasterize(saved, H, W, CLASSES), rasterize(before, H, W, CLASSES, rules=7))


@pytest.mark.slow
def test_its_gui_keeps_the_check_flag_on_save(tmp_path, annotated):  # noqa: F811
    """As test_check_flag's test for the LabelMe installed here: its label dialog shows ``check`` ticked on
    the flagged polygon, the file it saves keeps the flag, and it imports."""
    version = other_version()
    install = LabelMeInstall((PYTHON, "-m", "labelme"), version)
    ws = copy_of(annotated, tmp_path)
    path, mask, checks = prefill_with_one_flag(ws)
    report = run_flag_gui(PYTHON, ws, path.with_suffix(".png"), install, labelme_env(tmp_path), tmp_path)
    check_kept_on_save(ws, path, mask, checks, report, version)
