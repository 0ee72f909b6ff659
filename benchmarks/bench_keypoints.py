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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="prediction batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
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
