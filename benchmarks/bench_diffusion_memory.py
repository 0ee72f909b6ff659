"""Benchmark: peak memory of training the interpreter on diffusion (DDPM-seg) features — issue 33's memory item.

    python benchmarks/bench_diffusion_memory.py                          # the real settings, ~7 min on 2 CPUs
    python benchmarks/bench_diffusion_memory.py --members 2 --epochs 1   # a quick check of the memory path
    python benchmarks/bench_diffusion_memory.py --layout 2021            # the issue's 8192 channels
    python benchmarks/bench_diffusion_memory.py --stream                 # items made one at a time (as the cache does)
    python benchmarks/bench_diffusion_memory.py --unet                   # real UNet features (slow: ~45 s/image)

Acceptance (issue 33): training on 10 annotated 256 px images of ~8k-channel features stays at most 4 GB of
peak RSS. What is measured and what is computed:

A. Ours, measured, in a fresh subprocess (its ``ru_maxrss`` is its own):
   1. features of ``--train-images`` (10) images with the exact shapes ddpm-segmentation reads from a
      guided-diffusion FFHQ-256 UNet — ``--layout 2022`` (the default, their files since 2022-03-08):
      blocks 5, 6, 7, 8, 12 at steps 50, 150, 250, per step 1024 ch @ 32 px, 512 @ 32, 512 @ 32,
      512 @ 64, 256 @ 128 (8448 channels); ``--layout 2021`` (the issue's figure): blocks 6-9 at steps
      50-350, 512 @ 32, 512 @ 32, 512 @ 64, 512 @ 64 (8192 channels). The shapes come from
      ``UNetModel.output_block_shapes`` of the FFHQ-256 flags. Native resolution, float32, all images
      held at once (the interpreter upsamples lazily: no 256 px map is built). Random N(0, 1) values by
      default: the interpreter's memory depends on the shapes only, not the values. ``--unet`` instead
      runs ``extract_features`` on a random-weights FFHQ-256 ``UNetModel`` (552M parameters) in a
      process of its own, cached to a temporary folder as float32 and loaded back by the fit process;
      on 2 shared CPU cores that is about 45 s per image, ~10 minutes for 12 images.
   2. 34-class (FFHQ-34) 256 x 256 masks: a Voronoi partition of 64 random seeds, seed k < 34 of class k,
      the others of random classes: every class present, a few dozen connected regions, as a face parsing
      has. (Per-pixel random labels would make every pixel its own region, and the sampler trains on
      every region: 65536 pixels an image, not a realistic mask.)
   3. ``PixelEnsemble(feature_channels, 34 classes, n_members=--members)`` with the paper's settings
      (10 members, (256, 128) hidden for >= 32 classes, pixels_per_image default) ``.fit(items,
      LabelGeometry.full(256, 256))``; then ``predict`` on ``--predict-images`` (2) new images' features.
   Printed per phase: seconds, current RSS, peak RSS so far; and the pixel pool's and the net's bytes.

B. The reference (ddpm-segmentation ``train_interpreter.prepare_data``), computed, not run: it fills
   ``X = torch.zeros(N, D, 256, 256)`` float32 with every pixel's upsampled features, then
   ``X.permute(1, 0, 2, 3).reshape(D, -1)`` (a copy, while X is still referenced) and ``X[y != ignore]``
   (another copy, while the reshaped one is): held N x 256 x 256 x D x 4 bytes, peak about twice that.
   For N = 10 and N = 50 beside ours.

The machine here is shared: seconds vary with its load; peak RSS does not.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dgan_al.generators.adm import UNetConfig, UNetModel  # noqa: E402
from dgan_al.geometry import LabelGeometry  # noqa: E402
from dgan_al.interpreter import PixelEnsemble  # noqa: E402

SIZE = 256  # FFHQ-256: image, label and canvas size
N_CLASSES = 34  # FFHQ-34
GB_LIMIT = 4.0  # the acceptance bound, GB (1e9 bytes)
LAYOUTS = {  # ddpm-segmentation's (steps, blocks)
    "2022": ((50, 150, 250), (5, 6, 7, 8, 12)),  # experiments/*/ddpm.json since 2022-03-08 (DEFAULT_STEPS/BLOCKS)
    "2021": ((50, 150, 250, 350), (6, 7, 8, 9)),  # the December 2021 files, the 8192 channels
}
TRAIN_SEED, TEST_SEED = 11, 12


def ffhq256_config() -> UNetConfig:
    """ddpm-segmentation's model flags for FFHQ-256 (docs/diffusion.md; as tests/test_adm_features.py)."""
    return UNetConfig(image_size=SIZE, num_channels=256, num_res_blocks=2, channel_mult=(1, 1, 2, 2, 4, 4),
                      attention_resolutions=(32, 16, 8), num_head_channels=64, learn_sigma=True,
                      use_scale_shift_norm=True, resblock_updown=True)


def feature_shapes(layout: str) -> list[tuple[int, int]]:
    """(channels, side) of every feature layer, step-major (the order ``extract_features`` returns)."""
    steps, blocks = LAYOUTS[layout]
    # output_block_shapes reads only .config: no need to allocate the 552M-parameter model for the shapes
    shapes = UNetModel.output_block_shapes(SimpleNamespace(config=ffhq256_config()))
    return [shapes[b] for _ in steps for b in sorted(blocks)]


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def voronoi_mask(seed: int, n_classes: int = N_CLASSES, n_seeds: int = 64) -> np.ndarray:
    """uint8 [256, 256]: nearest of ``n_seeds`` random points; point k < n_classes has class k."""
    rng = np.random.default_rng([seed, 7])
    points = rng.uniform(0, SIZE, size=(n_seeds, 2))
    classes = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, n_seeds - n_classes)])
    yy, xx = np.mgrid[:SIZE, :SIZE]
    distance = (yy[..., None] - points[:, 0]) ** 2 + (xx[..., None] - points[:, 1]) ** 2  # [H, W, n_seeds]
    return classes[distance.argmin(-1)].astype(np.uint8)


def random_maps(shapes, batch: int | None, seed: int) -> list[torch.Tensor]:
    """float32 N(0, 1) maps: [C, s, s] per layer (batch None: one fit item) or [B, C, s, s]."""
    generator = torch.Generator().manual_seed(seed)
    lead = () if batch is None else (batch,)
    return [torch.randn(*lead, c, s, s, generator=generator) for c, s in shapes]


# ----------------------------------------------------------------------------------------------- workers
# Each worker runs in its own process and prints one JSON line; the parent below starts them.


def worker_extract(args) -> dict:
    """--unet: real features of random images from a random-weights FFHQ-256 UNet, cached as float32."""
    from dgan_al.generators.adm import extract_features, fixed_noise

    steps, blocks = LAYOUTS[args.layout]
    torch.manual_seed(0)
    start = time.perf_counter()
    model = UNetModel(ffhq256_config()).eval()
    build = time.perf_counter() - start
    noise = fixed_noise(0, SIZE)
    out = Path(args.dir)
    times = []
    for name, n, seed in (("train", args.train_images, TRAIN_SEED), ("test", args.predict_images, TEST_SEED)):
        images = torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        for i in range(n):
            t0 = time.perf_counter()
            maps = extract_features(model, images[i : i + 1], list(steps), list(blocks), noise)
            times.append(time.perf_counter() - t0)
            torch.save([m[0].contiguous() for m in maps], out / f"{name}_{i:03d}.pt")
    return {"model_seconds": build, "seconds_per_image": float(np.median(times)), "seconds": sum(times),
            "parameters": sum(p.numel() for p in model.parameters()), "peak_rss": peak_rss_bytes()}


def worker_fit(args) -> dict:
    """Mode A: build features + masks, fit, predict; RSS and seconds after each phase."""
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = feature_shapes(args.layout)
    channels = [c for c, _ in shapes]
    geometry = LabelGeometry.full(SIZE, SIZE)
    phases = {"start": {"seconds": 0.0, "rss": current_rss_bytes(), "peak_rss": peak_rss_bytes()}}

    def checkpoint(name: str, since: float) -> None:
        phases[name] = {"seconds": time.perf_counter() - since, "rss": current_rss_bytes(),
                        "peak_rss": peak_rss_bytes()}

    cache = Path(args.dir) if args.unet else None

    def train_maps(i: int) -> list[torch.Tensor]:
        if cache is not None:
            return torch.load(cache / f"train_{i:03d}.pt", weights_only=True)
        return random_maps(shapes, None, seed=1000 * TRAIN_SEED + i)

    # 1. features and masks of the annotated images
    start = time.perf_counter()
    masks = [voronoi_mask(i) for i in range(args.train_images)]
    if args.stream:  # one image's maps at a time, as fit reads the workspace's disk cache
        items = ((train_maps(i), masks[i]) for i in range(args.train_images))
        held = 0
    else:  # every image's maps held at once (the stricter case)
        items = [(train_maps(i), masks[i]) for i in range(args.train_images)]
        held = sum(m.numel() * m.element_size() for maps, _ in items for m in maps)
    regions = int(np.mean([len(np.unique(m)) for m in masks]))
    checkpoint("features", start)

    # 2. fit
    ensemble = PixelEnsemble(channels, [f"class{k}" for k in range(N_CLASSES)], n_members=args.members,
                             max_epochs=args.epochs, generator=f"random-adm-ffhq256:{args.layout}")
    start = time.perf_counter()
    ensemble.fit(items, geometry)
    checkpoint("fit", start)
    del items  # a loop does not keep the training maps while it scores the pool

    # 3. predict
    start = time.perf_counter()
    if cache is not None:
        loaded = [torch.load(cache / f"test_{i:03d}.pt", weights_only=True) for i in range(args.predict_images)]
        test = [torch.stack(layer) for layer in zip(*loaded)]
        del loaded
    else:
        test = random_maps(shapes, args.predict_images, seed=TEST_SEED)
    prediction = ensemble.predict(test)
    checkpoint("predict", start)

    net = ensemble.net_
    params = sum(p.numel() * p.element_size() for p in net.parameters())
    return {
        "phases": phases, "feature_width": sum(channels), "layers": len(shapes), "held_feature_bytes": held,
        "pool_bytes": ensemble.pool_bytes_, "pool_pixels": ensemble.pool_bytes_ // (2 * sum(channels)),
        "net_bytes": params, "hidden": list(ensemble.hidden_), "epochs": len(ensemble.history_),
        "final_loss": ensemble.history_[-1].loss, "colours_per_mask": regions,
        "predicted": list(prediction.labels.shape), "threads": torch.get_num_threads(),
    }


WORKERS = {"extract": worker_extract, "fit": worker_fit}


# ----------------------------------------------------------------------------------------------- parent


def run_worker(name: str, args, **extra) -> dict:
    command = [sys.executable, __file__, "--worker", name]
    options = dict(members=args.members, epochs=args.epochs, train_images=args.train_images,
                   predict_images=args.predict_images, layout=args.layout, threads=args.threads, **extra)
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    for flag in ("stream", "unet"):
        if getattr(args, flag):
            command.append(f"--{flag}")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"worker {name} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def reference_bytes(n_images: int, width: int) -> tuple[float, float]:
    """ddpm-segmentation's prepare_data: (held, peak) bytes for n_images at 256 px, D = width."""
    held = n_images * SIZE * SIZE * width * 4  # X: float32 [N, D, 256, 256]
    return held, 2 * held  # the permute-reshape copy and the mask-index copy each overlap a live one


def gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="2022",
                        help="2022: blocks 5-8,12 x steps 50,150,250 (8448 ch); 2021: blocks 6-9 x 4 steps (8192)")
    parser.add_argument("--train-images", type=int, default=10)
    parser.add_argument("--predict-images", type=int, default=2)
    parser.add_argument("--members", type=int, default=10, help="ensemble size (paper: 10)")
    parser.add_argument("--epochs", type=int, default=8,
                        help="max_epochs (the library's default, 8; ~45 s an epoch on 2 CPUs; peak RSS does not "
                             "depend on it)")
    parser.add_argument("--stream", action="store_true", help="make each image's maps as fit reads it")
    parser.add_argument("--unet", action="store_true",
                        help="real features of a random-weights FFHQ-256 UNet (slow on a CPU: ~45 s per image)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads in the workers (0: torch's default)")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        if args.threads:
            torch.set_num_threads(args.threads)
        print(json.dumps(WORKERS[args.worker](args)))
        return

    shapes = feature_shapes(args.layout)
    width = sum(c for c, _ in shapes)
    steps, blocks = LAYOUTS[args.layout]
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"layout {args.layout}: steps {list(steps)} x blocks {list(blocks)} -> {len(shapes)} layers, D = {width}; "
          f"per step " + ", ".join(f"{c} @ {s}" for c, s in shapes[: len(blocks)]))
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_diffusion_memory_") as tmp:
        source = "random N(0,1) maps of those shapes"
        if args.unet:
            ext = run_worker("extract", args, dir=tmp)
            source = (f"random-weights FFHQ-256 UNet ({ext['parameters'] / 1e6:.0f}M parameters; "
                      f"{ext['seconds_per_image']:.0f} s/image, extraction peak RSS {gb(ext['peak_rss'])})")
        r = run_worker("fit", args, dir=tmp)
    wall = time.perf_counter() - wall

    print(f"features: {source}; masks: {N_CLASSES}-class Voronoi, {r['colours_per_mask']} classes each")
    print(f"\n== A. ours (measured, fresh process, {r['threads']} threads): {args.train_images} images, "
          f"{args.members} members, hidden {tuple(r['hidden'])}, max_epochs {args.epochs} "
          f"({r['epochs']} run), {'streamed items' if args.stream else 'all maps held'}")
    print(f"{'phase':34s} {'seconds':>8s} {'RSS now':>10s} {'peak RSS':>10s}")
    labels = {"start": "process start (torch imported)",
              "features": f"build features + masks ({args.train_images})",
              "fit": "fit", "predict": f"predict ({args.predict_images} images)"}
    for name, p in r["phases"].items():
        print(f"{labels[name]:34s} {p['seconds']:8.1f} {gb(p['rss']):>10s} {gb(p['peak_rss']):>10s}")
    peak = r["phases"]["predict"]["peak_rss"]
    print(f"held training maps {gb(r['held_feature_bytes'])} (float32, native resolution); pixel pool "
          f"{gb(r['pool_bytes'])} ({r['pool_pixels']} pixels x {width} x fp16); net {gb(r['net_bytes'])} "
          f"(x4 with gradients and Adam's moments)")
    verdict = "PASS" if peak <= GB_LIMIT * 1e9 else "FAIL"
    print(f"peak RSS {gb(peak)} vs the {GB_LIMIT:.0f} GB bound: {verdict}")

    print(f"\n== B. the reference (ddpm-segmentation prepare_data, computed): float32 [N, {width}, 256, 256]")
    print(f"{'N':>3s} {'held':>10s} {'peak (x2)':>10s} {'ours':>10s} {'peak / ours':>12s}")
    for n in (args.train_images, 50):
        held, ref_peak = reference_bytes(n, width)
        ours = gb(peak) if n == args.train_images else "-"
        ratio = f"{ref_peak / peak:10.0f}x" if n == args.train_images else "-"
        print(f"{n:3d} {gb(held):>10s} {gb(ref_peak):>10s} {ours:>10s} {ratio:>12s}")
    print(f"\ntotal wall time {wall:.0f} s")


if __name__ == "__main__":
    main()
