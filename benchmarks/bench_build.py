"""Benchmark: build-dataset against a plain reference pipeline, same generator and interpreter, one run.

    python benchmarks/bench_build.py                         # toy-faces, 96 samples each way
    python benchmarks/bench_build.py --samples 256 --device cuda

Fast path: ``build_dataset`` itself (batched generator, the projected interpreter with JS and majority
vote, PNGs encoded on worker threads while the next batch is generated, chunk records).
Reference: the DatasetGAN reference pipeline — per image, upsample + concatenate every feature map to
full resolution, run each of the 10 member MLPs in turn (``interpreter/reference.py``), JS and vote,
then encode and write the two PNGs in the main thread.
Printed: samples/s of both, the ratio, and how often the two label maps agree (they should, up to
float rounding at ties). Results also go to ``benchmarks/results/bench_build.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from dgan_al.files import atomic_write_bytes  # noqa: E402
from dgan_al.device import resolve_device  # noqa: E402
from dgan_al.interpreter import PixelEnsemble  # noqa: E402
from dgan_al.interpreter.reference import reference_interpret, reference_members  # noqa: E402
from dgan_al.report import save_mask_png  # noqa: E402
from dgan_al.workflows.build_dataset import build_dataset, dataset_latents  # noqa: E402
from dgan_al.workflows.init import init_workspace  # noqa: E402
from dgan_al.workflows.oracle import oracle_annotate  # noqa: E402
from dgan_al.workspace.layout import Workspace  # noqa: E402


def make_workspace(root: Path, args) -> Workspace:
    """A toy-faces workspace whose round 1 interpreter (trained on the mean image) labels the samples.

    The cost of labelling does not depend on how many annotations the interpreter was trained on.
    """
    from dgan_al.workflows.next_round import next_round

    init_workspace(root, pool_size=args.pool)
    ws = Workspace.find(root)
    oracle_annotate(ws, 0)
    next_round(ws)
    return Workspace.find(root)


def reference_build(ws: Workspace, ensemble: PixelEnsemble, out: Path, n: int, seed: int, device) -> tuple[float, list]:
    generator = ws.load_generator(device=str(device))
    members = [m.to(device) for m in reference_members(ensemble.net_)]
    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir()
    labels_all = []
    t0 = time.perf_counter()
    batch = ws.config.run.batch
    for start in range(0, n, batch):
        z = dataset_latents(generator.z_dim, seed, start, min(batch, n - start))
        synthesis = generator.synthesize(z)
        for j in range(len(z)):
            maps = [f[j:j + 1] for f in synthesis.features]
            result = reference_interpret(members, maps, generator.geometry)
            id = f"d{seed}-{start + j:07d}"
            buf = io.BytesIO()
            Image.fromarray(synthesis.images[j].numpy()).save(buf, format="PNG")
            atomic_write_bytes(out / "images" / f"{id}.png", buf.getvalue())
            save_mask_png(out / "masks" / f"{id}.png", result["labels"].astype(np.uint8))
            labels_all.append(result["labels"])
    return time.perf_counter() - t0, labels_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=96)
    parser.add_argument("--pool", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_build.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    tmp = Path(tempfile.mkdtemp(prefix="bench-build-"))
    try:
        ws = make_workspace(tmp / "ws", args)
        fast_dir = tmp / "fast"
        t0 = time.perf_counter()
        result = build_dataset(ws, fast_dir, args.samples, seed=7, device=str(device))
        fast_s = time.perf_counter() - t0
        ensemble = PixelEnsemble.load(fast_dir / "interpreter.pt", device=device)
        ref_s, ref_labels = reference_build(ws, ensemble, tmp / "reference", args.samples, 7, device)
        fast_labels = [np.asarray(Image.open(fast_dir / "masks" / f"d7-{i:07d}.png")) for i in range(args.samples)]
        agree = float(np.mean([np.mean(a == b) for a, b in zip(fast_labels, ref_labels)]))
        figures = {
            "device": str(device), "threads": torch.get_num_threads(), "samples": args.samples,
            "resolution": list(ws.load_generator().geometry.size),
            "fast_samples_per_s": args.samples / fast_s, "reference_samples_per_s": args.samples / ref_s,
            "speedup": ref_s / fast_s, "label_agreement": agree,
            "fast_includes": "interpreter load, merge (filter, manifest, contact sheet)",
            "interpreter": result.interpreter_source,
        }
        print(f"build-dataset  {figures['fast_samples_per_s']:7.2f} samples/s  (whole command: generate, label, "
              f"PNGs on threads, merge)")
        print(f"reference      {figures['reference_samples_per_s']:7.2f} samples/s  (upsample-concat, 10 MLPs in turn, "
              f"PNGs in the main thread)")
        print(f"speed-up       {figures['speedup']:7.2f}x   labels equal on {agree:.2%} of pixels")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
