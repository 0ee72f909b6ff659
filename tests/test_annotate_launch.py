"""``dgan-al annotate`` with the real LabelMe when it cannot start (its Qt platform plugin fails) or is
killed: LabelMe's own stderr still shows, then one line of ours says what happened and the fix (exit 2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dgan_al.labelme import write_labelme, write_labels_file
from dgan_al.labelme.launch import XCB_PACKAGES, labelme_failure
from processes import children_of

pytest.importorskip("labelme", reason="these tests run the real LabelMe (pip install labelme)")

RESUME = "what it saved before is kept: run dgan-al annotate again to go on"


@pytest.fixture()
def workspace(tmp_path) -> Path:
    """A round with two images to annotate (no dgan-al.toml needed by annotate)."""
    folder = tmp_path / "ws" / "rounds" / "round_001" / "annotate"
    for i in (1, 2):
        write_labelme(folder / f"s0-00000{i}.json", np.zeros((16, 16, 3), np.uint8), [], extra={})
    write_labels_file(folder / "labels.txt", ["background", "skin"])
    (tmp_path / "home").mkdir()
    return tmp_path / "ws"


def env_for(workspace: Path, **qt: str) -> dict[str, str]:
    """This environment without any display or Qt setting, a fresh HOME, and ``qt`` on top."""
    drop = ("DISPLAY", "WAYLAND_DISPLAY", "QT_", "XDG_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    runtime = workspace.parent / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env.update(HOME=str(workspace.parent / "home"), XDG_RUNTIME_DIR=str(runtime), **qt)
    return env


def annotate_cmd() -> list[str]:
    return [sys.executable, "-m", "dgan_al", "annotate"]


def our_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize(
    "qt, expected",
    [
        ({"QT_QPA_PLATFORM": "nosuch"},
         'error: LabelMe could not start: Qt has no platform plugin "nosuch" (QT_QPA_PLATFORM=\'nosuch\') '
         "(unset QT_QPA_PLATFORM (Qt then uses X11, xcb), or set it to wayland)"),
        ({"QT_QPA_PLATFORM": "xcb"},
         'error: LabelMe could not start: Qt could not load its platform plugin "xcb": no display (DISPLAY is not '
         "set) (LabelMe needs a screen: run dgan-al annotate in a desktop session or over ssh -X)"),
        ({"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":99"},  # no X server there, and here the xcb libraries are missing
         'error: LabelMe could not start: Qt could not load its platform plugin "xcb": '),
    ],
)  # fmt: skip
def test_a_labelme_that_cannot_start_ends_in_one_line_exit_2(workspace, qt, expected):
    done = subprocess.run(annotate_cmd(), cwd=workspace, env=env_for(workspace, **qt), capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr[-3000:]
    ours = our_lines(done.stderr)
    assert len(ours) == 1 and done.stderr.strip().splitlines()[-1] == ours[0]  # one line, after LabelMe's own
    assert ours[0].startswith(expected) and len(ours[0]) < 400
    if "DISPLAY" in qt:  # which cause depends on the machine: X libraries missing, or no display to connect to
        assert ours[0].endswith(f"apt-get install {XCB_PACKAGES}; on Wayland, QT_QPA_PLATFORM=wayland may do "
                                "instead)") or "cannot connect to the display DISPLAY=':99'" in ours[0]
    assert "Qt platform plugin" in done.stderr.split(ours[0])[0]  # LabelMe's own message still shows
    assert "Opening LabelMe" in done.stdout and "error" not in done.stdout


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds LabelMe's process in /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_labelme_gets_its_own_line(workspace, tmp_path, sig):
    """LabelMe (offscreen) is up, showing the round; killing it ends annotate with one line, exit 2."""
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        annotate = subprocess.Popen(annotate_cmd(), cwd=workspace, env=env_for(workspace, QT_QPA_PLATFORM="offscreen"),
                                    stdout=subprocess.PIPE, stderr=stderr, text=True)  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while "Loaded file" not in log.read_text() and annotate.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)  # LabelMe logs "Loaded file: 's0-000001.png'" once it shows the image
            labelme = children_of(annotate.pid)
            assert len(labelme) == 1, log.read_text()[-3000:]
            os.kill(labelme[0], sig)
            annotate.wait(timeout=60)
        finally:
            if annotate.poll() is None:
                for child in children_of(annotate.pid):
                    os.kill(child, signal.SIGKILL)
                annotate.kill()
                annotate.wait()
    text = log.read_text()
    assert annotate.returncode == 2, text[-3000:]
    assert "Loaded file: 's0-000001.png'" in text  # it had opened the first image, by its bare name
    assert text.strip().splitlines()[-1] == (f"error: LabelMe was killed by {sig.name} (signal {int(sig)}) ({RESUME})")
    assert our_lines(text) == [text.strip().splitlines()[-1]]


def test_what_each_exit_means():
    """The exit statuses that do not need a broken LabelMe to reach: normal, an error code, an abort."""
    assert labelme_failure(0, ["anything"], {}) is None
    failed = labelme_failure(1, ["Traceback ...", "ValueError: bad shape", ""], {})
    assert str(failed) == f"LabelMe exited with code 1: ValueError: bad shape (its output is above; {RESUME})"
    aborted = labelme_failure(-6, ["x" * 1000], {})
    assert str(aborted).startswith("LabelMe aborted (SIGABRT): xxx") and "(1000 characters)" in str(aborted)
    assert len(str(aborted)) < 400
    assert failed.exit_code == aborted.exit_code == 2
