"""Safe file operations: atomic writes, checksums, paths that stay inside a folder.

Every write of the tool goes through ``atomic_write``: the data goes to a temp file next to the target,
named ``.<name>.<pid>@<host>.<random>.tmp``, which is fsynced and renamed over the target, so readers
see the old file or the new one, never half of one. A full disk (or quota, or file-size limit) becomes
a ``UserError`` naming the file, and the temp file is removed. A kill -9 can still leave a temp file;
``remove_stale_temp_files`` removes those whose process (on this host) is gone: commands call it when
they take the workspace lock.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Iterable

from dgan_al.errors import UserError

_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
TEMP_RE = re.compile(r"^\..+\.(\d+)@([0-9a-f]{8})\.[^.]+\.tmp$")  # pid, host of the writer
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Create or replace ``path`` with what ``write(file)`` writes, atomically (see the module docstring)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}@{_HOST}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise _user_error(err, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes 0600 files; give the file the mode a plain open() would (or keep the old one's)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno in _FULL:
            raise _user_error(err, path) from None
        raise


def _user_error(err: OSError, path: Path) -> Exception:
    """A full disk / quota / size limit as a UserError; any other OSError unchanged."""
    if err.errno not in _FULL:
        return err
    what = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
            errno.EFBIG: "the file is larger than the file-size limit allows"}[err.errno]
    return UserError(f"could not write this file: {what} ({os.strerror(err.errno)}); nothing was half-written",
                     path=path, fix="free some space (or raise the limit), then run the command again: "
                                    "it resumes where it stopped")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_copy(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` atomically, streaming (the file is never held in memory whole)."""
    with open(src, "rb") as source:
        atomic_write(dst, lambda f: shutil.copyfileobj(source, f, 1 << 20))


def atomic_torch_save(path: Path, obj: Any) -> None:
    """``torch.save(obj)`` to ``path`` atomically (serialised in memory first: torch's writer turns a
    full disk into a RuntimeError that hides the cause)."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getbuffer())


def is_temp_file(path: Path) -> bool:
    """Whether ``path`` is named like one of ``atomic_write``'s temp files."""
    return TEMP_RE.match(Path(path).name) is not None


def remove_stale_temp_files(folders: Iterable[Path], recursive: bool = True) -> list[Path]:
    """Remove our temp files left by writers that no longer run on this host (kill -9); returns them.

    Temp files of live processes, or of other hosts (a shared folder), are left alone.
    """
    removed = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for path in (folder.rglob("*.tmp") if recursive else folder.glob("*.tmp")):
            m = TEMP_RE.match(path.name)
            if m and m.group(2) == _HOST and not pid_alive(int(m.group(1))) and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def inside(root: Path, candidate: Path, what: str = "path") -> Path:
    """``candidate`` resolved, checked to lie inside ``root`` (symlinks followed); else a UserError."""
    root = Path(root).resolve()
    resolved = (root / candidate).resolve() if not Path(candidate).is_absolute() else Path(candidate).resolve()
    if resolved != root and root not in resolved.parents:
        raise UserError(f"{what} {candidate} leaves the workspace {root}", fix="keep every file inside the workspace")
    return resolved
