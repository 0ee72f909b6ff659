"""The one error type for user mistakes.

A ``UserError`` is something the person running the tool can fix: a malformed file, an unknown label,
a checkpoint we refuse to read, a typo in the config. The CLI prints its message as one line (no
traceback) and exits with code 2. Library code raises it; it never prints.
"""

from __future__ import annotations

from pathlib import Path


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
