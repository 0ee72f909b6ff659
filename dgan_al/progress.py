"""Progress reporting without a UI: library code calls a callback, the CLI draws the bars.

A callback is ``report(task, done, total)``: ``task`` a short human label ("training", "scoring pool"),
``done`` units finished so far, ``total`` the number expected (or ``None`` if unknown). Library code
never prints; it calls the callback it was given, or ``silent`` by default.
"""

from __future__ import annotations

from typing import Callable, Optional

ProgressCallback = Callable[[str, int, Optional[int]], None]


def silent(task: str, done: int, total: int | None) -> None:
    """The default callback: report nothing."""
