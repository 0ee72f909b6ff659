"""The ship gate of the toy-faces diffusion model (issue 33, item 4): what 7 annotated renders give.

    python benchmarks/toy_diffusion_gate.py --weights dgan_al/generators/adm/toy_faces_adm.pt --threads 1

1. Training set, fixed before any result: latents 0..6 of pool stream 0 (``sample_latents(Z_DIM, 7, 0)``),
   rendered, with their exact masks (the oracle's annotation of the first 7 pool images).
2. Test set: ``toy real-test``'s 100 renders (stream ``REAL_TEST_SEED``), written by ``make_real_test``
   into a temporary folder and read back by ``read_test_set``, exactly as ``evaluate --test`` reads them
   (the masks rasterised from the traced LabelMe polygons). The exact masks are scored too.
3. Choice of input resolution, steps and blocks, on the 7 training renders only: leave-one-out
   cross-validation (train the interpreter on 6, predict the 7th, mIoU of the 7 pooled predictions),
   coordinate-wise: first the input resolution (64 px: the renders box-downscaled as in training, features
   upsampled to the 128 px labels; or 128 px: the renders fed to the fully convolutional UNet as they are)
   at the middle candidates, then the blocks, then the steps. Ties go to the earlier candidate.
4. The gate: ``PixelEnsemble`` with the project's defaults (10 members, 2048 pixels per image, 8 epochs;
   ``workflows/interpreter.py``) trained on all 7 with the chosen features, for each of ``--seeds`` seeds,
   predicting the 100 test renders; mIoU as ``evaluate --test`` computes it (per-image confusions, 5 folds
   of the test set, ``select_and_score`` with one checkpoint, ``summarize_folds``' mean over folds). Mean
   over seeds and a 95% t-interval (it covers the interpreter's seed only, not the choice of 7 images).
5. The same for a random-weights UNet of the same configuration (PyTorch's default initialisation, seed
   0, no zero-initialised layers), with its own cross-validated choice: does training matter?

The bar: the GAN path's downstream mIoU 0.539 minus 0.05 (``--bar``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dgan_al.generators.adm.checkpoint import load_adm_checkpoint
from dgan_al.generators.adm.source import DiffusionFeatures
from dgan_al.generators.adm.unet import UNetModel
from dgan_al.generators.protocol import sample_latents
from dgan_al.generators.toy_faces.classes import CLASSES
from dgan_al.generators.toy_faces.render import render_latents
from dgan_al.generators.toy_faces.scene import Z_DIM
from dgan_al.geometry import LabelGeometry
from dgan_al.interpreter import PixelEnsemble
from dgan_al.metrics import confusion_matrix, k_folds, mean_iou, select_and_score, summarize_folds

POOL_SEED, N_TRAIN = 0, 7
LABEL = 128
RESOLUTIONS = (64, 128)
STEP_SETS = ((50,), (50, 150), (50, 150, 250), (150, 250, 400))
BLOCK_SETS = ((2, 3, 4, 5), (4, 5, 6, 7), (2, 3, 4, 5, 6, 7), (0, 1, 2, 3, 4, 5, 6, 7))
START = (1, 2)  # the middle step and block candidates the resolution is chosen at
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def training_set() -> tuple[np.ndarray, np.ndarray]:
    images, masks = render_latents(sample_latents(Z_DIM, N_TRAIN, seed=POOL_SEED).numpy())
    return images, masks


def test_set() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, masks as evaluate --test reads them, exact masks): 100 real-test renders."""
    from dgan_al.workflows.downstream import read_test_set
    from dgan_al.workflows.toy_real_test import REAL_TEST_SEED, make_real_test

    with tempfile.TemporaryDirectory() as tmp:
        make_real_test(Path(tmp) / "real-test", 100, REAL_TEST_SEED)
        _, images, masks = read_test_set(Path(tmp) / "real-test", list(CLASSES))
    images, masks = np.stack(images), np.stack(masks)
    exact_images, exact = render_latents(sample_latents(Z_DIM, 100, seed=REAL_TEST_SEED).numpy())
    assert np.array_equal(images, exact_images), "the real-test images are not the renders of its latents"
    return images, masks, exact


def downscale(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 [B,128,128,3] -> [B,size,size,3] by box averaging (as the training renders), rounded."""
    if size == LABEL:
        return images
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    x = F.avg_pool2d(x, LABEL // size).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


class Features:
    """Every candidate step and block of one UNet at one input size, computed once per image set."""

    def __init__(self, model: UNetModel, checkpoint, size: int):
        steps = sorted({t for s in STEP_SETS for t in s})
        self.source = DiffusionFeatures(model, checkpoint, steps=steps, blocks=range(len(model.output_blocks)),
                                        seed=0, size=size)
        self.steps, self.blocks, self.size = steps, self.source.blocks, size

    def maps(self, images: np.ndarray, steps, blocks) -> list[torch.Tensor]:
        """Step-major maps [B, C, h, w] of the chosen steps and blocks (only those are computed)."""
        source = DiffusionFeatures(self.source.model, self.source.checkpoint, steps=steps, blocks=blocks, seed=0,
                                   size=self.size)
        return source.features(downscale(images, self.size))

    def channels(self, steps, blocks) -> list[int]:
        shapes = self.source.model.output_block_shapes(self.size)
        return [shapes[b][0] for _ in steps for b in sorted(blocks)]


def ensemble(channels: list[int], seed: int) -> PixelEnsemble:
    """The project's interpreter defaults (workflows/interpreter.py with the default [ensemble] settings)."""
    return PixelEnsemble(channels, list(CLASSES), n_members=10, generator="toy-diffusion-gate",
                         pixels_per_image=2048, max_epochs=8, seed=seed)


def cv_miou(feats: Features, train_maps: list[torch.Tensor], masks: np.ndarray, steps, blocks) -> float:
    """Leave-one-out over the training renders: mIoU of the pooled held-out predictions."""
    geometry = LabelGeometry.full(LABEL, LABEL)
    channels = feats.channels(steps, blocks)
    conf = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
    for held in range(len(masks)):
        items = [([m[i] for m in train_maps], masks[i]) for i in range(len(masks)) if i != held]
        net = ensemble(channels, seed=0).fit(items, geometry)
        pred = net.predict([m[held:held + 1] for m in train_maps]).labels.numpy()
        conf += confusion_matrix(pred, masks[held:held + 1], len(CLASSES))
    return mean_iou(conf)


def choose(model: UNetModel, checkpoint, images: np.ndarray, masks: np.ndarray, log) -> tuple[int, tuple, tuple, list]:
    """Coordinate-wise leave-one-out choice of (size, steps, blocks); returns it and every score tried."""
    tried, cache = [], {}

    def score(size, steps, blocks) -> float:
        key = (size, steps, blocks)
        if key not in cache:
            feats = Features(model, checkpoint, size)
            t0 = time.time()
            cache[key] = cv_miou(feats, feats.maps(images, steps, blocks), masks, steps, blocks)
            tried.append({"size": size, "steps": list(steps), "blocks": list(blocks), "cv_miou": cache[key]})
            log(f"  cv {size:>3} px  steps {','.join(map(str, steps)):<12} blocks {','.join(map(str, blocks)):<16}"
                f" mIoU {cache[key]:.3f}  ({time.time() - t0:.0f} s)")
        return cache[key]

    steps, blocks = STEP_SETS[START[0]], BLOCK_SETS[START[1]]
    size = max(RESOLUTIONS, key=lambda s: (score(s, steps, blocks), -RESOLUTIONS.index(s)))
    blocks = max(BLOCK_SETS, key=lambda b: (score(size, steps, b), -BLOCK_SETS.index(b)))
    steps = max(STEP_SETS, key=lambda s: (score(size, s, blocks), -STEP_SETS.index(s)))
    return size, steps, blocks, tried


def gate_miou(model: UNetModel, checkpoint, size, steps, blocks, train, test, seeds: int, log) -> dict:
    """Per seed: train on the 7, predict the 100; mIoU as evaluate --test (read masks) and on exact masks."""
    feats = Features(model, checkpoint, size)
    geometry = LabelGeometry.full(LABEL, LABEL)
    train_maps = feats.maps(train[0], steps, blocks)
    test_images, test_masks, exact = test
    folds = k_folds(len(test_images), 5, seed=0)
    nets = []
    for seed in range(seeds):
        items = [([m[i] for m in train_maps], train[1][i]) for i in range(len(train[1]))]
        nets.append(ensemble(feats.channels(steps, blocks), seed).fit(items, geometry))
    per_image = {"read": np.zeros((seeds, len(test_images), len(CLASSES), len(CLASSES)), dtype=np.int64)}
    per_image["exact"] = np.zeros_like(per_image["read"])
    for start in range(0, len(test_images), 10):
        maps = feats.maps(test_images[start:start + 10], steps, blocks)
        for s, net in enumerate(nets):
            pred = net.predict(maps).labels.numpy()
            for j, p in enumerate(pred):
                per_image["read"][s, start + j] = confusion_matrix(p, test_masks[start + j], len(CLASSES))
                per_image["exact"][s, start + j] = confusion_matrix(p, exact[start + j], len(CLASSES))
    out = {}
    for kind, conf in per_image.items():
        values = []
        for s in range(seeds):
            _, scored = select_and_score(conf[s][None], folds)  # one "checkpoint": the choice is trivial
            values.append(summarize_folds(scored, list(CLASSES)).miou_mean)
        values = np.array(values)
        half = T_975.get(seeds - 1, 1.96) * values.std(ddof=1) / np.sqrt(seeds) if seeds > 1 else float("nan")
        out[kind] = {"per_seed": values.round(4).tolist(), "mean": float(values.mean()), "ci95": float(half)}
        log(f"  test ({kind} masks): mIoU {values.mean():.3f} ± {half:.3f}  per seed {values.round(3).tolist()}")
    return out


def random_unet(config) -> UNetModel:
    torch.manual_seed(0)
    return UNetModel(config).eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=Path("dgan_al/generators/adm/toy_faces_adm.pt"),
                        help="the trained UNet (.pt with .pt.json beside it)")
    parser.add_argument("--seeds", type=int, default=5, help="interpreter seeds per model")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--bar", type=float, default=0.539 - 0.05, help="ship if the trained model's mean mIoU >= this")
    parser.add_argument("--no-control", action="store_true", help="skip the random-weights control")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    log = lambda text: print(text, flush=True)  # noqa: E731
    t0 = time.time()
    checkpoint, trained = load_adm_checkpoint(args.weights)
    train, test = training_set(), test_set()
    log(f"training: latents 0..{N_TRAIN - 1} of pool stream {POOL_SEED}; test: 100 real-test renders")
    models = {"trained": (trained, checkpoint)}
    if not args.no_control:
        models["random weights"] = (random_unet(checkpoint.unet), checkpoint)
    results = {}
    for name, (model, ckpt) in models.items():
        log(f"{name}: choosing the input size, blocks and steps by leave-one-out on the {N_TRAIN} training renders")
        size, steps, blocks, tried = choose(model, ckpt, *train, log)
        log(f"{name}: chosen {size} px, steps {steps}, blocks {blocks}")
        results[name] = {"size": size, "steps": list(steps), "blocks": list(blocks), "cv": tried,
                         "test": gate_miou(model, ckpt, size, steps, blocks, train, test, args.seeds, log)}
    log("")
    log(f"{'model':<16} {'input':>5} {'steps':<12} {'blocks':<16} {'CV (7)':>7} {'test mIoU (95% CI)':>20} {'exact masks':>14}")
    for name, r in results.items():
        cv = max(t["cv_miou"] for t in r["cv"])
        read, exact = r["test"]["read"], r["test"]["exact"]
        log(f"{name:<16} {r['size']:>5} {','.join(map(str, r['steps'])):<12} {','.join(map(str, r['blocks'])):<16} "
            f"{cv:>7.3f} {read['mean']:>12.3f} ± {read['ci95']:.3f} {exact['mean']:>8.3f} ± {exact['ci95']:.3f}")
    passed = results["trained"]["test"]["read"]["mean"] >= args.bar
    log(f"bar {args.bar:.3f} (GAN path 0.539 - 0.05): {'PASS' if passed else 'FAIL'}; {time.time() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"bar": args.bar, "passed": passed, "results": results,
                                         "seconds": time.time() - t0}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
