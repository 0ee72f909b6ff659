"""Seconds per epoch of the downstream segmenter on 1000 images of 128 px, against a plain training loop.

    python benchmarks/segmenter_speed.py [--images 1000] [--size 128] [--threads 2] [--test 100]

Measured: ``train_segmenter`` (compact U-Net at its defaults, one epoch, then ``--test`` test images
predicted and scored). Plain reference, same process, same network and batches: a textbook training loop,
timed over the first ``--reference-steps`` steps and scaled to one epoch, so the ratio shows what the
trainer's bookkeeping and per-epoch testing cost. Prints s/epoch of both, the ratio, and the time the
default number of epochs would take.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from dgan_al.segmenter import SegmenterSettings, build_segmenter, train_segmenter


def plain_epoch_seconds(images: np.ndarray, masks: np.ndarray, n_classes: int, settings: SegmenterSettings,
                        steps: int) -> float:
    """The reference: a textbook Adam / cross-entropy loop; seconds for one epoch, from ``steps`` steps."""
    torch.manual_seed(settings.seed)
    model = build_segmenter(settings.model, n_classes, **settings.model_options).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    order = np.random.default_rng(settings.seed).permutation(len(images))
    n_batches = int(np.ceil(len(images) / settings.batch))
    start = time.perf_counter()
    for step in range(min(steps, n_batches)):
        batch = order[step * settings.batch:(step + 1) * settings.batch]
        x = torch.from_numpy(images[batch]).permute(0, 3, 1, 2).float() / 255  # [b, 3, H, W]
        target = torch.from_numpy(masks[batch]).long()
        loss = F.cross_entropy(model(x), target, ignore_index=255)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / min(steps, n_batches) * n_batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--classes", type=int, default=15)
    parser.add_argument("--test", type=int, default=100, help="test images scored after the epoch")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--width", type=int, default=None, help="compact U-Net width (default: the model's)")
    parser.add_argument("--depth", type=int, default=None, help="compact U-Net depth (default: the model's)")
    parser.add_argument("--reference-steps", type=int, default=25)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.images, args.size, args.size, 3), dtype=np.uint8)
    masks = rng.integers(0, args.classes, size=(args.images, args.size, args.size), dtype=np.uint8)
    test_images = list(images[: args.test])
    test_masks = list(masks[: args.test])
    options = {k: v for k, v in (("width", args.width), ("depth", args.depth)) if v is not None}
    default_epochs = SegmenterSettings().epochs
    settings = SegmenterSettings(epochs=1, model_options=options)

    run = train_segmenter(images, masks, args.classes, settings, test_images, test_masks)
    fast = run.seconds
    reference = plain_epoch_seconds(images, masks, args.classes, settings, args.reference_steps)
    params = sum(p.numel() for p in run.model.parameters())
    print(f"compact U-Net {options or '(defaults)'}: {params / 1e6:.2f} M parameters, {args.threads} thread(s), "
          f"{args.images} images of {args.size} px, batch {settings.batch}, {args.test} test images")
    print(f"train_segmenter : {fast:7.1f} s/epoch (training + testing)")
    print(f"plain loop      : {reference:7.1f} s/epoch (training only, from {args.reference_steps} steps)")
    print(f"ratio           : {reference / fast:7.2f}x")
    print(f"default {default_epochs} epochs: ~{fast * default_epochs / 60:.1f} min")


if __name__ == "__main__":
    main()
