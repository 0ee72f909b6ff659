"""Find the installed LabelMe and start it on a round's folder with the right flags for its version.

What we ask of LabelMe, whatever its version: open the folder, offer exactly the labels of the labels
file and refuse others typed in its dialog (exact label validation), show the image flags ``done`` and
``unrealistic``, save on every change (autosave) and keep image data out of the JSON.

The flag names differ by major version:
- 5.x: ``--nodata --autosave --validatelabel exact --labels FILE --flags done,unrealistic``
  (it embeds image data and does not autosave unless told). Given an image instead of a folder, it
  opens that image alone, so it is always given the folder.
- 6.x (checked on 6.3.1) and 7.x (checked on 7.9.1, Python 3.12): image data is left out and autosave
  is on by default (6.x's ``--nodata`` / ``--autosave`` only warn; 7.x has no such options, only
  ``--with-image-data`` / ``--no-auto-save``); labels are validated with ``--validate-label exact``.
  Given an image, both list every image of its folder and open that one, so ``start`` opens the
  round at its first unfinished image. A user's config can still turn autosave off or image data on;
  the import then checks that the embedded image is the exported one.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from dgan_al.errors import UserError
from dgan_al.labelme.format import EXPORT_FLAGS

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
) -> list[str]:
    """The argv that opens ``folder`` in LabelMe with our settings (see the module doc), for the
    version of ``install`` (default: ``find_labelme()``), showing the image ``start`` (one in
    ``folder``) first where the version can (6 and later). Raises ``LabelMeNotInstalled`` when there
    is no LabelMe, or only one older than 5."""
    install = install or find_labelme()
    if install is None:
        raise LabelMeNotInstalled()
    if install.major < OLDEST_MAJOR:
        raise LabelMeNotInstalled(f"LabelMe {install.version} is too old (dgan-al needs {OLDEST_MAJOR} or newer)")
    common = ["--labels", str(labels_file), "--flags", ",".join(flags)]
    if install.major == 5:
        options = ["--nodata", "--autosave", "--validatelabel", "exact", *common]
    else:
        options = ["--validate-label", "exact", *common]
    opened = start if start is not None and install.major >= 6 else folder
    return [*install.argv, str(opened), *options]


def launch_labelme(folder: str | Path, labels_file: str | Path, *, install: LabelMeInstall | None = None,
                   start: str | Path | None = None) -> int:
    """Run LabelMe on ``folder`` (at the image ``start``) until the annotator closes it; its exit code."""
    argv = labelme_command(folder, labels_file, install=install, start=start)
    return subprocess.run(argv, check=False).returncode


def _ask_version(program: str) -> str | None:
    """``labelme --version`` prints e.g. "labelme 6.3.1"; None if it does not answer that way."""
    try:
        done = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"(\d+\.\d+(?:\.\d+)?\S*)", done.stdout + done.stderr)
    return found.group(1) if found else None
