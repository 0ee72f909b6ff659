"""Distil toy-faces as well as a fixed wall-clock budget allows (how the shipped weights were trained).

Times a training step at batch 32, 64 and 128 on the device, takes the largest batch that costs at most
1.3x the step of 32 (on a GPU the small generator is bound by kernel launches, so a larger batch is nearly
free), fits the step count of a full cosine schedule into what is left of the budget after rendering the
training scenes, and runs ``dgan-al toy distill`` with those settings. ``--minutes`` is the hard stop; an
unfinished run can be completed with ``dgan-al toy distill --resume`` and the printed settings.

    python benchmarks/distill_in_budget.py --budget 500 --device cuda --n-train 100000 --out runs/gpu-distill

``--rare-boost`` and ``--part-weight`` are passed on to the run (and the part weight is in the step timing),
so a run from scratch can weigh the small and rare parts from its first step:

    python benchmarks/distill_in_budget.py --budget 540 --device cuda --rare-boost 0.4 --part-weight 4

On the H200 of the shipped run: 29, 25 and 22 ms a step at batch 32, 64, 128 -> batch 128, 16056 steps.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from dgan_al.generators.stylegan2 import StyleGAN2
from dgan_al.generators.toy_faces.distill import DistillSettings, _loss, distill, toy_config

RENDER_SECONDS_PER_SCENE = 0.005  # one core, measured on this project's CPU
FINAL_SECONDS = 30  # held-out evaluation and export


def step_seconds(batch: int, device: torch.device, steps: int, part_weight: float = 1.0) -> float:
    """Seconds per training step (forward, backward, Adam) on random data, after a warm-up."""
    model = StyleGAN2(toy_config()).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    z = torch.randn(batch, 32, device=device)
    real = torch.rand(batch, 3, 128, 128, device=device)
    # as in training: the pixel weights are built from a 0/1 detail mask every step
    details = (torch.rand(batch, 128, 128, device=device) < 0.05).to(torch.uint8)

    def one() -> None:
        fake, _ = model(z)
        weight = 1.0 + (part_weight - 1.0) * details.unsqueeze(1).float() if part_weight != 1.0 else None
        loss = _loss(fake, real, weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):
        one()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    sync()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    start = time.time()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, required=True, help="Seconds for the whole run.")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--n-train", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=Path("runs/distill-in-budget"))
    parser.add_argument("--rare-boost", type=float, default=0.0, help="As `dgan-al toy distill --rare-boost`.")
    parser.add_argument("--part-weight", type=float, default=1.0, help="As `dgan-al toy distill --part-weight`.")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    timing = {b: step_seconds(b, device, 30 if device.type == "cuda" else 2, args.part_weight) for b in (32, 64, 128)}
    batch = max(b for b in timing if timing[b] <= 1.3 * timing[32])
    render = args.n_train * RENDER_SECONDS_PER_SCENE / args.workers + 20
    train = args.budget - (time.time() - start) - render - FINAL_SECONDS
    if train < 60:
        raise SystemExit(f"--budget {args.budget:.0f} s is too small: the step timing took {time.time() - start:.0f} s "
                         f"and rendering {args.n_train} scenes takes about {render:.0f} s; give at least "
                         f"{args.budget - train + 60:.0f} s")
    steps = int(train / (timing[batch] * 1.08))  # 8% for the EMA, batch indexing and checkpoints
    plan = {"seconds_per_step": timing, "batch": batch, "steps": steps, "training_seconds": round(train)}
    print(json.dumps(plan), flush=True)
    settings = DistillSettings(steps=steps, batch=batch, n_train=args.n_train, device=args.device,
                               workers=args.workers, checkpoint_every=1000, minutes=(train + 20) / 60,
                               rare_boost=args.rare_boost, part_weight=args.part_weight)

    def report(task: str, done: int, total: int) -> None:
        if done == total or done % 1000 == 0:
            print(f"{task} {done}/{total}  {time.time() - start:.0f} s", flush=True)

    info = distill(args.out, settings, progress=report)
    print(json.dumps({"steps": info["steps"], "held_out_psnr_db": info["held_out_psnr_db"],
                      "plan": plan, "weights": str(args.out / "toy_faces.pt")}), flush=True)


if __name__ == "__main__":
    main()
