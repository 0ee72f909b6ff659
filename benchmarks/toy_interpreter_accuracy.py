"""How good is the interpreter on toy-faces? Train on N oracle-annotated images, score 100 held-out ones.

    python benchmarks/toy_interpreter_accuracy.py [--annotated 16] [--held-out 100] [--members 10]

Prints the training time, per-class IoU and mIoU of the majority vote against the oracle masks, and the
same for a plain per-pixel softmax regression baseline on RGB + position (what colour alone gives).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from dgan_al.generators.protocol import sample_latents
from dgan_al.generators.toy_faces import CLASSES, load_toy_faces
from dgan_al.interpreter import PixelEnsemble

TRAIN_SEED, HELD_OUT_SEED = 5_000, 6_000


def confusion(pred: np.ndarray, truth: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(truth.reshape(-1).astype(np.int64) * n + pred.reshape(-1), minlength=n * n).reshape(n, n)


def iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    inter = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotated", type=int, default=16)
    parser.add_argument("--held-out", type=int, default=100)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/toy_interpreter_accuracy.json"))
    args = parser.parse_args()
    gen = load_toy_faces()
    z_train = torch.cat([gen.mean_latent()[None], sample_latents(gen.z_dim, args.annotated - 1, seed=TRAIN_SEED)])
    train = gen.synthesize(z_train)
    masks = gen.oracle_mask(z_train)
    items = [([f[i].half() for f in train.features], masks[i]) for i in range(len(z_train))]
    ensemble = PixelEnsemble(gen.feature_channels, CLASSES, n_members=args.members, generator=gen.identity)
    t0 = time.perf_counter()
    ensemble.fit(items, gen.geometry)
    train_seconds = time.perf_counter() - t0

    n = len(CLASSES)
    cm = np.zeros((n, n), dtype=np.int64)
    z_test = sample_latents(gen.z_dim, args.held_out, seed=HELD_OUT_SEED)
    t0 = time.perf_counter()
    for chunk in z_test.split(20):
        out = gen.synthesize(chunk)
        pred = ensemble.predict(out.features).labels.numpy()
        cm += confusion(pred, gen.oracle_mask(chunk), n)
    predict_seconds = time.perf_counter() - t0
    ious = iou_from_confusion(cm)
    report = {"annotated": args.annotated, "held_out": args.held_out, "members": args.members,
              "train_seconds": train_seconds, "training_pixels_bytes": ensemble.pool_bytes_,
              "epochs": len(ensemble.history_), "predict_seconds_per_image": predict_seconds / args.held_out,
              "miou": float(np.nanmean(ious)), "per_class_iou": {c: float(v) for c, v in zip(CLASSES, ious)}}
    print(f"trained on {args.annotated} oracle masks in {train_seconds:.1f}s ({len(ensemble.history_)} epochs); "
          f"predict {1000 * predict_seconds / args.held_out:.0f} ms/image")
    print(f"mIoU on {args.held_out} held-out GAN samples vs the oracle: {report['miou']:.3f}")
    for c, v in zip(CLASSES, ious):
        print(f"  {c:<11}{v:6.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
