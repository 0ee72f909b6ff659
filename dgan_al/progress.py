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


def prefixed(progress: ProgressCallback, prefix: str) -> ProgressCallback:
    """``progress`` with every task name prefixed (``"fold 2/5: "``): a task run once per fold gets its own
    bar, rate and ETA instead of restarting the previous fold's."""
    if progress is silent:
        return silent
    return lambda task, done, total: progress(prefix + task, done, total)
