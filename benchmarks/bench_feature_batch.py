"""What caching features per latent costs: one latent per generator call against batches, and why.

    python benchmarks/bench_feature_batch.py [--n 32] [--batch 16] [--repeats 3]

The feature cache (``workflows/features.py``) synthesises each annotated latent on its own so that its
fp16 maps are the same bits whatever else was missing (a resume after an interruption then trains and
selects exactly what an uninterrupted run does). This prints, on toy-faces: seconds for ``n`` latents
per latent and in batches of ``batch`` (best of ``repeats``), the ratio, and how far the fp16 maps of
the same latent differ between a batch and a batch of one (the reason for paying it).
"""

from __future__ import annotations

import argparse
import time

import torch

from dgan_al.generators.protocol import sample_latents
from dgan_al.generators.toy_faces import load_toy_faces
from dgan_al.workflows.features import synthesize_maps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    gen = load_toy_faces()
    z = sample_latents(gen.z_dim, args.n, seed=11)
    print(f"toy-faces, {args.n} latents, batch {args.batch}, best of {args.repeats}, torch threads {torch.get_num_threads()}")

    def batched():
        out = []
        for s in range(0, args.n, args.batch):
            features = gen.synthesize(z[s:s + args.batch]).features
            out += [[f[j].to(torch.float16) for f in features] for j in range(len(features[0]))]
        return out

    def per_latent():
        return [synthesize_maps(gen, z[i]) for i in range(args.n)]

    times = {}
    for name, fn in (("batched", batched), ("per latent", per_latent)):
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            maps = fn()
            best = min(best, time.perf_counter() - t0)
        times[name] = (best, maps)
        print(f"{name:>11}: {best:6.2f} s  ({args.n / best:5.1f} latents/s)")
    print(f"per latent / batched time: {times['per latent'][0] / times['batched'][0]:.2f}x")
    diff = max(float((a.float() - b.float()).abs().max()) for ma, mb in zip(times["batched"][1], times["per latent"][1])
               for a, b in zip(ma, mb))
    again = per_latent()
    same = all(torch.equal(a, b) for ma, mb in zip(times["per latent"][1], again) for a, b in zip(ma, mb))
    print(f"max |batched - per latent| over the fp16 maps: {diff:.3g}; per latent twice bit-identical: {same}")


if __name__ == "__main__":
    main()
