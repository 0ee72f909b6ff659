"""The one error type for user mistakes.

A ``UserError`` is something the person running the tool can fix: a malformed file, an unknown label,
a checkpoint we refuse to read, a typo in the config. The CLI prints its message as one line (no
traceback) and exits with code 2. Library code raises it; it never prints.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A mistake in the user's input, with what is wrong, where, and how to fix it.

    ``path`` names the file concerned (if any); ``fix`` says what to do about it. ``str(err)`` is the
    complete one-line message.
    """

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None, fix: str | None = None):
        self.message = message
        self.path = Path(path) if path is not None else None
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.path}: {self.message}" if self.path is not None else self.message
        if self.fix:
            text += f" ({self.fix})"
        return text
