"""Benchmark: what keypoint heads cost, against the parts-only interpreter (issue 32, item 3).

    python benchmarks/bench_keypoints.py                 # ~1-2 minutes on a 2-core CPU
    python benchmarks/bench_keypoints.py --threads 2 --images 64 --repeats 3

On a toy-faces-sized feature stack (the toy-faces generator's 12 layers, 1040 channels, 4 to 128 px, 128 x 128
label pixels; random float16 maps: the cost does not depend on the values), 10 members at the paper's
(128, 32), 4 classes, 10 keypoints (sigma 2, 32 disc pixels per point):

1. Training, on 7 annotated images (the seed set's size), ``max_epochs`` epochs with the stopping rule off:
   parts only; parts + heads as extra outputs of each member (the design chosen); a separate keypoint
   ensemble of the same size (the paper's way), timed as a second fit on the same pool: its trunk is the
   same network, so its cost is that of the heads fit (a few class logits more or less).
2. Prediction on a ``--images`` batch through the fast path (``PixelEnsemble.predict``): parts only,
   parts + heads (peaks, confidence and spread included), and parts + a separate ensemble (= the parts
   prediction plus a second full prediction: its first layer, the expensive part, is not shared).
   Runs alternate and the median of ``--repeats`` is printed, per image, with the ratios.
3. ``--round N``: instead of 1 and 2, a whole pool round through the real ``next-round`` (import, train,
   score the pool, select, export with the pre-fill), on two toy-faces workspaces with an N-image pool and
   the default settings, parts only and with toy-faces' 10 keypoint names ([keypoints] prefill_confidence
   0, so every point is pre-filled), each after the oracle annotated round 000 (the mean image, with its
   points in the keypoint workspace). Each repeat copies the annotated workspace and runs next-round on
   it (feature cache and pool scores computed afresh); runs alternate, and the median per stage is printed
   with the ratio heads / parts.

    python benchmarks/bench_keypoints.py --round 512 --repeats 3

4. ``--build N``: instead, ``build-dataset`` of N samples on two toy-faces workspaces (default settings; parts
   only, and toy-faces' 10 keypoint names, whose dataset also gets keypoints.json), each after the oracle
   annotated round 000 (imported; a first 1-sample build trains and pins the interpreter, timed once). Each
   repeat builds into a new folder holding that interpreter; runs alternate; per stage (generate: the
   samples, their PNGs and chunk records; merge: the filter, manifest, contact sheet and keypoints.json) the
   median wall and process-CPU seconds (CPU: less disturbed by other processes on a shared machine) are
   printed with the ratio heads / parts.

    python benchmarks/bench_keypoints.py --build 512 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dgan_al.geometry import LabelGeometry  # noqa: E402
from dgan_al.interpreter import PixelEnsemble  # noqa: E402

CHANNELS = [128, 128, 128, 128, 128, 128, 64, 64, 48, 48, 24, 24]  # toy-faces' feature_channels
SIZES = [4, 4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128]
GEOMETRY = LabelGeometry.full(128, 128)
CLASSES = ["background", "skin", "hair", "eye"]
KEYPOINTS = [f"kp{i}" for i in range(10)]


def random_maps(n: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, c, s, s, generator=gen).half() for c, s in zip(CHANNELS, SIZES)]


def training_items(n: int, seed: int):
    rng = np.random.default_rng(seed)
    maps = random_maps(n, seed)
    items = []
    for i in range(n):
        mask = np.zeros((128, 128), np.uint8)  # blobby classes: quadrants with a few discs
        mask[:64, 64:] = 1
        mask[64:, :] = 2
        yy, xx = np.mgrid[:128, :128]
        for _ in range(4):
            cy, cx, r = rng.integers(10, 118, 2).tolist() + [int(rng.integers(4, 12))]
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 3
        points = {name: [float(x), float(y), 2] for name, (x, y) in zip(KEYPOINTS, rng.uniform(5, 122, (10, 2)))}
        items.append(([m[i] for m in maps], mask, points))
    return items


def ensemble(keypoints: bool, epochs: int) -> PixelEnsemble:
    return PixelEnsemble(CHANNELS, CLASSES, n_members=10, generator="bench", max_epochs=epochs, tol=-float("inf"),
                         keypoints=KEYPOINTS if keypoints else (), sigma=2.0, keypoint_pixels=32)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def pool_round(pool: int, repeats: int) -> None:
    """A next-round on a ``pool``-image toy-faces pool, parts only against parts + keypoint heads."""
    import shutil
    import tempfile

    from dgan_al.generators.toy_faces import KEYPOINTS as TOY_KEYPOINTS
    from dgan_al.workflows.init import init_workspace
    from dgan_al.workflows.next_round import next_round
    from dgan_al.workflows.oracle import oracle_annotate
    from dgan_al.workspace.config import CONFIG_NAME, load_config, render_config
    from dgan_al.workspace.layout import Workspace

    root = Path(tempfile.mkdtemp(prefix="bench_keypoints_"))
    try:
        for name in ("parts", "heads"):
            ws = init_workspace(root / name, pool_size=pool,
                                keypoints=list(TOY_KEYPOINTS) if name == "heads" else None).workspace
            if name == "heads":
                config = load_config(ws.config_path)
                config.keypoints.prefill_confidence = 0.0
                (ws.config_path).write_text(render_config(config.validate()))
            oracle_annotate(Workspace.find(root / name), 0)
        config = Workspace.find(root / "heads").config
        print(f"next-round on a {pool}-image toy-faces pool, defaults ({config.ensemble.members} members, "
              f"{config.ensemble.epochs} epochs, score_pixels {config.selection.score_pixels}); heads: "
              f"{len(TOY_KEYPOINTS)} keypoints, all pre-filled")
        stages = ("train", "score", "select", "export", "total")
        times = {"parts": {k: [] for k in stages}, "heads": {k: [] for k in stages}}
        for repeat in range(repeats):
            for name in ("parts", "heads"):
                run = root / f"{name}_run{repeat}"
                shutil.copytree(root / name, run)
                start = time.perf_counter()
                result = next_round(Workspace.find(run))
                total = time.perf_counter() - start
                for k in stages[:-1]:
                    times[name][k].append(result.times[k])
                times[name]["total"].append(total)
                shutil.rmtree(run)
        print(f"median of {repeats} (runs alternate), seconds:")
        for k in stages:
            parts, heads = (statistics.median(times[n][k]) for n in ("parts", "heads"))
            print(f"  {k:7s} parts {parts:7.2f}   heads {heads:7.2f}   ratio {heads / parts:.3f}")
        print(f"  all totals: parts {[round(t, 2) for t in times['parts']['total']]}, "
              f"heads {[round(t, 2) for t in times['heads']['total']]}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def dataset_build(size: int, repeats: int) -> None:
    """build-dataset of ``size`` samples, parts only against parts + 10 keypoint heads (keypoints.json too)."""
    import shutil
    import tempfile

    from dgan_al.generators.toy_faces import KEYPOINTS as TOY_KEYPOINTS
    from dgan_al.workflows.build_dataset import build_dataset
    from dgan_al.workflows.importing import import_annotations
    from dgan_al.workflows.init import init_workspace
    from dgan_al.workflows.interpreter import INTERPRETER_FILE
    from dgan_al.workflows.oracle import oracle_annotate
    from dgan_al.workspace.annotations import AnnotationStore
    from dgan_al.workspace.layout import Workspace

    def build(name: str, out: Path, n: int) -> dict:
        """One build; wall and process-CPU seconds per stage (marked by the first progress call of each)."""
        marks = {}

        def progress(task, done, total):
            stage = {"generating samples": "generate", "merging": "merge"}.get(task)
            if stage:
                marks.setdefault(stage, (time.perf_counter(), time.process_time()))

        begin = (time.perf_counter(), time.process_time())
        result = build_dataset(Workspace.find(root / name), out, n, progress=progress)
        end = (time.perf_counter(), time.process_time())
        assert result.merge is not None and (out / "keypoints.json").is_file() == (name == "heads")
        edges = {"train": (begin, marks["generate"]), "generate": (marks["generate"], marks["merge"]),
                 "merge": (marks["merge"], end), "total": (begin, end)}
        return {k: (b[0] - a[0], b[1] - a[1]) for k, (a, b) in edges.items()}

    root = Path(tempfile.mkdtemp(prefix="bench_keypoints_build_"))
    try:
        trained = {}
        for name in ("parts", "heads"):
            init_workspace(root / name, pool_size=16, keypoints=list(TOY_KEYPOINTS) if name == "heads" else None)
            ws = Workspace.find(root / name)
            oracle_annotate(ws, 0)
            import_annotations(ws, AnnotationStore(ws.annotations_dir))
            trained[name] = build(name, root / f"{name}_pinned", 1)["train"]  # trains and pins the interpreter
        config = Workspace.find(root / "heads").config
        print(f"build-dataset of {size} toy-faces samples, defaults ({config.ensemble.members} members, "
              f"{config.ensemble.epochs} epochs, batch {config.run.batch}, 4 PNG threads); heads: "
              f"{len(TOY_KEYPOINTS)} keypoints, keypoints.json written; torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads")
        print(f"training the interpreter on the one annotation (once): parts {trained['parts'][0]:.2f} s, heads "
              f"{trained['heads'][0]:.2f} s (process CPU {trained['parts'][1]:.2f} vs {trained['heads'][1]:.2f} s)")
        stages = ("generate", "merge", "total")
        times = {"parts": [], "heads": []}
        for repeat in range(repeats):
            for name in ("parts", "heads"):
                out = root / f"{name}_data{repeat}"
                out.mkdir()
                shutil.copy(root / f"{name}_pinned" / INTERPRETER_FILE, out / INTERPRETER_FILE)  # as a resume finds it
                times[name].append(build(name, out, size))
                shutil.rmtree(out)
        print(f"median of {repeats} (runs alternate, each into a new folder with the pinned interpreter), seconds:")
        for k in stages:
            for clock, what in ((0, "wall"), (1, "CPU ")):
                parts, heads = (statistics.median(t[k][clock] for t in times[n]) for n in ("parts", "heads"))
                print(f"  {k:8s} {what} parts {parts:7.2f}   heads {heads:7.2f}   ratio {heads / parts:.3f}")
        print(f"  all wall totals: parts {[round(t['total'][0], 2) for t in times['parts']]}, "
              f"heads {[round(t['total'][0], 2) for t in times['heads']]}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="prediction batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--round", type=int, default=0, metavar="N",
                        help="instead: time a whole next-round on an N-image toy-faces pool, parts vs heads")
    parser.add_argument("--build", type=int, default=0, metavar="N",
                        help="instead: time build-dataset of N toy-faces samples, parts vs heads (+ keypoints.json)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.round:
        pool_round(args.round, args.repeats)
        return
    if args.build:
        dataset_build(args.build, args.repeats)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; D = {sum(CHANNELS)}, 128 x 128, "
          f"10 members (128, 32), {len(CLASSES)} classes, {len(KEYPOINTS)} keypoints")

    items = training_items(7, seed=0)
    parts_only = [(m, k) for m, k, _ in items]
    fits = {"parts": [], "heads": []}
    models = {}
    for _ in range(2):  # alternate, keep the faster of two
        for name in ("parts", "heads"):
            model = ensemble(name == "heads", args.epochs)
            fits[name].append(timed(lambda: model.fit(items if name == "heads" else parts_only, GEOMETRY)))
            models[name] = model
    fit = {k: min(v) for k, v in fits.items()}
    pool = {k: m.pool_bytes_ // (2 * sum(CHANNELS)) for k, m in models.items()}
    print(f"\ntraining, 7 images, {args.epochs} epochs (pool: parts {pool['parts']} pixels, with heads {pool['heads']}):")
    print(f"  parts only                      {fit['parts']:7.2f} s")
    print(f"  parts + heads (extra outputs)   {fit['heads']:7.2f} s   x{fit['heads'] / fit['parts']:.3f}")
    separate = fit["parts"] + fit["heads"]
    print(f"  parts + separate ensemble       {separate:7.2f} s   x{separate / fit['parts']:.3f}")

    maps = random_maps(args.images, seed=1)
    models["parts"].predict([m[:2] for m in maps])  # warm-up: plans, folded weights, allocator
    models["heads"].predict([m[:2] for m in maps])
    runs = {"parts": [], "heads": []}
    for _ in range(args.repeats):
        for name in ("parts", "heads"):
            runs[name].append(timed(lambda: models[name].predict(maps)) / args.images)
    t = {k: statistics.median(v) for k, v in runs.items()}
    print(f"\nprediction, batch of {args.images}, per image (median of {args.repeats}):")
    print(f"  parts only                      {1000 * t['parts']:7.2f} ms")
    print(f"  parts + keypoints (heads)       {1000 * t['heads']:7.2f} ms   ratio {t['heads'] / t['parts']:.3f}")
    print(f"  parts + separate ensemble       {1000 * (t['parts'] + t['heads']):7.2f} ms   ratio "
          f"{(t['parts'] + t['heads']) / t['parts']:.3f}")
    print(f"  all runs, ms/image: parts {[round(1000 * x, 2) for x in runs['parts']]}, "
          f"heads {[round(1000 * x, 2) for x in runs['heads']]}")


if __name__ == "__main__":
    main()
