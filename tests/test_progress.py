"""Progress in a log: plain lines, at most one every few seconds, with rate and ETA."""

import io
import subprocess
import sys

from dgan_al.cli.progress import LineProgress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_line_progress_throttles_and_reports_rate_eta_and_the_end():
    out, clock = io.StringIO(), Clock()
    report = LineProgress(out, interval=5.0, clock=clock)
    report("scoring pool", 0, 100)  # first report of a task: a line
    for done in range(1, 100):
        clock.now = done * 0.5  # 2 images/s
        report("scoring pool", done, 100)
    clock.now = 50.0
    report("scoring pool", 100, 100)  # the end: a line, whatever the interval
    report("scoring pool", 100, 100)  # ...and only once
    lines = out.getvalue().splitlines()
    assert 10 <= len(lines) <= 12  # 50 s at one line per 5 s, plus the first and the last
    assert "scoring pool 0/100 (0%)" in lines[0]
    middle = lines[len(lines) // 2]
    assert "2.0/s" in middle and "eta" in middle
    assert lines[-1].endswith("done in 50s") and "100/100 (100%)" in lines[-1]


def test_line_progress_unknown_total_and_several_tasks():
    out, clock = io.StringIO(), Clock()
    report = LineProgress(out, interval=5.0, clock=clock)
    report("training", 1, None)
    clock.now = 1.0
    report("caching features", 0, 4)  # a new task always gets its first line
    report("training", 2, None)  # within the interval: nothing
    assert [line.split(" ", 1)[1] for line in out.getvalue().splitlines()] == ["training 1", "caching features 0/4 (0%)"]


def test_a_redirected_command_prints_progress_lines_while_it_runs(tmp_path):
    """The CLI's callback in a log is the line writer (rich would draw its bars only at exit)."""
    script = ("from dgan_al.cli.progress import progress_bars\n"
              "with progress_bars() as report:\n"
              "    print(type(report).__name__)\n"
              "    report('work', 0, 2); report('work', 2, 2)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "LineProgress"
    assert "work 0/2 (0%)" in done.stderr and "work 2/2 (100%)" in done.stderr
