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

import torch

from dgan_al.generators.protocol import sample_latents
from dgan_al.generators.toy_faces import load_toy_faces
from dgan_al.interpreter import PixelEnsemble
from dgan_al.workflows.score_agreement import compare_pixel_sets

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
    gen_seconds = 0.0

    def feature_batches():
        nonlocal gen_seconds
        for start in range(0, args.pool, args.batch):
            t = time.perf_counter()
            out = gen.synthesize(pool[start:start + args.batch])
            gen_seconds += time.perf_counter() - t
            yield out.features

    measured = compare_pixel_sets(ensemble, feature_batches(), pixel_sets=settings[1:], geometry=gen.geometry)
    report = {"generator": gen.identity, "pool": args.pool, "annotated": args.annotated, "members": args.members,
              "band_rule": "selection.uncertainty_band (10-20%)", "train_seconds": train_s,
              "generator_images_per_s": args.pool / gen_seconds, "settings": {}}
    print(f"generator {gen.identity}; interpreter trained on {args.annotated} oracle masks in {train_s:.1f}s; "
          f"pool {args.pool}")
    print(f"{'pixels':<13}{'spearman':>9}{'band overlap':>14}{'img/s (G+interp)':>18}{'speed-up':>10}")
    full_s = gen_seconds + measured["full"]["seconds_per_image"] * args.pool
    for name in settings:
        m = measured[name]
        total = gen_seconds + m["seconds_per_image"] * args.pool
        report["settings"][name] = {"spearman": m["spearman"], "band_overlap": m["band_overlap"],
                                    "images_per_s": args.pool / total, "speedup_vs_full": full_s / total}
        print(f"{name:<13}{m['spearman']:>9.3f}{m['band_overlap']:>14.2f}{args.pool / total:>18.1f}"
              f"{full_s / total:>9.1f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
