"""The LabelMe screenshots of docs/labelme.md, taken with the real LabelMe offscreen (Qt's ``grab()``).

    python benchmarks/labelme_screenshots.py [--workspace runs/labelme-screenshots] [--out docs]

Grows a workspace from the shipped seed annotations (this repository's ``dgan-al.toml`` and
``annotations/``; ``dgan-al next-round --pool-size 600``, about 2-3 minutes on a CPU) unless its round 002
exists, then starts LabelMe as ``dgan-al annotate 2`` does (``--print-command``: in the round's
``annotate/`` folder) and writes ``labelme-round.png`` (the window at the first unfinished image) and
``labelme-check-flag.png`` (the label dialog of a polygon flagged ``check`` on that image, over the window).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZE = (1100, 720)

# LabelMe's own main() with annotate's argv; grabs the window once the image is up, then (SHAPE set) opens
# the label dialog of that shape as a double click does and grabs it over the window.
SHOT = r"""
import os, sys
from PyQt5 import QtCore, QtGui, QtWidgets
import labelme.__main__ as entry

OUT, SHAPE, W, H = os.environ["SHOT_OUT"], os.environ.get("SHOT_SHAPE", ""), *map(int, os.environ["SHOT_SIZE"].split("x"))


class Shot(entry.MainWindow):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.resize(W, H)
        QtCore.QTimer.singleShot(800, self.shoot)

    def shoot(self):
        if not SHAPE:
            self.grab().save(OUT)
            os._exit(0)
        shape = self._canvas_widgets.canvas.shapes[int(SHAPE)]
        labels = self._docks.label_list
        labels.select_item(item=labels.find_item_by_shape(shape=shape))
        QtCore.QTimer.singleShot(500, self.in_dialog)
        self._edit_label()

    def in_dialog(self):
        dialog = self._label_dialog
        dialog.adjustSize()
        window = self.grab()
        box = dialog.grab()
        painter = QtGui.QPainter(window)
        at = QtCore.QPoint(118, 112)  # the canvas' top left corner: clear of the mouth, the shape of the picture
        painter.fillRect(QtCore.QRect(at - QtCore.QPoint(2, 2), box.size() + QtCore.QSize(4, 4)), QtGui.QColor(90, 90, 90))
        painter.drawPixmap(at, box)
        painter.end()
        window.save(OUT)
        os._exit(0)


entry.MainWindow = Shot
sys.argv = ["labelme", *sys.argv[1:]]
entry.main()
"""


def grow(workspace: Path, pool_size: int) -> None:
    if (workspace / "rounds" / "round_002" / "annotate").is_dir():
        return
    workspace.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dgan-al.toml", workspace / "dgan-al.toml")
    shutil.copytree(ROOT / "annotations", workspace / "annotations", dirs_exist_ok=True)
    subprocess.run(["dgan-al", "next-round", "--pool-size", str(pool_size)], cwd=workspace, check=True)


def shoot(workspace: Path, out: Path, shape: int | None) -> None:
    printed = subprocess.run(["dgan-al", "annotate", "2", "--print-command"], cwd=workspace, check=True,
                             capture_output=True, text=True).stdout
    cd, folder, joined, program, *options = shlex.split(printed)
    assert (cd, joined) == ("cd", "&&"), printed
    with tempfile.TemporaryDirectory() as home:
        runtime = Path(home) / "runtime"
        runtime.mkdir(mode=0o700)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "QT_"))}
        env.update(QT_QPA_PLATFORM="offscreen", HOME=home, XDG_RUNTIME_DIR=str(runtime), SHOT_OUT=str(out.resolve()),
                   SHOT_SIZE="x".join(map(str, SIZE)), SHOT_SHAPE="" if shape is None else str(shape))
        subprocess.run([sys.executable, "-c", SHOT, *options], cwd=workspace / folder, env=env, check=True, timeout=120)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB): {printed.strip()}")


def flagged_shape(workspace: Path, label: str) -> int:
    """The index of the first shape flagged ``check`` (of ``label`` if one is) in the image annotate opens."""
    printed = subprocess.run(["dgan-al", "annotate", "2", "--print-command"], cwd=workspace, check=True,
                             capture_output=True, text=True).stdout
    _, folder, _, _, image, *_ = shlex.split(printed)
    shapes = json.loads((workspace / folder / image).with_suffix(".json").read_text())["shapes"]
    flagged = [i for i, s in enumerate(shapes) if s["flags"].get("check")]
    assert flagged, "no polygon of the first image is flagged check"
    return next((i for i in flagged if shapes[i]["label"] == label), flagged[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=ROOT / "runs" / "labelme-screenshots")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--pool-size", type=int, default=600)
    parser.add_argument("--label", default="mouth", help="the flagged shape whose dialog is shown, if one is")
    args = parser.parse_args()
    grow(args.workspace, args.pool_size)
    shoot(args.workspace, args.out / "labelme-round.png", None)
    shoot(args.workspace, args.out / "labelme-check-flag.png", flagged_shape(args.workspace, args.label))


if __name__ == "__main__":
    main()
