"""Benchmark: the fast interpreter against the plain reference (datasetGAN_release's algorithm).

    python benchmarks/bench_interpreter.py                      # 256px, 8 images, fit RSS at 256 and 512
    python benchmarks/bench_interpreter.py --resolution 512     # inference at 512 too (the reference is slow)
    python benchmarks/bench_interpreter.py --device cuda --resolution 512 --images 64 --batch 16 --fit-resolutions ""

On a config-F-shaped StyleGAN2 with random weights (``random_generator``), in one run:

1. Annotations: ``--train-images`` images are generated and their native feature maps cached as
   float16 (the cache the loop keeps; its size per image is printed), with synthetic masks (the
   blurred image's brightness cut into ``--classes`` quantile bands: blobby regions the features
   encode).
2. Training: ``PixelEnsemble.fit`` streams those items from the cache, in a fresh process per
   resolution so that its peak RSS is clean; printed next to the memory the reference design needs for
   the same data (every pixel x feature width x 6 bytes, fp16 + fp32 copy), which is also measured at
   a small size.
3. Inference: the trained ensemble on ``--images`` new latents, generator + interpreter + JS, ours and
   the reference, each in its own process (peak RSS), plus the generator alone (the floor). Printed:
   images/s, the ratio, label agreement, the JS max difference, peak memory, and our image-score-only
   times for the coarse-grid and pixel-subset scores.

The machine here is shared and its load varies: per-image times are medians over the images.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import ndimage  # noqa: E402

from dgan_al.generators.stylegan2 import StyleGAN2Config, random_generator  # noqa: E402
from dgan_al.interpreter import PixelEnsemble  # noqa: E402
from dgan_al.interpreter.feature_cache import load_feature_maps, save_feature_maps  # noqa: E402
from dgan_al.interpreter.reference import (  # noqa: E402
    reference_interpret,
    reference_members,
    reference_training_bytes,
    upsampled_features,
)

TRAIN_SEED, TEST_SEED = 11, 12  # latent streams of the annotated and the benchmarked images


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def make_generator(resolution: int, device: str):
    return random_generator(StyleGAN2Config.config_f(resolution), seed=0, device=device)


def synthetic_mask(image: np.ndarray, n_classes: int) -> np.ndarray:
    """Brightness of the blurred image cut into n_classes quantile bands: uint8 [H, W]."""
    gray = ndimage.gaussian_filter(image.astype(np.float32).mean(-1), sigma=image.shape[0] / 64)
    edges = np.quantile(gray, np.linspace(0, 1, n_classes + 1)[1:-1])
    return np.digitize(gray, edges).astype(np.uint8)


# ----------------------------------------------------------------------------------------------- workers
# Each worker runs in its own process, prints one JSON line, and is started by the parent below.


def worker_cache(args) -> dict:
    """Generate the annotated images, cache their native maps as float16 plus the masks."""
    generator = make_generator(args.resolution, args.device)
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    latents = generator.sample_latents(args.n, seed=TRAIN_SEED)
    sizes = []
    for i in range(args.n):
        synthesis = generator.synthesize(latents[i : i + 1])
        path = out / f"item_{i:03d}.pt"
        save_feature_maps(path, synthesis.features)
        np.save(out / f"mask_{i:03d}.npy", synthetic_mask(synthesis.images[0].cpu().numpy(), args.classes))
        sizes.append(path.stat().st_size)
    geometry = generator.geometry
    return {"bytes_per_image": statistics.mean(sizes), "feature_width": sum(generator.feature_channels),
            "canvas": list(geometry.canvas), "crop": list(geometry.crop)}


def cached_items(directory: Path):
    """Stream (maps, mask) items from the cache, one file at a time."""
    for path in sorted(directory.glob("item_*.pt")):
        yield load_feature_maps(path), np.load(path.with_name(path.name.replace("item_", "mask_")[:-3] + ".npy"))


def worker_fit(args) -> dict:
    generator_config = StyleGAN2Config.config_f(args.resolution)
    directory = Path(args.dir)
    n_items = len(list(directory.glob("item_*.pt")))
    from dgan_al.geometry import LabelGeometry

    geometry = LabelGeometry.full(args.resolution, args.resolution)
    baseline = peak_rss_bytes()
    ensemble = PixelEnsemble(
        generator_config.feature_channels(), [f"class{i}" for i in range(args.classes)],
        generator=f"random-stylegan2:{args.resolution}px:seed0", max_epochs=args.epochs, device=args.device,
    )
    start = time.perf_counter()
    ensemble.fit(cached_items(directory), geometry)
    seconds = time.perf_counter() - start
    if args.save:
        ensemble.save(args.save)
    return {"peak_rss": peak_rss_bytes(), "baseline_rss": baseline, "seconds": seconds, "images": n_items,
            "pool_bytes": ensemble.pool_bytes_, "epochs": len(ensemble.history_),
            "final_loss": ensemble.history_[-1].loss, "final_accuracy": ensemble.history_[-1].accuracy}


def worker_reference_memory(args) -> dict:
    """The reference's training arrays for one image cropped to ``--crop`` pixels square, measured."""
    generator = make_generator(args.resolution, "cpu")
    synthesis = generator.synthesize(generator.sample_latents(1, seed=TRAIN_SEED))
    from dgan_al.geometry import LabelGeometry

    crop = min(args.crop, args.resolution)
    geometry = LabelGeometry(canvas=generator.geometry.canvas, crop=(0, 0, crop, crop))
    before = current_rss_bytes()
    # train_interpreter.prepare_data: np.float16 [N*H*W, D], filled from the upsampled maps ...
    features = upsampled_features(synthesis.features, geometry)  # [HW, D] float32 (a transient per image)
    train = np.zeros(features.shape, dtype=np.float16)
    train[:] = features.numpy()
    del features
    as_float = torch.FloatTensor(train)  # ... then trainData(torch.FloatTensor(...)): a float32 copy
    measured = current_rss_bytes() - before  # what stays held for training: fp16 array + fp32 copy
    computed = reference_training_bytes(1, crop, crop, train.shape[1])
    del as_float
    return {"measured_bytes": measured, "computed_bytes": computed, "pixels": crop * crop}


def worker_infer(args) -> dict:
    """Generator + interpreter + JS on ``--n`` images (after a warm-up batch) for one implementation.

    Ours and the generator run ``--batch`` images at a time (what a GPU needs); the reference runs one
    image at a time, as datasetGAN_release does. Every implementation sees the same latents."""
    torch.set_grad_enabled(False)
    generator = make_generator(args.resolution, args.device)
    latents = generator.sample_latents(args.n + 1, seed=TEST_SEED)  # latent 0 only warms up
    batch = 1 if args.impl == "reference" else max(1, args.batch)
    ensemble = None if args.impl == "generator" else PixelEnsemble.load(args.ensemble, device=args.device)
    members = None
    if args.impl == "reference":
        members = [m.to(args.device) for m in reference_members(ensemble.net_.cpu())]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    total_times, interpreter_times, score_times = [], [], {"grid:4": [], "subset:4096": []}
    labels, js = [], []
    baseline = peak_rss_bytes()
    batches = [latents[:1].expand(batch, -1)] + list(latents[1:].split(batch))
    for b, z in enumerate(batches):
        sync()
        start = time.perf_counter()
        synthesis = generator.synthesize(z)
        sync()
        middle = time.perf_counter()
        if args.impl == "ours":
            prediction = ensemble.predict(synthesis.features)
            sync()
            result_labels, result_js = prediction.labels.long().numpy(), prediction.js.numpy()
        elif args.impl == "reference":
            result = reference_interpret(members, synthesis.features, generator.geometry)
            result_labels, result_js = result["labels"][None], result["js"][None]
        end = time.perf_counter()
        if b == 0:
            continue  # warm-up
        total_times += [(end - start) / len(z)] * len(z)
        interpreter_times += [(end - middle) / len(z)] * len(z)
        if args.impl != "generator":
            labels.extend(result_labels)
            js.extend(result_js)
        if args.impl == "ours":
            for pixels in score_times:
                t0 = time.perf_counter()
                ensemble.score_images(synthesis.features, pixels=pixels)
                sync()
                score_times[pixels] += [(time.perf_counter() - t0) / len(z)] * len(z)
    if labels:
        np.savez(args.out, labels=np.stack(labels), js=np.stack(js))
    peak_gpu = torch.cuda.max_memory_allocated() if args.device.startswith("cuda") else None
    return {
        "seconds_per_image": statistics.median(total_times),
        "interpreter_seconds_per_image": statistics.median(interpreter_times),
        "score_seconds_per_image": {k: statistics.median(v) for k, v in score_times.items() if v},
        "peak_rss": peak_rss_bytes(), "baseline_rss": baseline, "peak_gpu_bytes": peak_gpu,
    }


WORKERS = {"cache": worker_cache, "fit": worker_fit, "reference-memory": worker_reference_memory, "infer": worker_infer}


# ----------------------------------------------------------------------------------------------- parent


def run_worker(name: str, threads: int = 0, **kwargs) -> dict:
    command = [sys.executable, __file__, "--worker", name, "--threads", str(threads)]
    for key, value in kwargs.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"worker {name} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=256, help="inference benchmark resolution")
    parser.add_argument("--images", type=int, default=8, help="benchmarked images (after one warm-up)")
    parser.add_argument("--batch", type=int, default=1,
                        help="images per batch for ours and the generator (the reference runs one at a time)")
    parser.add_argument("--train-images", type=int, default=16)
    parser.add_argument("--fit-resolutions", default="256,512", help="resolutions for the fit RSS, comma-separated")
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2, help="max_epochs of the fits (peak RSS does not depend on it)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads in every worker (0: torch's default)")
    # worker arguments
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--dir")
    parser.add_argument("--n", type=int)
    parser.add_argument("--save")
    parser.add_argument("--impl", choices=["ours", "reference", "generator"])
    parser.add_argument("--ensemble")
    parser.add_argument("--out")
    parser.add_argument("--crop", type=int, default=128)
    args = parser.parse_args()

    if args.worker:
        if args.threads:
            torch.set_num_threads(args.threads)
        print(json.dumps(WORKERS[args.worker](args)))
        return

    fit_resolutions = sorted({int(r) for r in args.fit_resolutions.split(",") if r} | {args.resolution})
    threads = args.threads or torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads per worker, device {args.device}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="bench_interpreter_") as tmp:
        tmp = Path(tmp)
        print(f"\n== training: {args.train_images} annotated images, {args.classes} classes, "
              f"max_epochs={args.epochs}, a fresh process per resolution")
        ensembles = {}
        for resolution in fit_resolutions:
            cache = tmp / f"cache_{resolution}"
            info = run_worker("cache", args.threads, resolution=resolution, n=args.train_images, dir=cache,
                              classes=args.classes, device=args.device)
            ensembles[resolution] = tmp / f"ensemble_{resolution}.pt"
            fit = run_worker("fit", args.threads, resolution=resolution, dir=cache, classes=args.classes,
                             epochs=args.epochs, save=ensembles[resolution], device=args.device)
            reference_bytes = reference_training_bytes(fit["images"], resolution, resolution, info["feature_width"])
            print(f"{resolution}px  D={info['feature_width']}"
                  f"  feature cache {info['bytes_per_image'] / 1e6:.1f} MB/image (fp16)"
                  f"  | fit: peak RSS {gb(fit['peak_rss'])} (process baseline {gb(fit['baseline_rss'])}),"
                  f" pixel pool {gb(fit['pool_bytes'])}, {fit['seconds']:.0f} s, {fit['epochs']} epochs,"
                  f" train acc {fit['final_accuracy']:.2f}"
                  f"  | reference design: {gb(reference_bytes)} (computed)")
            for path in cache.glob("item_*.pt"):
                path.unlink()
        small = run_worker("reference-memory", args.threads, resolution=fit_resolutions[0], crop=128)
        print(f"reference design measured at {small['pixels']} pixels: {gb(small['measured_bytes'])} RSS growth vs "
              f"{gb(small['computed_bytes'])} computed")

        resolution = args.resolution
        print(f"\n== inference at {resolution}px: generator + interpreter + JS, {args.images} images "
              f"(median per image; ours and the generator in batches of {args.batch}), a process each")
        common = dict(resolution=resolution, n=args.images, ensemble=ensembles[resolution], device=args.device,
                      batch=args.batch)
        floor = run_worker("infer", args.threads, impl="generator", out=tmp / "gen.npz", **common)
        ours = run_worker("infer", args.threads, impl="ours", out=tmp / "ours.npz", **common)
        rows = [("generator alone", floor), ("ours", ours)]
        if not args.skip_reference:
            reference = run_worker("infer", args.threads, impl="reference", out=tmp / "ref.npz", **common)
            rows.append(("reference", reference))
        for name, r in rows:
            gpu = f", peak GPU {gb(r['peak_gpu_bytes'])}" if r["peak_gpu_bytes"] else ""
            print(f"{name:16s} {1 / r['seconds_per_image']:8.3f} img/s"
                  f"  (interpreter+JS {r['interpreter_seconds_per_image']:.3f} s/img)"
                  f"  peak RSS {gb(r['peak_rss'])}{gpu}")
        scores = ours["score_seconds_per_image"]
        print("ours, image score only: " + ", ".join(f"{k} {v:.3f} s/img" for k, v in scores.items())
              + f" (full: {ours['interpreter_seconds_per_image']:.3f} s/img)")
        if not args.skip_reference:
            a, b = np.load(tmp / "ours.npz"), np.load(tmp / "ref.npz")
            agreement = (a["labels"] == b["labels"]).mean()
            js_diff = np.abs(a["js"] - b["js"]).max()
            ratio = reference["seconds_per_image"] / ours["seconds_per_image"]
            interp_ratio = reference["interpreter_seconds_per_image"] / ours["interpreter_seconds_per_image"]
            print(f"\nspeed-up, ours vs reference: {ratio:.2f}x end to end, {interp_ratio:.2f}x interpreter+JS alone")
            print(f"labels equal: {100 * agreement:.3f}%   JS max |diff|: {js_diff:.2e} nats   "
                  f"mean JS {b['js'].mean():.4f} nats")


if __name__ == "__main__":
    main()
