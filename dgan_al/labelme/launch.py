"""Find the installed LabelMe and start it on a round's folder with the right flags for its version.

What we ask of LabelMe, whatever its version: open the folder, offer exactly the labels of the labels
file and refuse others typed in its dialog (exact label validation), show the image flags ``done`` and
``unrealistic``, save on every change (autosave) and keep image data out of the JSON.

The flag names differ by major version:
- 5.x: ``--nodata --autosave --validatelabel exact --labels FILE --flags done,unrealistic
  --labelflags '{".*": ["check"]}'`` (every label offers the shape flag ``check``, which the pre-fill ticks
  on the polygons its members disagree on; 6.x and 7.x spell it ``--label-flags``)
  (it embeds image data and does not autosave unless told). Given an image instead of a folder, it
  opens that image alone, so it is always given the folder.
- 6.x (checked on 6.3.1) and 7.x (checked on 7.9.1, Python 3.12): image data is left out and autosave
  is on by default (6.x's ``--nodata`` / ``--autosave`` only warn; 7.x has no such options, only
  ``--with-image-data`` / ``--no-auto-save``); labels are validated with ``--validate-label exact``.
  Given an image, both list every image of its folder and open that one, so ``start`` opens the
  round at its first unfinished image. A user's config can still turn autosave off or image data on;
  the import then checks that the embedded image is the exported one.

LabelMe runs in the round's ``annotate/`` folder with paths relative to it: its file list shows each
entry as given (every version lists the walk of the folder it was given), so the list shows the bare
file names (``s0-000123.png``), not ``rounds/round_002/annotate/s0-00...`` cut off at the window's edge.

In a workspace with keypoints (``keypoints`` given) LabelMe also shows the image flag ``keypoints``
(ticked once every visible keypoint is placed) and offers the shape flag ``occluded`` on the keypoint
labels (``{"^(?:nose_tip|...)$": ["occluded"]}`` beside ``check``; LabelMe gives a shape the flags of every
pattern its label matches).

A LabelMe that cannot start (no display, Qt's xcb libraries missing), is killed or fails ends in one
``UserError`` line saying what happened and the fix; its own stderr still shows as it runs.
"""

from __future__ import annotations

import collections
import importlib.metadata
import json
import importlib.util
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
from dataclasses import dataclass
from pathlib import Path

from dgan_al.errors import UserError
from dgan_al.labelme.format import CHECK_FLAG, EXPORT_FLAGS, KEYPOINTS_FLAG, OCCLUDED_FLAG

INSTALL_HINT = "pip install 'dgan-al[annotate]'"
OLDEST_MAJOR = 5


@dataclass(frozen=True)
class LabelMeInstall:
    """How to start LabelMe (``argv`` before our arguments) and its version."""

    argv: tuple[str, ...]
    version: str

    @property
    def major(self) -> int:
        return int(re.match(r"\d+", self.version).group())  # type: ignore[union-attr]


class LabelMeNotInstalled(UserError):
    """LabelMe is missing (or too old): one line saying how to install it."""

    def __init__(self, detail: str = "LabelMe is not installed"):
        super().__init__(detail, fix=INSTALL_HINT)


def find_labelme() -> LabelMeInstall | None:
    """The LabelMe to start, or None when there is none. In order: the ``labelme`` program installed
    in this Python environment (beside dgan-al, e.g. by ``pip install 'dgan-al[annotate]'``), the
    package run as ``python -m labelme``, then a ``labelme`` program on PATH (e.g. from pipx)."""
    try:
        here = importlib.metadata.version("labelme")  # the distribution installed in this environment
    except importlib.metadata.PackageNotFoundError:
        here = None
    if here is not None:
        program = shutil.which("labelme", path=sysconfig.get_path("scripts"))
        if program is not None:
            return LabelMeInstall(argv=(program,), version=here)
        if importlib.util.find_spec("labelme") is not None:
            return LabelMeInstall(argv=(sys.executable, "-m", "labelme"), version=here)
    program = shutil.which("labelme")
    if program is None:
        return None
    program = os.path.abspath(program)  # a relative PATH entry would not hold once LabelMe runs in the round
    version = _ask_version(program)
    return LabelMeInstall(argv=(program,), version=version) if version else None


def labelme_version() -> str | None:
    """The version of the LabelMe ``dgan-al annotate`` would start, or None when there is none."""
    install = find_labelme()
    return install.version if install else None


def labelme_command(
    folder: str | Path,
    labels_file: str | Path,
    *,
    install: LabelMeInstall | None = None,
    flags: tuple[str, ...] = EXPORT_FLAGS,
    start: str | Path | None = None,
    keypoints: tuple[str, ...] | list[str] = (),
) -> list[str]:
    """The argv that opens ``folder`` in LabelMe with our settings (see the module doc), for the
    version of ``install`` (default: ``find_labelme()``), to run in ``folder``: its paths are relative
    to it, so LabelMe's file list shows bare file names. It opens the image ``start`` (one in ``folder``)
    first where the version can (6 and later); ``keypoints`` (the workspace's names) adds the image flag
    ``keypoints`` and the shape flag ``occluded`` on them. Raises ``LabelMeNotInstalled`` when there is no
    LabelMe, or only one older than 5."""
    install = install or find_labelme()
    if install is None:
        raise LabelMeNotInstalled()
    if install.major < OLDEST_MAJOR:
        raise LabelMeNotInstalled(f"LabelMe {install.version} is too old (dgan-al needs {OLDEST_MAJOR} or newer)")
    labels = os.path.relpath(os.path.abspath(labels_file), os.path.abspath(folder))
    if keypoints and KEYPOINTS_FLAG not in flags:
        flags = (*flags, KEYPOINTS_FLAG)
    common = ["--labels", labels, "--flags", ",".join(flags)]
    label_flags = {".*": [CHECK_FLAG]}  # every label offers the check box the pre-fill may tick
    if keypoints:
        label_flags["^(?:" + "|".join(re.escape(name) for name in keypoints) + ")$"] = [OCCLUDED_FLAG]
    shape_flags = json.dumps(label_flags)
    if install.major == 5:
        options = ["--nodata", "--autosave", "--validatelabel", "exact", *common, "--labelflags", shape_flags]
    else:
        options = ["--validate-label", "exact", *common, "--label-flags", shape_flags]
    opened = Path(start).name if start is not None and install.major >= 6 else "."
    return [*install.argv, opened, *options]


def shell_command(folder: str | Path, argv: list[str]) -> str:
    """``argv`` (from ``labelme_command``) as one line to paste in a shell: ``cd FOLDER && labelme ...``."""
    return f"cd {shlex.quote(str(folder))} && {shlex.join(argv)}"


class LabelMeFailed(UserError):
    """LabelMe could not start, was killed, or exited with an error: what happened and the fix."""


# Qt's X11 (xcb) platform plugin needs these on Debian/Ubuntu; a minimal system lacks some (on Debian 12
# with PyQt5 5.15: icccm4, keysyms1, xinerama0). Qt 6 (LabelMe 7, PySide6) also needs libxcb-cursor0.
XCB_PACKAGES = ("libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 libxcb-render-util0 libxcb-shape0 "
                "libxcb-randr0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-cursor0")
_NOT_FOUND = re.compile(r'Could not find the Qt platform plugin "([^"]*)"')
_NOT_LOADED = re.compile(r'Could not load the Qt platform plugin "([^"]*)"')


def launch_labelme(folder: str | Path, labels_file: str | Path, *, install: LabelMeInstall | None = None,
                   start: str | Path | None = None, env: dict[str, str] | None = None,
                   keypoints: tuple[str, ...] | list[str] = ()) -> None:
    """Run LabelMe in ``folder`` (at the image ``start``; ``keypoints``: see ``labelme_command``) until the
    annotator closes it. Its stderr passes through; raises ``LabelMeFailed`` when it could not start, was
    killed or exited with an error."""
    argv = labelme_command(folder, labels_file, install=install, start=start, keypoints=keypoints)
    tail: collections.deque[str] = collections.deque(maxlen=40)
    with subprocess.Popen(argv, cwd=folder, env=env, stderr=subprocess.PIPE) as process:
        relay = threading.Thread(target=_relay, args=(process.stderr, tail), daemon=True)
        relay.start()
        try:
            code = process.wait()
        except BaseException:  # Ctrl-C or the like: LabelMe has saved what was ticked; do not leave it behind
            process.kill()
            raise
        relay.join(timeout=5)
    failure = labelme_failure(code, list(tail), os.environ if env is None else env)
    if failure is not None:
        raise failure


def _relay(stream, tail: collections.deque) -> None:
    """Copy LabelMe's stderr to ours line by line, keeping the last lines."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        tail.append(line.rstrip())
        try:
            sys.stderr.write(line)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


def labelme_failure(code: int, stderr_lines: list[str], env) -> LabelMeFailed | None:
    """What a LabelMe exit status (``Popen.returncode``: minus the signal when killed) and its last
    stderr lines mean, as one ``LabelMeFailed``; None when it ended normally."""
    if code == 0:
        return None
    text = "\n".join(stderr_lines)
    if found := _NOT_FOUND.search(text):
        return LabelMeFailed(f'LabelMe could not start: Qt has no platform plugin "{_cut(found.group(1), 40)}" '
                             f"(QT_QPA_PLATFORM={_cut(env.get('QT_QPA_PLATFORM', ''), 40)!r})",
                             fix="unset QT_QPA_PLATFORM (Qt then uses X11, xcb), or set it to wayland")
    if found := _NOT_LOADED.search(text):
        plugin = found.group(1)
        start = f'LabelMe could not start: Qt could not load its platform plugin "{_cut(plugin, 40)}"'
        if plugin == "xcb" and not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
            return LabelMeFailed(f"{start}: no display (DISPLAY is not set)",
                                 fix="LabelMe needs a screen: run dgan-al annotate in a desktop session or over "
                                     "ssh -X")
        if plugin == "xcb" and "could not connect to display" in text:
            display = _cut(env.get("DISPLAY", ""), 40)
            return LabelMeFailed(f"{start}: it cannot connect to the display DISPLAY={display!r}",
                                 fix="run dgan-al annotate in a desktop session or over ssh -X, with DISPLAY set "
                                     "to a display you may open windows on")
        if plugin == "xcb":
            return LabelMeFailed(f"{start}: Qt's X11 libraries are missing",
                                 fix=f"on Debian/Ubuntu: apt-get install {XCB_PACKAGES}; on Wayland, "
                                     "QT_QPA_PLATFORM=wayland may do instead")
        return LabelMeFailed(f"{start} (QT_QPA_PLATFORM={_cut(env.get('QT_QPA_PLATFORM', ''), 40)!r})",
                             fix="unset QT_QPA_PLATFORM to use X11 (xcb), or set it to wayland")
    last = next((line.strip() for line in reversed(stderr_lines) if line.strip()), "")
    said = f": {_cut(last)}" if last else ""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if -code == signal.SIGABRT:  # Qt's fatal errors abort; its last line says why
            return LabelMeFailed(f"LabelMe aborted ({name}){said}",
                                 fix="its output is above; what it saved before is kept: run dgan-al annotate again")
        return LabelMeFailed(f"LabelMe was killed by {name} (signal {-code})",
                             fix="what it saved before is kept: run dgan-al annotate again to go on")
    return LabelMeFailed(f"LabelMe exited with code {code}{said}",
                         fix="its output is above; what it saved before is kept: run dgan-al annotate again to go on")


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _ask_version(program: str) -> str | None:
    """``labelme --version`` prints e.g. "labelme 6.3.1"; None if it does not answer that way."""
    try:
        done = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"(\d+\.\d+(?:\.\d+)?\S*)", done.stdout + done.stderr)
    return found.group(1) if found else None
