"""Who may use a workspace: one writer, or any number of readers (lock files taken atomically, O_EXCL).

``.dgan-al.lock`` names the writer (``next-round``, ``remove``: they change annotations/ and rounds/);
``.dgan-al.read.<pid>@<host>.<n>.lock`` names each reader (``build-dataset``: all shards and ranks of a
build read at once). Each side creates its own file first and then looks for the other side's, so a
writer and a reader can never both go on (at worst both refuse). A lock of a process that no longer
runs on this host (kill -9, power loss) is taken over. Whoever takes a lock first removes the stale
temp files of ``dgan_al.files`` in the folders it names.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterable

from dgan_al.errors import UserError
from dgan_al.files import pid_alive, remove_stale_temp_files

LOCK_NAME = ".dgan-al.lock"
READER_PREFIX = ".dgan-al.read."
_counter = itertools.count()


def _holder(path: Path) -> dict:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _stale(holder: dict) -> bool:
    """A lock whose process is gone (it can only be checked for this host)."""
    return holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int) \
        and not pid_alive(holder["pid"])


def _who(holder: dict) -> str:
    return (f"`dgan-al {holder.get('command', '?')}` (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"since {holder.get('since', '?')})")


class WorkspaceLock:
    """Context manager: ``with WorkspaceLock(root, "next-round"): ...``; ``shared=True`` for a reader.

    A command that cannot have the lock exits with a clear message naming the holder. ``clean``: folders
    whose stale temp files are removed once the lock is held (``removed`` lists them); ``what`` names
    the locked folder in messages.
    """

    def __init__(self, root: Path, command: str, name: str = LOCK_NAME, *, shared: bool = False,
                 clean: Iterable[Path] = (), what: str = "the workspace"):
        self.root = Path(root)
        self.command = command
        self.shared = shared
        self.writer_path = self.root / name
        self.path = self.writer_path if not shared else \
            self.root / f"{READER_PREFIX}{os.getpid()}@{socket.gethostname()}.{next(_counter)}.lock"
        self.clean = list(clean)
        self.what = what
        self.removed: list[Path] = []
        self.held = False

    def _create(self, path: Path) -> bool:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                "since": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv[1:]}
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        return True

    def _busy(self, holder: dict, doing: str, path: Path) -> UserError:
        return UserError(f"{self.what} is busy: {_who(holder)} is {doing} it", path=path,
                         fix="wait for it to finish; if that process is gone, delete the lock file")

    def _writer_in_the_way(self) -> None:
        """Raise if a live writer holds the workspace (a stale writer lock is removed)."""
        for _ in range(2):
            if not self.writer_path.exists():
                return
            holder = _holder(self.writer_path)
            if not _stale(holder):
                raise self._busy(holder, "writing to", self.writer_path)
            self.writer_path.unlink(missing_ok=True)

    def _readers_in_the_way(self) -> None:
        """Raise if a live reader holds the workspace (stale reader locks are removed)."""
        for path in sorted(self.root.glob(f"{READER_PREFIX}*.lock")):
            holder = _holder(path)
            if _stale(holder):
                path.unlink(missing_ok=True)
            elif path.exists():
                raise self._busy(holder, "reading", path)

    def acquire(self) -> None:
        if self.shared:
            self._create(self.path)
            try:
                self._writer_in_the_way()
            except BaseException:
                self.path.unlink(missing_ok=True)
                raise
        else:
            for _ in range(2):
                if self._create(self.path):
                    break
                holder = _holder(self.path)
                if not _stale(holder):
                    raise self._busy(holder, "writing to", self.path)
                self.path.unlink(missing_ok=True)
            else:
                raise UserError("could not take the workspace lock", path=self.path, fix="delete the stale lock file")
            try:
                self._readers_in_the_way()
            except BaseException:
                self.path.unlink(missing_ok=True)
                raise
        self.held = True
        self.removed = remove_stale_temp_files(self.clean)

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> "WorkspaceLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

