"""Benchmark: the CPU cost of diffusion features per pool image (issue 33, item 3).

ddpm-segmentation's FFHQ-256 UNet (random weights, its model flags: ``ffhq256_config`` in
``bench_diffusion_memory.py``), one 256 px image at a time, fp32:

- ours: ``extract_features`` — per step, ``q_sample`` then the encoder, the middle and the decoder only as far
  as the largest block read (block 12 of 18 by default);
- reference: what ddpm-segmentation runs — per step the whole UNet forward, the blocks read by hooks.

Both at the current defaults (steps 50, 150, 250; blocks 5, 6, 7, 8, 12) and at the issue's four steps
(50, 150, 250, 350). Prints seconds per image (median of ``--repeats``) and the ratio. A pool image costs
this once per round it is scored in (features of a large pool are not cached).

    python benchmarks/bench_adm_features.py [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_diffusion_memory import ffhq256_config  # noqa: E402

from dgan_al.generators.adm import DEFAULT_BLOCKS, UNetModel, extract_features, fixed_noise  # noqa: E402
from dgan_al.generators.adm.features import alphas_cumprod, q_sample  # noqa: E402


def reference(model: UNetModel, image: torch.Tensor, steps, blocks, noise) -> list[torch.Tensor]:
    """The whole forward per step, the chosen output blocks' outputs caught by hooks (as upstream does)."""
    caught: list[torch.Tensor] = []
    hooks = [model.output_blocks[b].register_forward_hook(lambda m, i, o: caught.append(o)) for b in sorted(blocks)]
    abar = alphas_cumprod("linear", 1000)
    try:
        with torch.no_grad():
            for t in steps:
                model(q_sample(image, t, noise, abar), torch.full((1,), t))
    finally:
        for hook in hooks:
            hook.remove()
    return caught


def timed(fn, repeats: int) -> tuple[float, list[torch.Tensor]]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = UNetModel(ffhq256_config()).eval()
    image = torch.rand(1, 3, 256, 256) * 2 - 1
    noise = fixed_noise(0, 256)
    blocks = list(DEFAULT_BLOCKS)
    print(f"FFHQ-256 ADM, {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters, fp32, one 256 px image, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}; median of {args.repeats}")
    print(f"{'steps':>22} {'ours s/img':>11} {'reference s/img':>16} {'ratio':>6} {'max |diff|':>11}")
    for steps in ([50, 150, 250], [50, 150, 250, 350]):
        with torch.no_grad():
            ours_s, ours = timed(lambda: extract_features(model, image, steps, blocks, noise), args.repeats)
        ref_s, ref = timed(lambda: reference(model, image, steps, blocks, noise), args.repeats)
        diff = max(float((a - b).abs().max()) for a, b in zip(ours, ref[-len(ours):]))
        print(f"{str(steps):>22} {ours_s:11.2f} {ref_s:16.2f} {ref_s / ours_s:6.2f} {diff:11.2e}")


if __name__ == "__main__":
    main()
