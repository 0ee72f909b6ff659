"""The one error type for user mistakes.

A ``UserError`` is something the person running the tool can fix: a malformed file, an unknown label,
a checkpoint we refuse to read, a typo in the config. The CLI prints its message as one line (no
traceback) and exits with code 2. Library code raises it; it never prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class UserError(Exception):
    """A mistake in the user's input, with what is wrong, where, and how to fix it.

    ``path`` names the file concerned (if any); ``fix`` says what to do about it; ``setting`` names the
    setting or argument at fault by its Python name (``size``, ``pool_size``), which the CLI shows as its
    flag (``--size``). ``str(err)`` is the complete one-line message.
    """

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None, fix: str | None = None,
                 setting: str | None = None):
        self.message = message
        self.path = Path(path) if path is not None else None
        self.fix = fix
        self.setting = setting
        super().__init__(self.render())

    def render(self, setting_name: str | None = None) -> str:
        """The one-line message; ``setting_name`` is how to call the setting (default: its Python name)."""
        text = self.message
        if self.setting is not None:
            text = f"{setting_name or self.setting}: {text}"
        if self.path is not None:
            text = f"{self.path}: {text}"
        if self.fix:
            text += f" ({self.fix})"
        return text


def quote(value: Any, limit: int = 60) -> str:
    """``value`` quoted for a message, at most about ``limit`` characters: ``'abcd…' (1000000 characters)``.

    Text comes from files and command lines, so it can be any length; a message quotes a cut of it and
    says how long it was. Other values are shown as their repr, cut the same way.
    """
    if not isinstance(value, str):
        text = repr(value)
        return text if len(text) <= limit else text[: limit - 1] + "…"
    if len(value) <= limit and len(repr(value)) <= limit + 2:
        return repr(value)
    keep = min(len(value), limit)
    while keep and len(repr(value[:keep])) > limit + 2:  # escapes (\x00, \U0001f600) count as they print
        keep -= 1
    shown = repr(value[:keep])
    return f"{shown[:-1]}…{shown[-1]} ({len(value)} characters)"
