"""Benchmark: build-dataset and next-round's pool scoring under torchrun against one process, same work.

    python benchmarks/bench_distributed.py                                # this CPU: 1x1, 1x2 threads, 2x1 ranks
    python benchmarks/bench_distributed.py --size 256 --pool 512 --repeats 3
    python benchmarks/bench_distributed.py --device cuda --ranks 8 --size 4096 --pool 8192 --chunk 256   # a GPU node

Each configuration runs the real command in a fresh process, as a user would:
  1 process x 1 thread     OMP_NUM_THREADS=1 python -m dgan_al ...
  1 process x N threads    OMP_NUM_THREADS=N python -m dgan_al ...             (CPU only)
  N processes x 1 thread   OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node N -m dgan_al ...
(on CUDA: one process on one GPU against N ranks on N GPUs). The work: ``build-dataset --size S`` (toy-faces,
the default 10-member interpreter of round 001, PNGs and masks written) and ``next-round`` resuming a round
whose interpreter is trained, so that it scores the pool (P latents), selects and exports.
Printed per configuration: the wall time of the whole command (start-up included) and the time of the part
that is split (samples/s of the build, the "score" stage of next-round, both as rank 0 reports them for the
whole job); then the ratios against the N-rank run, the median over the repeats and their range. The
one-thread build and the torchrun build are also compared byte for byte.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def prepare(root: Path, pool: int, chunk: int) -> Path:
    """A toy-faces workspace (default settings, pool in chunks of ``chunk``) whose round 001 stopped right after
    training: a next-round on a copy scores the whole pool with that interpreter; build-dataset uses it too."""
    import torch

    from dgan_al.workflows.init import init_workspace
    from dgan_al.workflows.next_round import next_round
    from dgan_al.workflows.oracle import oracle_annotate
    from dgan_al.workspace.config import CONFIG_NAME, load_config, render_config
    from dgan_al.workspace.layout import Workspace

    torch.set_num_threads(1)
    init_workspace(root, pool_size=pool)
    config = load_config(root / CONFIG_NAME)
    config.run.chunk = chunk
    (root / CONFIG_NAME).write_text(render_config(config.validate()))
    oracle_annotate(Workspace.find(root), 0)

    def stop_at_scoring(task, done, total):
        if task == "scoring pool":
            raise KeyboardInterrupt

    try:
        next_round(Workspace.find(root), progress=stop_at_scoring)
    except KeyboardInterrupt:
        pass
    state = json.loads((root / "rounds/round_001/state.json").read_text())
    assert state["stage"] == "trained", state
    return root


def command(kind: str, ranks: int) -> tuple[list[str], dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": str(ranks if kind == "threads" else 1)}
    if kind == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
                "-m", "dgan_al"], env
    return [sys.executable, "-m", "dgan_al"], env


def run(kind: str, ranks: int, args: list[str]) -> tuple[float, str]:
    cmd, env = command(kind, ranks)
    t0 = time.perf_counter()
    done = subprocess.run(cmd + args, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd + args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return wall, done.stdout


def build_once(ws: Path, out: Path, kind: str, ranks: int, a) -> tuple[float, float]:
    wall, text = run(kind, ranks, ["build-dataset", "-w", str(ws), "--out", str(out), "--size", str(a.size),
                                   "--chunk", str(a.chunk), "--device", a.device])
    rate = float(re.search(r"\(([\d.]+) samples/s\)", text).group(1))
    return wall, a.size / rate  # seconds of the generating part, for the whole job


def score_once(ws: Path, scratch: Path, kind: str, ranks: int, a) -> tuple[float, float]:
    copy = scratch / "round"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(ws, copy)
    wall, _ = run(kind, ranks, ["next-round", "-w", str(copy), "--device", a.device])
    return wall, json.loads((copy / "rounds/round_001/state.json").read_text())["times"]["score"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=48, help="build-dataset samples")
    parser.add_argument("--pool", type=int, default=160, help="pool latents scored by next-round (>= ~130 for the default 12 centres)")
    parser.add_argument("--chunk", type=int, default=8, help="chunk of both (the unit the ranks split)")
    parser.add_argument("--ranks", type=int, default=2, help="torchrun processes (and threads of the 1-process run)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (one GPU per rank)")
    parser.add_argument("--workdir", type=Path, default=None)
    a = parser.parse_args()

    scratch = a.workdir or Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    t_start = time.perf_counter()
    ws = prepare(scratch / "ws", a.pool, a.chunk)
    print(f"prepared the workspace in {time.perf_counter() - t_start:.0f} s ({scratch})")
    configs = [("plain", 1, "1 process x 1 thread")]
    if a.device == "cpu":
        configs.append(("threads", a.ranks, f"1 process x {a.ranks} threads"))
    configs.append(("torchrun", a.ranks, f"{a.ranks} processes x 1 thread (torchrun)"))
    results: dict[str, dict[str, list]] = {label: {"build": [], "score": []} for _, _, label in configs}
    for repeat in range(a.repeats):
        for kind, ranks, label in configs:
            out = scratch / f"data-{kind}"
            shutil.rmtree(out, ignore_errors=True)
            results[label]["build"].append(build_once(ws, out, kind, ranks, a))
            results[label]["score"].append(score_once(ws, scratch, kind, ranks, a))
            (bw, bg), (rw, rs) = results[label]["build"][-1], results[label]["score"][-1]
            print(f"repeat {repeat + 1}: {label}: build {bw:.1f} s (generating {bg:.1f} s), "
                  f"next-round {rw:.1f} s (scoring {rs:.1f} s)", flush=True)
    same = snapshot(scratch / "data-plain") == snapshot(scratch / "data-torchrun")
    print(f"\nbuild-dataset {a.size} samples, next-round scoring {a.pool} latents, chunks of {a.chunk}, device "
          f"{a.device}, {a.repeats} repeat(s); torchrun build byte-identical to the 1-thread build: {same}")
    dist_label = configs[-1][2]
    print(f"{'configuration':36} {'build wall':>11} {'generating':>11} {'round wall':>11} {'scoring':>9}")
    for _, _, label in configs:
        r = results[label]
        cells = [statistics.median(x[i] for x in r[w]) for w in ("build", "score") for i in (0, 1)]
        print(f"{label:36} " + " ".join(f"{c:10.1f}s" if j != 3 else f"{c:8.1f}s" for j, c in enumerate(cells)))
    print(f"\nratio: time of the configuration / time of {dist_label} (median [min, max] over repeats, "
          "paired by repeat)")
    for _, _, label in configs[:-1]:
        line = []
        for work, part, name in (("build", 0, "build wall"), ("build", 1, "generating"), ("score", 0, "round wall"),
                                 ("score", 1, "scoring")):
            ratios = [x[part] / y[part] for x, y in zip(results[label][work], results[dist_label][work]) if y[part] > 0]
            if ratios:
                line.append(f"{name} {statistics.median(ratios):.2f}x [{min(ratios):.2f}, {max(ratios):.2f}]")
        print(f"  {label}: " + "; ".join(line))
    print(f"\nwhole benchmark: {time.perf_counter() - t_start:.0f} s")
    print("On a GPU node: python benchmarks/bench_distributed.py --device cuda --ranks 8 --size 4096 --pool 8192 "
          "--chunk 256")
    if a.workdir is None:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
