"""Fault injection: kill -9 chains, damaged files, a full disk, concurrent commands, import fuzz.

    python benchmarks/faults.py [--kills 20] [--fuzz 250] [--seed 0] [--out /tmp/dgan-al-faults]

Runs the real commands as subprocesses on a small toy-faces workspace (settings printed first) and
prints one table: per group of faults, the trials, the runs that finished identical to an uninterrupted
reference run, clean refusals (exit 2, one message naming the file or the holder), tracebacks (must be
0), other wrong outcomes (must be 0) and the person's annotation files changed (must be 0).

- kill -9 chains: ``next-round`` and ``build-dataset`` killed at a random point of their own progress (often twice),
  then run to the end; the whole workspace / dataset folder must equal the reference (timestamps aside).
- damaged files: every corruption of issue 22 (derived state must be recomputed to the identical
  result, the person's or our records refused with a message, nothing changed), and issue 36's label of
  10^6 characters (refused in under 30 s, in one line under 300 characters; the note gives both).
- disk full: the workspace (next-round) or the dataset folder (build-dataset) on a small tmpfs, filled
  at several points of the run (needs root for ``mount``); after a refusal the tmpfs grows and the rerun
  must end identical.
- concurrent commands: two next-rounds, two builds into one folder, a build during a next-round, two
  shards of one build at once.
- import fuzz: mutated LabelMe files (tests/labelme_fuzz.py) judged against the real LabelMe; texts and
  keys of up to 10^6 characters among them (a refusal longer than 30 s or 5000 characters is wrong).

Not a test: it takes tens of minutes on 2 CPU cores (and longer when the machine is shared).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
POOL = 8
SMALL = {"run.chunk": 2, "run.batch": 2, "selection.centers": 2, "selection.annotate": 1, "selection.band": 0.5,
         "selection.score_pixels": "grid:4"}
BUILD_SIZE, BUILD_CHUNK = 12, 4
NEXT_ROUND = [sys.executable, "-m", "dgan_al", "next-round"]
GROUPS = ("fuzz", "damaged", "disk", "concurrent", "kill-next-round", "kill-build")
VOLATILE = {"times", "imported_at", "at", "since", "removed_at"}  # timestamps and durations
LONG_LABEL = "LabelMe label of 10^6 characters"  # refused in under 30 s with one line under 300 characters


def build_command(out: Path, shard: str | None = None) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--build-runner", str(out), str(BUILD_SIZE),
            str(BUILD_CHUNK)] + ([shard] if shard else [])


def build_runner(out: str, size: str, chunk: str, shard: str | None) -> None:
    """``build-dataset`` with a small chunk, through the CLI's one error exit (UserError -> exit 2)."""
    import typer

    from dgan_al.cli.app import handles_user_errors
    from dgan_al.workflows.build_dataset import build_dataset, merge_dataset, parse_shard
    from dgan_al.workspace.layout import Workspace

    def run():
        if shard == "merge":
            return merge_dataset(Path(out))
        return build_dataset(Workspace.find(Path.cwd()), Path(out), int(size), shard=parse_shard(shard),
                             chunk=int(chunk), workers=2)
    try:
        handles_user_errors(run)()
    except typer.Exit as exit:
        sys.exit(exit.exit_code)


# --- running and judging -------------------------------------------------------------------------

class Run:
    """One command in a subprocess; killed with SIGKILL after ``kill_after`` seconds, or as soon as
    ``kill_when()`` (polled every 20 ms) says so, whichever is given."""

    def __init__(self, cmd, cwd, kill_after=None, timeout=900, start=True, kill_when=None):
        self.cmd, self.cwd, self.killed = cmd, cwd, False
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.kill_after, self.kill_when, self.timeout = kill_after, kill_when, timeout

    def wait(self) -> "Run":
        if self.kill_after is not None:
            try:
                self.proc.wait(self.kill_after)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.killed = True
        elif self.kill_when is not None:
            while self.proc.poll() is None:
                if self.kill_when():
                    os.kill(self.proc.pid, signal.SIGKILL)
                    self.killed = True
                    break
                time.sleep(0.02)
        self.out, self.err = self.proc.communicate(timeout=self.timeout)
        self.rc, self.seconds = self.proc.returncode, time.perf_counter() - self.t0
        return self

    @property
    def traceback(self) -> bool:
        return not self.killed and ("Traceback" in self.err or self.rc not in (0, 2))

    def refused(self, *names) -> bool:
        return self.rc == 2 and "error:" in self.err and all(n in self.err for n in names)

    def message(self) -> str:
        return " ".join(self.err.split())[:300]


def run(cmd, cwd, kill_after=None, kill_when=None) -> Run:
    return Run(cmd, cwd, kill_after, kill_when=kill_when).wait()


def count_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def kill_moment(rng, target: Path, files_at_end: int):
    """A ``kill_when`` for one run, drawn from the run's own progress rather than from a clock (a busy
    machine stretches a run unpredictably): the run is killed right after the number of files under
    ``target`` first exceeds k, k uniform between its count now and the count a finished run leaves (the
    lowest draw kills during start-up, 0.2-2 s in); in half the trials a further 0-0.3 s later, so kills
    also land between writes."""
    start = count_files(target)
    k = rng.randint(start - 1, max(start, files_at_end - 1))
    delay = rng.uniform(0.2, 2.0) if k < start else (rng.uniform(0.0, 0.3) if rng.random() < 0.5 else 0.0)
    t_start, t_reached = time.perf_counter(), None

    def due() -> bool:
        nonlocal t_reached
        now = time.perf_counter()
        if t_reached is None and (k < start or count_files(target) > k):
            t_reached = now if k >= start else t_start
        return t_reached is not None and now - t_reached >= delay
    return due


def _normal(path: Path) -> bytes:
    """A file's bytes; JSON files without their timestamps and durations."""
    data = path.read_bytes()
    if path.suffix != ".json":
        return data
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return data

    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if k not in VOLATILE}
        if isinstance(o, list):
            return [strip(v) for v in o]
        return o
    return json.dumps(strip(obj), sort_keys=True).encode()


def digest(folder: Path, skip=()) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(_normal(p)).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not any(s in p.name for s in skip)}


def person_files(ws: Path) -> dict[str, str]:
    """The person's annotation files: every LabelMe JSON in the round folders that is ticked done or unrealistic."""
    out = {}
    for p in sorted((ws / "rounds").glob("round_*/annotate/*.json")):
        if p.name in ("selection.json", "state.json"):
            continue
        try:
            flags = json.loads(p.read_text()).get("flags") or {}
        except (ValueError, AttributeError, OSError, RecursionError):
            flags = {"done": True}  # a damaged one counts as the person's
        if flags.get("done") or flags.get("unrealistic"):
            out[str(p.relative_to(ws))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def changed_person_files(before: dict, ws: Path) -> int:
    now = {k: hashlib.sha256((ws / k).read_bytes()).hexdigest() if (ws / k).is_file() else None for k in before}
    return sum(now[k] != before[k] for k in before)


class Table:
    COLUMNS = ("trials", "identical", "refused", "tracebacks", "wrong", "annotations changed")

    def __init__(self):
        self.rows: dict[str, Counter] = defaultdict(Counter)
        self.seconds: dict[str, float] = defaultdict(float)
        self.notes: list[str] = []

    def add(self, group: str, outcome: str, note: str = "", changed: int = 0) -> None:
        row = self.rows[group]
        row["trials"] += 1
        row[outcome] += 1
        row["annotations changed"] += changed
        if outcome in ("tracebacks", "wrong"):
            self.notes.append(f"{group}: {outcome}: {note}")

    def print(self) -> None:
        width = max(len(g) for g in self.rows) + 2
        print("\n" + "group".ljust(width) + "".join(c.rjust(12) for c in (*self.COLUMNS, "minutes")))
        total = Counter()
        for group, row in self.rows.items():
            total.update(row)
            print(group.ljust(width) + "".join(str(row[c]).rjust(12) for c in self.COLUMNS)
                  + f"{self.seconds[group] / 60:12.1f}")
        print("total".ljust(width) + "".join(str(total[c]).rjust(12) for c in self.COLUMNS)
              + f"{sum(self.seconds.values()) / 60:12.1f}")
        for note in self.notes:
            print("  " + note)


# --- the workspaces ------------------------------------------------------------------------------

def make_base(folder: Path) -> Path:
    """A small workspace after init, with the oracle's annotation of round 000 (the mean image)."""
    from dgan_al.workflows.oracle import oracle_annotate
    from workspaces import make_workspace

    ws = make_workspace(folder / "base", pool_size=POOL, settings=SMALL)
    oracle_annotate(ws, 0)
    return folder / "base"


def copy(src: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, symlinks=True)
    return dst


def next_round_stage(ws: Path) -> str:
    """Where an interrupted next-round was, in words (for the coverage line)."""
    folder = ws / "rounds" / "round_001"
    try:
        stage = json.loads((folder / "state.json").read_text()).get("stage", "?")
    except (OSError, ValueError):
        return "before round 001"
    chunks = len(list((folder / "scores").glob("chunk_*.npz"))) if (folder / "scores").is_dir() else 0
    exported = len(list(folder.glob("annotate/s*.png")))
    if stage == "trained" and exported:
        return "exporting"
    return f"{stage}, {chunks} chunks" if stage == "trained" else stage


def build_stage(out: Path) -> str:
    if not (out / "dataset.json").is_file():
        return "interpreter" if (out / "interpreter.pt").is_file() else "start"
    if (out / "manifest.csv").is_file():
        return "merging"
    return f"{len(list((out / 'parts').glob('chunk_*.json')))} chunks"


# --- the groups of faults ------------------------------------------------------------------------

def kill_chains(table, rng, command, base, reference, workdir, n, stage_of, target, label, minutes=None):
    """``n`` trials: kill -9 at a random point of the run's own progress (``kill_moment``; a second time in
    half the trials), then run to the end.

    ``minutes``: start no trial after this long (a busy machine), the table shows how many ran."""
    stages = Counter()
    t0 = time.perf_counter()
    for trial in range(n):
        if minutes is not None and time.perf_counter() - t0 > 60 * minutes:
            table.notes.append(f"{label}: stopped after {trial} trials (--minutes {minutes})")
            break
        ws = copy(base, workdir / "trial")
        before = person_files(ws)
        kills = 1 + (rng.random() < 0.5)
        for _ in range(kills):
            r = run(command(ws), ws, kill_when=kill_moment(rng, target(ws), reference["files"]))
            if r.traceback:
                break
            stages[stage_of(target(ws)) if r.killed else "finished before the kill"] += 1
        final = r if r.traceback else run(command(ws), ws)
        if final.traceback:
            table.add(label, "tracebacks", final.message())
        elif final.rc != 0:
            table.add(label, "wrong", f"the resume failed: {final.message()}")
        elif digest(target(ws)) != reference["digest"]:
            diff = sorted(set(digest(target(ws)).items()) ^ set(reference["digest"].items()))[:3]
            table.add(label, "wrong", f"resume differs from the reference: {diff}")
        else:
            table.add(label, "identical", changed=changed_person_files(before, ws))
        row = table.rows[label]
        print(f"    {label} trial {trial + 1}: {kills} kill(s), " + ", ".join(f"{c} {row[c]}" for c in Table.COLUMNS)
              + f"  ({(time.perf_counter() - t0) / 60:.1f} min)", flush=True)
    table.notes.append(f"{label}: killed at " + ", ".join(f"{k} x{v}" for k, v in sorted(stages.items())))


def damaged_files(table, base, after_round, build_ref, workdir, nr_ref, ds_ref, only=""):
    """Every corruption of issue 22: derived state recomputed identically, records refused, nothing changed.

    ``only``: comma-separated parts of the case names to run (default: all)."""
    def wanted(name: str) -> bool:
        return not only or any(part in name for part in only.split(","))

    def resumable(ws: Path) -> None:  # round 001 interrupted after training (so it reads its derived state)
        state_path = ws / "rounds" / "round_001" / "state.json"
        state = json.loads(state_path.read_text())
        state["stage"] = "trained"
        state_path.write_text(json.dumps(state))

    def truncate(path: Path) -> None:
        path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])

    def garble(path: Path) -> None:
        path.write_bytes(os.urandom(path.stat().st_size))

    cache = lambda ws: next((ws / "rounds" / "cache").rglob("mean.pt"))  # noqa: E731
    recompute = {
        "score chunk truncated": lambda ws: truncate(ws / "rounds/round_001/scores/chunk_00001.npz"),
        "score chunk random bytes": lambda ws: garble(ws / "rounds/round_001/scores/chunk_00002.npz"),
        "pool latents truncated": lambda ws: truncate(ws / "rounds/pool/latents_s0.npy"),
        "mask PNG truncated": lambda ws: truncate(ws / "annotations/masks/mean.png"),
        "feature cache truncated": lambda ws: truncate(cache(ws)),
    }
    for name, damage in recompute.items():
        if not wanted(name):
            continue
        ws = copy(after_round, workdir / "trial")
        resumable(ws)
        before = person_files(ws)
        damage(ws)
        r = run(NEXT_ROUND, ws)
        outcome = "tracebacks" if r.traceback else "identical" if r.rc == 0 and digest(ws) == nr_ref else "wrong"
        table.add("damaged: derived state", outcome, f"{name}: rc {r.rc} {r.message()}", changed_person_files(before, ws))

    def edit(path: Path, change) -> None:
        raw = json.loads(path.read_text())
        change(raw)
        path.write_text(json.dumps(raw))

    mean = lambda ws: ws / "rounds/round_000/annotate/mean.json"  # noqa: E731
    refusals = {
        "selection.json truncated": (lambda ws: truncate(ws / "rounds/round_000/selection.json"), "selection.json"),
        "selection item without id": (lambda ws: edit(ws / "rounds/round_000/selection.json",
                                                      lambda r: r["items"][0].pop("id")), "selection.json"),
        "state.json garbled (finished round)": (lambda ws: truncate(ws / "rounds/round_000/state.json"), "state.json"),
        "LabelMe top level null": (lambda ws: mean(ws).write_text("null"), "mean.json"),
        "LabelMe top level []": (lambda ws: mean(ws).write_text("[]"), "mean.json"),
        "LabelMe top level string": (lambda ws: mean(ws).write_text('"done"'), "mean.json"),
        "LabelMe top level number": (lambda ws: mean(ws).write_text("3"), "mean.json"),
        "LabelMe top level {}": (lambda ws: mean(ws).write_text("{}"), "mean.json"),
        'LabelMe "done": "true"': (lambda ws: edit(mean(ws), lambda r: r["flags"].update(done="true")), "mean.json"),
        "LabelMe done and unrealistic": (lambda ws: edit(mean(ws), lambda r: r["flags"].update(unrealistic=True)),
                                         "mean.json"),
        "LabelMe nested 3000 deep": (lambda ws: mean(ws).write_text(
            mean(ws).read_text().replace('"imageData": null', '"imageData": ' + "[" * 3000 + "]" * 3000)), "mean.json"),
        "LabelMe imagePath 300 chars": (lambda ws: edit(mean(ws), lambda r: r.update(imagePath="x" * 300 + ".png")),
                                        "mean.json"),
        LONG_LABEL: (lambda ws: edit(mean(ws), lambda r: r["shapes"][0].update(label="a" * 1_000_000)), "mean.json"),
    }
    for name, (damage, named) in refusals.items():
        if not wanted(name):
            continue
        ws = copy(base, workdir / "trial")
        damage(ws)
        before, snapshot = person_files(ws), digest(ws)
        r = run(NEXT_ROUND, ws)
        ok = r.refused(named) and digest(ws) == snapshot
        if name == LONG_LABEL:  # issue 36: once 578 s and a line of 2,000,106 characters
            length = len(r.err.strip())
            table.notes.append(f"{LONG_LABEL}: refused in {r.seconds:.1f} s (the whole command), a message of "
                               f"{length} characters")
            ok = ok and length < 300 and r.seconds < 30
        table.add("damaged: records", "tracebacks" if r.traceback else "refused" if ok else "wrong",
                  f"{name}: rc {r.rc} {r.message()}", changed_person_files(before, ws))
    # a finished round 001 whose state is garbled: refused by next-round and by build-dataset
    for command, label in ((lambda ws: NEXT_ROUND, "next-round"), (lambda ws: build_command(ws / "data"), "build")):
        if not wanted(f"garbled round_001 state ({label})"):
            continue
        ws = copy(after_round, workdir / "trial")
        truncate(ws / "rounds/round_001/state.json")
        before, snapshot = person_files(ws), digest(ws)
        r = run(command(ws), ws)
        ok = r.refused("state.json", "round_001") and digest(ws, skip=("data",)) == snapshot
        table.add("damaged: records", "tracebacks" if r.traceback else "refused" if ok else "wrong",
                  f"garbled round_001 state ({label}): rc {r.rc} {r.message()}", changed_person_files(before, ws))
    # a truncated dataset temp file and score part left in the dataset folder: the resume ends identical
    if not wanted("dataset part + stale temp"):
        return
    ws = copy(after_round, workdir / "trial")
    out = copy(build_ref, ws / "data")
    (out / "manifest.csv").unlink()
    for p in list((out / "parts").glob("chunk_00001.json")):
        truncate(p)
    (out / f".interpreter.pt.{_dead_pid()}@{_host()}.x1y2z3.tmp").write_bytes(b"half an interpreter")
    r = run(build_command(out), ws)
    outcome = "tracebacks" if r.traceback else "identical" if r.rc == 0 and digest(out) == ds_ref else "wrong"
    table.add("damaged: derived state", outcome, f"dataset part + stale temp: rc {r.rc} {r.message()}")


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)


def _host() -> str:
    from dgan_al.files import _HOST

    return _HOST


def disk_full(table, base, after_round, workdir, nr_ref, ds_ref, levels):
    """The workspace / dataset folder on a tmpfs that fills up at several points of the run."""
    mount = workdir / "tmpfs"
    mount.mkdir(exist_ok=True)

    def mounted(size_kb: int) -> bool:
        return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mount)],
                              capture_output=True).returncode == 0

    def used_kb(folder: Path) -> int:
        return int(subprocess.run(["du", "-sk", str(folder)], capture_output=True, text=True).stdout.split()[0])

    if not mounted(1024):
        table.notes.append("disk full: cannot mount a tmpfs here (needs root): skipped")
        return
    subprocess.run(["umount", str(mount)], check=True)
    grow_nr = used_kb(workdir / "nr-ref") - used_kb(base)
    grow_ds = used_kb(workdir / "ds-ref" / "data")
    for what, src, grow, ref in (("next-round", base, grow_nr, nr_ref), ("build-dataset", after_round, grow_ds, ds_ref)):
        for fraction in levels:
            if what == "next-round":
                room = used_kb(src) + int(fraction * grow)
            else:
                room = int(fraction * grow)
            assert mounted(max(room, 64))
            try:
                if what == "next-round":
                    try:
                        ws = copy(src, mount / "ws")
                    except OSError:
                        table.notes.append(f"disk full: next-round at {fraction:.0%}: the workspace does not fit: skipped")
                        continue
                    before = person_files(ws)
                    command, target = NEXT_ROUND, ws
                else:
                    ws = copy(src, workdir / "trial")
                    before = person_files(ws)
                    command, target = build_command(mount / "data"), mount / "data"
                first = run(command, ws)
                refusal = first.refused("disk is full")
                if first.traceback:
                    table.add(f"disk full: {what}", "tracebacks", f"at {fraction:.0%}: {first.message()}")
                elif first.rc == 0 or refusal:
                    table.add(f"disk full: {what}", "refused" if refusal else "identical" if digest(target) == ref
                              else "wrong", f"at {fraction:.0%}: rc {first.rc} {first.message()}",
                              changed_person_files(before, ws))
                else:
                    table.add(f"disk full: {what}", "wrong", f"at {fraction:.0%}: rc {first.rc} {first.message()}")
                if refusal:  # room again: the rerun resumes and must end as the reference did
                    subprocess.run(["mount", "-o", f"remount,size={4 * (used_kb(src) + grow) + 8192}k", str(mount)],
                                   check=True)
                    second = run(command, ws)
                    outcome = "tracebacks" if second.traceback else \
                        "identical" if second.rc == 0 and digest(target) == ref else "wrong"
                    diff = sorted(set(digest(target).items()) ^ set(ref.items()))[:3]
                    table.add(f"disk full: {what}", outcome, f"resume after {fraction:.0%}: rc {second.rc} "
                              f"{second.message()} {diff}", changed_person_files(before, ws))
            finally:
                subprocess.run(["umount", str(mount)], check=False)


def concurrent(table, base, after_round, workdir, nr_ref, ds_ref, rng, trials):
    """Two commands at once: one refuses with 'busy' (or both go on, for shards), the result is the reference."""
    for trial in range(trials):
        # two next-rounds
        ws = copy(base, workdir / "trial")
        before = person_files(ws)
        a = Run(NEXT_ROUND, ws)
        time.sleep(rng.uniform(0.0, 3.0))
        b = Run(NEXT_ROUND, ws)
        a.wait(), b.wait()
        _judge_pair(table, "concurrent: 2 next-rounds", a, b, digest(ws) == nr_ref, changed_person_files(before, ws))
        # two builds into one folder
        ws = copy(after_round, workdir / "trial")
        a = Run(build_command(ws / "data"), ws)
        time.sleep(rng.uniform(0.0, 3.0))
        b = Run(build_command(ws / "data"), ws)
        a.wait(), b.wait()
        _judge_pair(table, "concurrent: 2 builds, one --out", a, b, digest(ws / "data") == ds_ref, 0)
        # a build while next-round imports and trains (annotations of round 001 are waiting)
        ws = copy(after_round, workdir / "trial")
        from dgan_al.workflows.oracle import oracle_annotate
        from dgan_al.workspace.layout import Workspace

        oracle_annotate(Workspace.find(ws), 1)
        before = person_files(ws)
        a = Run(NEXT_ROUND, ws)
        time.sleep(rng.uniform(0.5, 4.0))
        b = Run(build_command(ws / "data"), ws)
        a.wait(), b.wait()
        busy_ok = (a.rc == 0 and b.refused("busy", "next-round")) or (b.rc == 0 and a.refused("busy", "build-dataset"))
        if a.traceback or b.traceback:
            table.add("concurrent: build during next-round", "tracebacks", a.message() + " | " + b.message())
        else:
            table.add("concurrent: build during next-round", "refused" if busy_ok else "wrong",
                      f"rc {a.rc}/{b.rc}: {a.message()} | {b.message()}", changed_person_files(before, ws))
    # two shards of one build at once (readers share the workspace), then the merge
    ws = copy(after_round, workdir / "trial")
    a, b = Run(build_command(ws / "data", "0/2"), ws), Run(build_command(ws / "data", "1/2"), ws)
    a.wait(), b.wait()
    m = run(build_command(ws / "data", "merge"), ws)
    same = {k: v for k, v in digest(ws / "data").items() if k != "dataset.json"} == \
        {k: v for k, v in ds_ref.items() if k != "dataset.json"}
    bad = [r for r in (a, b, m) if r.traceback]
    table.add("concurrent: 2 shards at once", "tracebacks" if bad else
              "identical" if a.rc == b.rc == m.rc == 0 and same else "wrong",
              f"rc {a.rc}/{b.rc}/{m.rc}: {a.message()} {b.message()} {m.message()}")


def _judge_pair(table, group, a, b, identical, changed):
    if a.traceback or b.traceback:
        table.add(group, "tracebacks", a.message() + " | " + b.message())
        return
    one_busy = sorted([a.rc, b.rc]) == [0, 2] and "busy" in (a.err + b.err)
    both_done = a.rc == b.rc == 0  # the second started after the first had finished
    table.add(group, ("refused" if one_busy else "identical") if (one_busy or both_done) and identical else "wrong",
              f"rc {a.rc}/{b.rc}: {a.message()} | {b.message()}", changed)


def fuzz(table, base, workdir, n, seed):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from labelme_fuzz import judge, mutations

    import loguru

    loguru.logger.disable("labelme")
    original = json.loads((base / "rounds/round_000/annotate/mean.json").read_text())
    kinds = Counter()

    @settings(max_examples=n, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def one(data):
        t0 = time.perf_counter()
        try:
            outcome, detail = judge(base, workdir / "fuzz", data.draw(mutations(original)))
        except Exception as err:  # noqa: BLE001 - a traceback is what is being counted
            outcome, detail = "tracebacks", repr(err)
        if time.perf_counter() - t0 > 30:
            outcome, detail = "wrong", f"took {time.perf_counter() - t0:.0f} s"
        kinds[outcome] += 1
        group = "import fuzz (mutated LabelMe)"
        if outcome in ("refused", "tracebacks") or outcome.startswith("wrong"):
            table.add(group, "refused" if outcome == "refused" else "tracebacks" if outcome == "tracebacks" else "wrong",
                      f"{outcome}: {detail}")
        else:
            table.add(group, "identical")  # a correct acceptance (or pending / skipped)

    one()
    table.notes.append("import fuzz outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
                       + " (identical = accepted with LabelMe's own mask, or pending / skipped)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--build-runner":
        build_runner(*sys.argv[2:5], sys.argv[5] if len(sys.argv) > 5 else None)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="kill -9 trials per command")
    parser.add_argument("--fuzz", type=int, default=250, help="mutated LabelMe files")
    parser.add_argument("--concurrent", type=int, default=1, help="trials per pair of concurrent commands")
    parser.add_argument("--disk-levels", default="0.1,0.5,0.9", help="fractions of the run's writes that fit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=None, help="start no kill trial after this many minutes")
    parser.add_argument("--only", default="", help="damaged files: run only the cases whose names contain one of these")
    parser.add_argument("--reuse", action="store_true", help="reuse the base workspace and references in --out")
    parser.add_argument("--groups", default=",".join(GROUPS), help="which groups to run (comma-separated): "
                        "several processes can split them")
    parser.add_argument("--out", type=Path, default=Path("/tmp/dgan-al-faults"))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = args.out.resolve()
    if work.exists() and not args.reuse:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    print(f"settings: toy-faces, pool {POOL} (chunks of 2, batch 2, band 50%, 2 centres), ensemble 2 members x 1 "
          f"epoch, score grid:4, dataset {BUILD_SIZE} samples in chunks of {BUILD_CHUNK}; kills {args.kills} per command, fuzz {args.fuzz}, "
          f"concurrent {args.concurrent}, disk levels {args.disk_levels}, seed {args.seed}; work in {work}", flush=True)
    table = Table()
    refs = json.loads((work / "refs.json").read_text()) if args.reuse and (work / "refs.json").is_file() else {}
    base, nr, ds_ws = work / "base", work / "nr-ref", work / "ds-ref"
    if "next-round" not in refs:
        make_base(work)
        copy(base, nr)
        r = run(NEXT_ROUND, nr)
        assert r.rc == 0, r.err
        refs["next-round"] = r.seconds
    nr_ref = {"seconds": refs["next-round"], "digest": digest(nr), "files": count_files(nr)}
    if "build-dataset" not in refs and set(args.groups.split(",")) - {"fuzz", "kill-next-round"}:
        copy(nr, ds_ws)  # the other groups need a reference dataset
        r = run(build_command(ds_ws / "data"), ds_ws)
        assert r.rc == 0, r.err
        refs["build-dataset"] = r.seconds
    ds_ref = {"seconds": refs.get("build-dataset", 0.0), "digest": digest(ds_ws / "data") if ds_ws.is_dir() else {},
              "files": count_files(ds_ws / "data")}
    (work / "refs.json").write_text(json.dumps(refs))
    print(f"reference runs: next-round {nr_ref['seconds']:.0f} s, build-dataset {ds_ref['seconds']:.0f} s", flush=True)

    def timed(group_prefix, fn, *a):
        t0 = time.perf_counter()
        known = set(table.rows)
        try:
            fn(*a)
        except Exception as err:  # noqa: BLE001 - a bug of this script must not lose the other groups
            import traceback

            traceback.print_exc()
            table.notes.append(f"{group_prefix}: the benchmark itself failed: {err!r}")
        new = [g for g in table.rows if g not in known] or [group_prefix]
        for g in new:
            table.seconds[g] += (time.perf_counter() - t0) / len(new)
        print(f"  {group_prefix}: done in {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
        table.print()
        sys.stdout.flush()

    groups = {
        "fuzz": lambda: timed("fuzz", fuzz, table, base, work, args.fuzz, args.seed),
        "damaged": lambda: timed("damaged", damaged_files, table, base, nr, ds_ws / "data", work, nr_ref["digest"],
                                 ds_ref["digest"], args.only),
        "disk": lambda: timed("disk full", disk_full, table, base, nr, work, nr_ref["digest"], ds_ref["digest"],
                              [float(x) for x in args.disk_levels.split(",")]),
        "concurrent": lambda: timed("concurrent", concurrent, table, base, nr, work, nr_ref["digest"], ds_ref["digest"],
                                    rng, args.concurrent),
        "kill-next-round": lambda: timed("kill next-round", kill_chains, table, rng, lambda ws: NEXT_ROUND, base, nr_ref,
                                         work, args.kills, next_round_stage, lambda ws: ws, "kill -9: next-round", args.minutes),
        "kill-build": lambda: timed("kill build", kill_chains, table, rng, lambda ws: build_command(ws / "data"), nr,
                                    ds_ref, work, args.kills, build_stage, lambda ws: ws / "data", "kill -9: build-dataset",
                                    args.minutes),
    }
    for name in args.groups.split(","):
        groups[name]()
    print(f"wall time {(time.perf_counter() - t_start) / 60:.1f} min")


if __name__ == "__main__":
    main()
