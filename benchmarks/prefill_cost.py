"""Which pre-fill is cheapest to correct: tracing settings of ``mask_to_polygons`` on a toy round.

A round is exported as ``dgan-al next-round`` does from this repository's seed annotations (the
shipped ``annotations/``, a pool of ``--pool`` latents, the default interpreter); for every image of
its uncertainty band (the images the round's picks are drawn from, the picks among them; ``--picks``:
the exported picks alone) the interpreter's predicted mask is traced with each setting, and we report
per image:
- vertices of the pre-fill (what a person sees and may move),
- pixel accuracy of the rasterised pre-fill against the predicted mask (what the tracing loses),
- correction clicks against the toy oracle's truth (``dgan_al.labelme.clicks``: delete each pre-filled
  polygon mostly off its class, then trace what is still wrong), the cost that matters,
with 95% intervals (t over images), and the paired difference in clicks against the export's
current setting (a setting is cheaper only when that interval lies below 0). "from scratch" is the
clicks of an empty file.

    python benchmarks/prefill_cost.py [--pool 600] [--picks] [--workspace /tmp/dgan-al-prefill-cost]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import scipy.stats
import torch

from dgan_al.interpreter import PixelEnsemble
from dgan_al.labelme import count_vertices, mask_to_polygons, rasterize
from dgan_al.labelme.clicks import correction_clicks, scratch_clicks
from dgan_al.workflows.export import PREFILL_TRACING, latent_tensor, read_selection
from dgan_al.workflows.interpreter import INTERPRETER_FILE
from dgan_al.workflows.next_round import RoundOverrides, next_round
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.layout import Workspace, latent_id

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {  # name -> mask_to_polygons options
    "adaptive 1px, IoU 0.97, specks < 6 px (before)": dict(tolerance=1.0, min_iou=0.97, min_pixels=6),
    "fixed 0.5px, specks < 6 px": dict(tolerance=0.5, min_iou=0.0, min_pixels=6),
    "fixed 1px, specks < 6 px": dict(tolerance=1.0, min_iou=0.0, min_pixels=6),
    "fixed 2px, specks < 6 px": dict(tolerance=2.0, min_iou=0.0, min_pixels=6),
    "fixed 3px, specks < 6 px": dict(tolerance=3.0, min_iou=0.0, min_pixels=6),
    "fixed 4px, specks < 6 px": dict(tolerance=4.0, min_iou=0.0, min_pixels=6),
    "fixed 8px, specks < 6 px": dict(tolerance=8.0, min_iou=0.0, min_pixels=6),
    "adaptive 2px, IoU 0.9, specks < 6 px": dict(tolerance=2.0, min_iou=0.9, min_pixels=6),
    "fixed 2px, specks < 20 px": dict(tolerance=2.0, min_iou=0.0, min_pixels=20),
    "fixed 2px, specks < 50 px": dict(tolerance=2.0, min_iou=0.0, min_pixels=50),
    "fixed 1px, specks < 20 px": dict(tolerance=1.0, min_iou=0.0, min_pixels=20),
    "fixed 3px, specks < 20 px": dict(tolerance=3.0, min_iou=0.0, min_pixels=20),
}
BEFORE = next(iter(SETTINGS))


def interval(values) -> str:
    """mean [95% t interval] over images."""
    values = np.asarray(values, dtype=np.float64)
    mean = values.mean()
    half = scipy.stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0
    return f"{mean:7.1f} [{mean - half:6.1f}, {mean + half:6.1f}]"


def exported_round(workspace: Path, pool: int) -> tuple[Workspace, int, float]:
    """A workspace with the shipped seed annotations and one round exported from them (reused if there)."""
    if not (workspace / "dgan-al.toml").is_file():
        workspace.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "dgan-al.toml", workspace / "dgan-al.toml")
        shutil.copytree(REPO / "annotations", workspace / "annotations")
    ws = Workspace.find(workspace)
    t0 = time.perf_counter()
    result = next_round(ws, RoundOverrides(pool_size=pool, device="cpu"))
    return ws, result.round, time.perf_counter() - t0


def band_items(ws: Workspace, folder: Path, selection: dict) -> list[dict]:
    """The round's uncertainty band: pool latents ranked by score (most uncertain first, those already
    used left out), ranks ``selection["band"]["ranks"]`` inclusive, as ``{"id", "z"}``."""
    seed = ws.config.pool.seed
    scores = np.concatenate([np.load(p)["score_sum"] for p in sorted((folder / "scores").glob("chunk_*.npz"))])
    pool = ws.pool_latents(ws.load_generator().z_dim, len(scores)).numpy()
    used = set(selection.get("annotations", []))
    order = [int(i) for i in np.argsort(-scores, kind="stable") if latent_id(seed, int(i)) not in used]
    lo, hi = selection["band"]["ranks"]
    return [{"id": latent_id(seed, i), "z": pool[i].tolist()} for i in order[lo:hi + 1]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=int, default=600, help="pool latents scored to choose the round")
    parser.add_argument("--picks", action="store_true", help="only the images the round exported, not its band")
    parser.add_argument("--workspace", type=Path, default=Path("/tmp/dgan-al-prefill-cost"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/prefill_cost.json")
    args = parser.parse_args()
    torch.manual_seed(0)

    ws, number, seconds = exported_round(args.workspace, args.pool)
    classes = ws.config.classes
    folder = ws.round_dir(number)
    selection = read_selection(folder)
    items = selection["items"] if args.picks else band_items(ws, folder, selection)
    generator = ws.load_generator()
    ensemble = PixelEnsemble.load(folder / INTERPRETER_FILE, expect_generator=generator.identity,
                                  expect_classes=classes)
    z = torch.stack([latent_tensor(item) for item in items])
    predicted = ensemble.predict(generator.synthesize(z).features).labels.numpy()  # uint8 [N, H, W]
    truth = np.asarray(generator.oracle_mask(z))  # uint8 [N, H, W]
    seeds = len(AnnotationStore(ws.annotations_dir).records)
    print(f"round {number:03d} of {args.workspace}: {len(selection['items'])} images exported from {seeds} seed "
          f"annotations, pool {args.pool} ({seconds:.0f} s); measured on {len(items)} images "
          f"({'the picks' if args.picks else 'its band'})", flush=True)
    scratch = [scratch_clicks(t, classes) for t in truth]
    accuracy_of_prediction = [float(np.mean(p == t)) for p, t in zip(predicted, truth)]
    print(f"prediction vs truth: pixel accuracy {np.mean(accuracy_of_prediction):.3f}; "
          f"from scratch {interval(scratch)} clicks per image", flush=True)

    rows, clicks_by = {}, {}
    t0 = time.perf_counter()
    for name, options in SETTINGS.items():
        vertices, accuracy, clicks = [], [], []
        for pred, true in zip(predicted, truth):
            shapes = mask_to_polygons(pred, classes, **options)
            vertices.append(count_vertices(shapes))
            accuracy.append(float(np.mean(rasterize(shapes, *pred.shape, classes) == pred)))
            clicks.append(correction_clicks(shapes, true, classes).clicks)
        clicks_by[name] = np.array(clicks)
        rows[name] = {"options": options, "vertices": vertices, "pixel_accuracy": accuracy, "clicks": clicks}
    print(f"{'setting':48s} {'vertices / image':>26s} {'pixel acc.':>10s} {'correction clicks / image':>27s} "
          f"{'clicks - before':>27s}")
    for name, row in rows.items():
        diff = clicks_by[name] - clicks_by[BEFORE]
        shipped = " *" if row["options"] == PREFILL_TRACING else ""
        print(f"{name + shipped:48s} {interval(row['vertices']):>26s} {np.mean(row['pixel_accuracy']):10.4f} "
              f"{interval(row['clicks']):>27s} {interval(diff):>27s}")
    print("* the export's setting (PREFILL_TRACING in dgan_al/workflows/export.py)")
    cheapest = min(rows, key=lambda n: float(np.mean(rows[n]["clicks"])))
    print(f"cheapest to correct: {cheapest} ({np.mean(rows[cheapest]['clicks']):.1f} clicks per image, "
          f"{np.mean(rows[BEFORE]['clicks']):.1f} before, {np.mean(scratch):.1f} from scratch); "
          f"{time.perf_counter() - t0:.0f} s for the settings")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"round": number, "pool": args.pool, "ids": [i["id"] for i in items],
                                    "scratch_clicks": scratch, "settings": rows, "cheapest": cheapest}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
