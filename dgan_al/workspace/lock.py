"""One writer at a time: a lock file naming its holder, taken atomically with O_EXCL."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from dgan_al.errors import UserError

LOCK_NAME = ".dgan-al.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkspaceLock:
    """Context manager: ``with WorkspaceLock(root, "next-round"): ...``.

    A second writing command exits with a clear message naming the holder. A lock left by a process
    that no longer runs on this host (kill -9, power loss) is taken over.
    """

    def __init__(self, root: Path, command: str, name: str = LOCK_NAME):
        self.path = Path(root) / name
        self.command = command
        self.held = False

    def _holder(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                "since": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv[1:]}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                stale = holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int) \
                    and not _alive(holder["pid"])
                if stale:
                    self.path.unlink(missing_ok=True)
                    continue
                who = f"`dgan-al {holder.get('command', '?')}` (pid {holder.get('pid', '?')} on " \
                      f"{holder.get('host', '?')}, since {holder.get('since', '?')})"
                raise UserError(f"the workspace is busy: {who} is writing to it", path=self.path,
                                fix="wait for it to finish; if that process is gone, delete the lock file")
            with os.fdopen(fd, "w") as f:
                json.dump(info, f)
            self.held = True
            return
        raise UserError("could not take the workspace lock", path=self.path, fix="delete the stale lock file")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> "WorkspaceLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
