"""The real LabelMe GUI (offscreen) opens an exported round with our command line and shows its shapes;
ticking ``done`` there autosaves a file we read back; opened by ``dgan-al annotate`` on a round as
next-round writes it, it lists only the exported images and starts at the first unfinished one; and
``dgan-al annotate`` finds the round, the labels file and the LabelMe to start."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import dgan_al.cli.annotate  # noqa: F401  (registers the command on the app)
import dgan_al.labelme
import dgan_al.labelme.launch
from dgan_al.cli.app import app
from dgan_al.labelme.launch import shell_command
from dgan_al.labelme import (
    INSTALL_HINT,
    LabelMeInstall,
    LabelMeNotInstalled,
    find_labelme,
    labelme_command,
    labelme_version,
    mask_to_polygons,
    rasterize,
    read_labelme,
    write_labelme,
    write_labels_file,
)

labelme = pytest.importorskip("labelme", reason="the GUI test runs the real LabelMe (pip install labelme)")

CLASSES = ["background", "skin", "eye", "mouth"]
H, W = 48, 64

# Runs LabelMe's own entry point (its argparse, config and MainWindow) with the argv we build. Once the
# window is up, it reports what it shows, ticks "done" as an annotator would, and quits.
GUI_SCRIPT = r"""
import json, os, sys, traceback
from PyQt5 import QtCore, QtWidgets
import labelme.__main__ as entry


class InspectedWindow(entry.MainWindow):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        QtCore.QTimer.singleShot(0, self.inspect)  # once the event loop runs, the window is shown

    def inspect(self):
        report, code = {}, 0
        try:
            canvas = self._canvas_widgets.canvas
            flags = self._docks.flag_list
            report["image"] = os.path.basename(self._image_path or "")
            report["files"] = [os.path.basename(p) for p in self.image_list]
            report["list"] = [self._docks.file_list.item(i).text() for i in range(self._docks.file_list.count())]
            report["paths"] = [os.path.abspath(p) for p in self.image_list]
            report["shapes"] = [
                {"label": s.label, "shape_type": s.shape_type, "points": [[p.x(), p.y()] for p in s.points]}
                for s in canvas.shapes
            ]
            report["flags"] = {flags.item(i).text(): flags.item(i).checkState() == QtCore.Qt.Checked
                               for i in range(flags.count())}
            report["accepts"] = {name: self.validate_label(name) for name in ["eye", "eyes", "_background_"]}
            report["autosave"] = self._actions.save_auto.isChecked()
            report["with_image_data"] = self._config["with_image_data"]
            shown = canvas.grab().toImage()
            self.toggle_shape_visibility(False)
            hidden = canvas.grab().toImage()
            self.toggle_shape_visibility(True)
            report["size"] = [shown.width(), shown.height()]
            report["shapes_drawn"] = shown != hidden
            for i in range(flags.count()):
                if flags.item(i).text() == "done":
                    flags.item(i).setCheckState(QtCore.Qt.Checked)  # autosave writes the JSON now
        except Exception:  # report anything, never leave a modal error box hanging offscreen
            report["error"] = traceback.format_exc()
            code = 1
        with open(os.environ["GUI_REPORT"], "w") as f:
            json.dump(report, f)
        QtWidgets.QApplication.instance().exit(code)


entry.MainWindow = InspectedWindow
sys.argv = ["labelme", *sys.argv[1:]]
entry.main()
"""


def part_mask() -> np.ndarray:
    y, x = np.mgrid[:H, :W]
    mask = np.zeros((H, W), np.uint8)
    mask[((x - 32) / 24) ** 2 + ((y - 24) / 20) ** 2 <= 1] = 1  # skin
    mask[((x - 24) / 5) ** 2 + ((y - 18) / 3) ** 2 <= 1] = 2  # eyes
    mask[((x - 40) / 5) ** 2 + ((y - 18) / 3) ** 2 <= 1] = 2
    mask[((x - 32) / 9) ** 2 + ((y - 33) / 2.5) ** 2 <= 1] = 3  # mouth
    return mask


def export_round(folder: Path) -> tuple[Path, np.ndarray]:
    """A round's files to annotate as next-round exports them (in ``folder/annotate``): pre-filled first
    image, blank second, the labels file."""
    folder = folder / "annotate"
    image = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    first = folder / "img_000010.json"
    write_labelme(first, image, mask_to_polygons(part_mask(), CLASSES), extra={"latent_id": 10, "round": 1})
    write_labelme(folder / "img_000011.json", image, [], extra={"latent_id": 11, "round": 1})
    write_labels_file(folder / "labels.txt", CLASSES)
    return first, rasterize(read_labelme(first, CLASSES), H, W, CLASSES)


def qt_env(tmp_path: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    (tmp_path / "home").mkdir(exist_ok=True)  # LabelMe writes ~/.labelmerc on first start and exits if it cannot
    env.update(QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path / "home"), XDG_RUNTIME_DIR=str(runtime), **more)
    return env


def run_gui(tmp_path: Path, options: list[str], cwd: Path) -> dict:
    """Run the real LabelMe with our ``options`` (its argv after the program) under GUI_SCRIPT, in the
    folder ``cwd`` (where ``dgan-al annotate`` runs it: the round's annotate folder); its report."""
    report_path = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-c", GUI_SCRIPT, *options],  # our options, LabelMe's main()
        env=qt_env(tmp_path, GUI_REPORT=str(report_path)),
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert report_path.exists(), done.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert "error" not in report, report["error"]
    assert done.returncode == 0, done.stderr[-3000:]
    return report


def test_labelme_gui_opens_the_round_shows_shapes_and_autosaves_done(tmp_path):
    first, mask_before = export_round(tmp_path / "rounds" / "round_001")
    folder = first.parent
    install = find_labelme()
    argv = labelme_command(folder, folder / "labels.txt", install=install)
    report = run_gui(tmp_path, argv[len(install.argv) :], cwd=folder)

    # it opened our folder, first image first, its file list showing the bare file names, and our shapes
    assert report["list"] == ["img_000010.png", "img_000011.png"]
    assert report["paths"] == [str(folder / "img_000010.png"), str(folder / "img_000011.png")]
    assert report["image"] == "img_000010.png"
    ours = read_labelme(first, CLASSES).shapes
    assert [(s["label"], s["shape_type"]) for s in report["shapes"]] == [(s.label, s.shape_type) for s in ours]
    for shown, shape in zip(report["shapes"], ours):
        np.testing.assert_allclose(shown["points"], shape.points)
    assert report["shapes_drawn"] and min(report["size"]) > 0
    # our flags, exact label validation against the labels file, autosave, no image data
    assert report["flags"] == {"done": False, "unrealistic": False}
    assert report["accepts"] == {"eye": True, "eyes": False, "_background_": True}
    assert report["autosave"] and not report["with_image_data"]

    # ticking done autosaved the file: LabelMe wrote it, we read it, the mask is unchanged
    saved = read_labelme(first, CLASSES)
    assert saved.done and not saved.unrealistic
    assert saved.version == labelme.__version__  # written by LabelMe this time
    assert saved.extra == {"latent_id": 10, "round": 1}
    assert saved.raw["imageData"] is None and saved.raw["imagePath"] == "img_000010.png"
    np.testing.assert_array_equal(rasterize(saved, H, W, CLASSES), mask_before)


def test_labelme_opened_by_annotate_lists_only_the_exported_images_from_the_first_unfinished(tmp_path,
                                                                                            monkeypatch):
    """A round as next-round writes it (contact sheet, selection, README and all), one image finished:
    LabelMe, started with ``dgan-al annotate``'s command (cd to the annotate folder, then labelme), lists
    exactly the exported images by their bare file names (their ids in full) and shows the first
    unfinished one."""
    from dgan_al.workflows.export import ExportItem
    from dgan_al.workflows.export import export_round as export_a_round
    from dgan_al.workspace.layout import latent_id

    sys.path.insert(0, str(Path(__file__).parent))
    from workspaces import make_workspace

    ws = make_workspace(tmp_path / "ws", pool_size=4)
    generator = ws.load_generator()
    pool = ws.pool_latents(generator.z_dim)
    items = [ExportItem(id=latent_id(0, i), z=pool[i], latent={"seed": 0, "index": i}) for i in range(4)]
    export_a_round(ws.round_dir(1), 1, generator, items, ws.config.classes)
    folder, images = ws.round_dir(1), ws.round_dir(1) / "annotate"
    assert (folder / "contact_sheet.png").is_file() and (folder / "README.txt").is_file()
    first = images / f"{items[0].id}.json"
    write_labelme(first, None, [], flags={"done": True, "unrealistic": False})

    monkeypatch.chdir(ws.root)
    printed = annotate("1", "--print-command")
    assert printed.exit_code == 0, printed.output
    install = find_labelme()
    cd, folder, joined, *argv = shlex.split(printed.output)
    assert (cd, joined, folder) == ("cd", "&&", "rounds/round_001/annotate")
    report = run_gui(tmp_path, argv[len(install.argv) :], cwd=ws.root / folder)
    assert sorted(report["paths"]) == sorted(str(images / f"{item.id}.png") for item in items)
    assert sorted(report["list"]) == sorted(f"{item.id}.png" for item in items)  # e.g. s0-000001.png, whole
    assert report["image"] == f"{items[1].id}.png"  # the first one not finished


# ---------------------------------------------------------------------------------------------------
# finding LabelMe and its command line


def test_finds_the_installed_labelme():
    install = find_labelme()
    assert install is not None
    assert install.version == labelme.__version__ == importlib.metadata.version("labelme") == labelme_version()
    assert Path(install.argv[0]).name == "labelme"  # the program installed beside this Python
    assert Path(install.argv[0]).parent == Path(sysconfig.get_path("scripts"))
    assert install.major == int(labelme.__version__.split(".")[0])
    # a LabelMe found only on PATH is asked for its version; the same program answers the same
    assert dgan_al.labelme.launch._ask_version(install.argv[0]) == labelme.__version__


@pytest.mark.parametrize(
    "version, options, label_flags",
    [
        ("5.4.1", ["--nodata", "--autosave", "--validatelabel", "exact"], "--labelflags"),
        ("6.3.1", ["--validate-label", "exact"], "--label-flags"),
        ("7.0.0", ["--validate-label", "exact"], "--label-flags"),
    ],
)
def test_command_uses_the_flags_of_each_major_version(version, options, label_flags):
    """The argv runs in the round's folder: its paths are relative to it. Every label offers the shape flag
    ``check`` (the pre-fill ticks it where the members disagree)."""
    common = ["--labels", "labels.txt", "--flags", "done,unrealistic", label_flags, '{".*": ["check"]}']
    argv = labelme_command("r/round_001", "r/round_001/labels.txt", install=LabelMeInstall(("labelme",), version))
    assert argv == ["labelme", ".", *options, *common]
    start = labelme_command("r/round_001", "r/round_001/labels.txt", install=LabelMeInstall(("labelme",), version),
                            start="r/round_001/s0-000001.png")
    assert start == ["labelme", "s0-000001.png" if version[0] != "5" else ".", *options, *common]
    # LabelMe 5 given an image opens it alone
    assert shell_command("r/round 1", ["labelme", "."]) == "cd 'r/round 1' && labelme ."


def test_command_refuses_old_labelme():
    with pytest.raises(LabelMeNotInstalled, match="too old"):
        labelme_command("r", "r/labels.txt", install=LabelMeInstall(("labelme",), "4.6.0"))


def test_installed_labelme_accepts_our_command_line(tmp_path):
    """LabelMe's own argparse takes every option we pass (``--version`` makes it stop after parsing),
    without deprecation warnings."""
    folder = tmp_path / "round_001"
    export_round(folder)
    argv = labelme_command(folder / "annotate", folder / "annotate" / "labels.txt")
    done = subprocess.run([*argv, "--version"], env=qt_env(tmp_path), cwd=folder / "annotate", capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(labelme.__version__)
    assert "deprecated" not in done.stderr.lower() and "error" not in done.stderr.lower()


# ---------------------------------------------------------------------------------------------------
# dgan-al annotate


@pytest.fixture()
def workspace(tmp_path, monkeypatch) -> Path:
    for n in (0, 2, 10):
        export_round(tmp_path / "rounds" / f"round_{n:03d}")
    (tmp_path / "rounds" / "pool").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def annotate(*args: str):
    return CliRunner().invoke(app, ["annotate", *args])


@pytest.mark.parametrize(
    "args, folder",
    [((), "rounds/round_010"), (("2",), "rounds/round_002"), (("0",), "rounds/round_000"),
     (("rounds/round_002",), "rounds/round_002"), (("rounds/round_002/annotate",), "rounds/round_002")],
)  # fmt: skip
def test_annotate_finds_the_round(workspace, args, folder):
    result = annotate(*args, "--print-command")
    assert result.exit_code == 0, result.output
    images = Path(folder) / "annotate"
    expected = labelme_command(images, images / "labels.txt", start=images / "img_000010.png")
    assert result.output.strip() == shell_command(images, expected)
    assert shlex.split(result.output)[:4] == ["cd", str(images), "&&", find_labelme().argv[0]]


@pytest.mark.parametrize(
    "args, message",
    [(("7",), "round 7 does not exist"), (("nowhere",), "nowhere is not a folder")],
)
def test_annotate_bad_round_is_one_line_exit_2(workspace, args, message):
    result = annotate(*args, "--print-command")
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_annotate_without_rounds_or_labels_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = annotate("--print-command")
    assert result.exit_code == 2 and "no round folders" in result.output
    (tmp_path / "rounds" / "round_000").mkdir(parents=True)
    result = annotate("--print-command")
    assert result.exit_code == 2 and "no labels.txt in rounds/round_000/annotate" in result.output


@pytest.mark.parametrize(
    "found, message",
    [(None, "LabelMe is not installed"), (LabelMeInstall(("labelme",), "4.6.0"), "LabelMe 4.6.0 is too old")],
)
def test_annotate_without_labelme_says_how_to_install(workspace, monkeypatch, found, message):
    """LabelMe 6 is installed here, so a missing or old one is simulated by what the lookup returns."""
    monkeypatch.setattr(dgan_al.labelme, "find_labelme", lambda: found)
    result = annotate()
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and INSTALL_HINT in lines[0]
