"""Progress for the library's ``report(task, done, total)`` callbacks: rich bars on a terminal, plain lines
in a log (output redirected to a file, a cluster job, ``nohup``, CI), where bars would only be drawn at exit.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TextIO

import typer

from rich.progress import (
    BarColumn,
    ProgressColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from dgan_al.cli.app import err_console
from dgan_al.progress import ProgressCallback, silent


class RateColumn(ProgressColumn):
    """Units per second (images/s, samples/s), from rich's running speed estimate."""

    def render(self, task):  # type: ignore[override]
        from rich.text import Text

        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f}/s" if speed else "", style="cyan")


LOG_INTERVAL_S = 5.0  # at most one progress line this often in a log (plus each task's first and last)


class LineProgress:
    """A ``report`` callback that writes plain lines: stage, done/total, percent, rate and ETA.

    A line when a task starts, when it finishes (done == total), and otherwise at most one every
    ``interval`` seconds across all tasks. The rate counts from the task's first report; a task whose count
    goes back (the same work run again) starts over, so its rate and ETA are its own.
    """

    def __init__(self, stream: TextIO, interval: float = LOG_INTERVAL_S, clock: Callable[[], float] = time.monotonic):
        self.stream, self.interval, self.clock = stream, interval, clock
        self.started: dict[str, tuple[float, int]] = {}  # task -> (time, done) of its first report
        self.last_done: dict[str, int] = {}
        self.finished: set[str] = set()
        self.last_line = -float("inf")

    def __call__(self, task: str, done: int, total: int | None) -> None:
        now = self.clock()
        first = task not in self.started or done < self.last_done[task]
        self.last_done[task] = done
        if first:
            self.started[task] = (now, done)
            self.finished.discard(task)
        end = total is not None and done >= total
        if end and task in self.finished:
            return
        if not (first or end or now - self.last_line >= self.interval):
            return
        if end:
            self.finished.add(task)
        self.last_line = now
        self.stream.write(self.line(task, done, total, now) + "\n")
        self.stream.flush()

    def line(self, task: str, done: int, total: int | None, now: float) -> str:
        t0, done0 = self.started[task]
        elapsed = now - t0
        rate = (done - done0) / elapsed if elapsed > 0 and done > done0 else None
        parts = [time.strftime("%H:%M:%S"), task, f"{done}/{total}" if total is not None else str(done)]
        if total:
            parts.append(f"({100 * done / total:.0f}%)")
        if rate:
            parts.append(f"{rate:.1f}/s")
        if total is not None and done >= total:
            parts.append(f"done in {_duration(elapsed)}")
        elif rate and total is not None:
            parts.append(f"eta {_duration((total - done) / rate)}")
        return " ".join(parts)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@contextmanager
def progress_bars() -> Iterator[ProgressCallback]:
    """Yield a callback that draws one bar per task name, with ETA and rate (plain lines in a log)."""
    if not err_console.is_terminal:
        yield LineProgress(sys.stderr)
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as bars:
        tasks: dict[str, int] = {}

        def report(task: str, done: int, total: int | None) -> None:
            if task not in tasks:
                tasks[task] = bars.add_task(task, total=total)
            elif done < bars.tasks[tasks[task]].completed:  # the same work again: a fresh rate and ETA
                bars.reset(tasks[task], total=total, completed=done)
            bars.update(tasks[task], completed=done, total=total)

        yield report


@contextmanager
def rank_progress() -> Iterator[tuple[bool, ProgressCallback]]:
    """Around a command that may run under torchrun: yields (reports, callback).

    Alone: True and the bars. Under torchrun it joins the job (``distributed.launched``): rank 0 draws the bars
    (counting every rank's work), the other ranks print nothing but errors, and a rank stopped by another
    rank's failure exits with that rank's code without a message of its own.
    """
    from dgan_al import distributed

    try:
        with distributed.launched() as job:
            if job is not None and job.rank > 0:
                yield False, silent
            else:
                with progress_bars() as report:
                    yield True, report
    except distributed.PeerFailed as err:
        raise typer.Exit(code=err.exit_code) from None
