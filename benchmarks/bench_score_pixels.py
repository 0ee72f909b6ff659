"""Is a cheap image score good enough to rank the pool? Full-resolution JS sums against coarse pixel sets.

    python benchmarks/bench_score_pixels.py [--pool 500] [--annotated 7] [--members 10] [--settings full,grid:8]

Trains the interpreter on oracle masks of a few toy-faces latents, scores a pool with every pixel and with
cheaper pixel sets (grid:S = the centre of every S x S cell, subset:N = N fixed random pixels), and prints
for each: Spearman rank correlation with the full score, the overlap of the 10-20% uncertainty band the
loop selects from, and images/s (generator + interpreter). A pixel set may be the CPU default only with
spearman >= 0.95 and band overlap >= 0.80.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from dgan_al.generators.protocol import sample_latents
from dgan_al.generators.toy_faces import load_toy_faces
from dgan_al.interpreter import PixelEnsemble, rank_agreement

SETTINGS = ["full", "grid:2", "grid:4", "grid:8", "subset:4096", "subset:2048", "subset:1024"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=500)
    parser.add_argument("--annotated", type=int, default=7)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--settings", default=",".join(SETTINGS),
                        help="pixel sets to compare, comma-separated (full is always measured)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/score_pixels.json"))
    args = parser.parse_args()
    settings = ["full"] + [name for name in args.settings.split(",") if name and name != "full"]
    gen = load_toy_faces()
    z_train = torch.cat([gen.mean_latent()[None], sample_latents(gen.z_dim, args.annotated - 1, seed=5_000)])
    train = gen.synthesize(z_train)
    masks = gen.oracle_mask(z_train)
    items = [([f[i] for f in train.features], masks[i]) for i in range(len(z_train))]
    t0 = time.perf_counter()
    ensemble = PixelEnsemble(gen.feature_channels, gen.classes, n_members=args.members, generator=gen.identity)
    ensemble.fit(items, gen.geometry)
    train_s = time.perf_counter() - t0
    pool = sample_latents(gen.z_dim, args.pool, seed=0)
    scores = {name: [] for name in settings}
    seconds = {name: 0.0 for name in settings}
    gen_seconds = 0.0
    for start in range(0, args.pool, args.batch):
        t = time.perf_counter()
        out = gen.synthesize(pool[start:start + args.batch])
        gen_seconds += time.perf_counter() - t
        for name in settings:
            t = time.perf_counter()
            scores[name].append(ensemble.score_images(out.features, pixels=name).image_score.numpy())
            seconds[name] += time.perf_counter() - t
    full = np.concatenate(scores["full"])
    report = {"generator": gen.identity, "pool": args.pool, "annotated": args.annotated, "members": args.members, "train_seconds": train_s,
              "generator_images_per_s": args.pool / gen_seconds, "settings": {}}
    print(f"interpreter trained on {args.annotated} oracle masks in {train_s:.1f}s; pool {args.pool}")
    print(f"{'pixels':<13}{'spearman':>9}{'band overlap':>14}{'img/s (G+interp)':>18}{'speed-up':>10}")
    for name in settings:
        approx = np.concatenate(scores[name])
        agreement = rank_agreement(full, approx)
        rate = args.pool / (gen_seconds + seconds[name])
        speedup = (gen_seconds + seconds["full"]) / (gen_seconds + seconds[name])
        report["settings"][name] = {**agreement, "images_per_s": rate, "speedup_vs_full": speedup}
        print(f"{name:<13}{agreement['spearman']:>9.3f}{agreement['band_overlap']:>14.2f}{rate:>18.1f}{speedup:>9.1f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
