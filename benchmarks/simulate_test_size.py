"""How many held-out images `simulate` needs: the bootstrap standard error of one model's test mIoU.

    python benchmarks/simulate_test_size.py [--images 400] [--sizes 60,100,200,300,400]

Trains the interpreter on this repository's seed annotations (the loop's settings), scores the first
``--images`` latents of simulate's test stream against the visible truth at its evaluation pixels, and
for each test-set size N resamples the first N of those images with replacement 1000 times: the
standard deviation of the resampled mIoU is the sampling error a test set of N images adds to one run's
figure. A class none of a draw's images holds keeps its IoU on the N images, as in simulate's analysis.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from dgan_al.generators import load_generator
from dgan_al.workflows.interpreter import train_on_annotations
from dgan_al.workflows.simulate import TEST_SEED, HeldOut, _held_out, evaluate_on
from dgan_al.workflows.simulate_analysis import class_iou, miou
from dgan_al.workflows.simulate_settings import SimulateSettings
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.layout import Workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--sizes", default="60,100,200,300,400")
    parser.add_argument("--workspace", type=Path, default=Path("."))
    args = parser.parse_args()
    t0 = time.perf_counter()
    ws = Workspace.find(args.workspace)
    generator = load_generator("toy-faces")
    store = AnnotationStore(ws.annotations_dir)
    model = train_on_annotations(ws, store, store.ids(), generator, "cpu")
    settings = SimulateSettings()
    held: HeldOut = _held_out(generator, "test", TEST_SEED, args.images, settings)
    conf = evaluate_on(model, held, settings.eval_pixels).astype(np.int64)  # [N, K, K]
    rng = np.random.default_rng(0)
    print(f"interpreter on {len(store.ids())} seed annotations; test mIoU on {args.images} images "
          f"{miou(conf.sum(0)):.3f}")
    print(f"{'N':>5} {'bootstrap SE of mIoU':>22}")
    for n in (int(s) for s in args.sizes.split(",")):
        sample = conf[:n]  # a test set of n images; a class none of a draw's images holds keeps its IoU
        whole = class_iou(sample.sum(0))  # on the n images (as simulate's analysis does: draw_miou)
        draws = [np.nanmean(np.where(np.isnan(c) & ~np.isnan(whole), whole, c)) for c in
                 (class_iou(sample[rng.integers(0, len(sample), size=len(sample))].sum(0)) for _ in range(1000))]
        print(f"{n:>5} {np.std(draws):>22.4f}")
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
