"""A round's state file, ``rounds/round_NNN/state.json``: how far the round got and on what.

``{"round": N, "stage": "started" | "trained" | "complete", "annotation_set": ..., "interpreter_sha256": ...}``.
``next-round`` resumes or finishes a round from it, ``build-dataset`` finds the interpreter trained on
the current annotations, ``status`` shows it. It is the one record of whether a round finished, so a
damaged one is refused with a message, never read as "no state" (that would export a new round).
"""

from __future__ import annotations

import json
from pathlib import Path

from dgan_al.errors import UserError
from dgan_al.files import atomic_write_json

STATE_FILE = "state.json"


def read_round_state(folder: Path) -> dict:
    """The round's state: {} when the folder has no state file; a ``UserError`` when the file is damaged."""
    path = Path(folder) / STATE_FILE
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise _damaged(path, f"cannot be read: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise _damaged(path, f"not UTF-8 text (byte {err.start})") from None
    try:
        state = json.loads(text)
    except json.JSONDecodeError as err:
        raise _damaged(path, f"not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    except (ValueError, RecursionError):
        raise _damaged(path, "not valid JSON") from None
    if not isinstance(state, dict) or not isinstance(state.get("stage", ""), str):
        raise _damaged(path, "not a dgan-al round state (an object with a text 'stage')")
    return state


def write_round_state(folder: Path, state: dict) -> None:
    atomic_write_json(Path(folder) / STATE_FILE, state)


def _damaged(path: Path, why: str) -> UserError:
    round_dir = path.parent
    return UserError(f"damaged ({why}): this is dgan-al's record of how far {round_dir.name} got, not an "
                     "annotation file; without it dgan-al cannot tell whether the round finished, so it changes "
                     "nothing", path=path,
                     fix=f"restore it from a backup; or move the folder {round_dir.name} out of rounds/ (keep any "
                         "annotation you finished there) and run again to redo that round; do not delete state.json "
                         "alone")
