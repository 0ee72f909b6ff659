"""Pre-fill fidelity: toy-faces oracle mask -> LabelMe polygons -> rasterised mask, on held-out latents.

What an annotator gets in a pre-filled file is ``mask_to_polygons`` of the prediction, and what comes back
is LabelMe's rasterisation of the polygons. This measures how much of a mask survives that round trip
(per-image mIoU over the classes present, and per-class IoU pooled over all images) and how many vertices
an annotator would face per image, with the export's settings (``min_pixels=6``) and the defaults.

    python benchmarks/labelme_round_trip.py [--images 200]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from dgan_al.generators.protocol import sample_latents
from dgan_al.generators.toy_faces.classes import CLASSES
from dgan_al.generators.toy_faces.render import oracle_mask
from dgan_al.labelme import rasterize
from dgan_al.labelme.polygons import count_vertices, mask_to_polygons
from dgan_al.metrics import confusion_matrix, iou_per_class

HELD_OUT_SEED = 2_000  # the latents the toy-faces report uses


def image_miou(truth: np.ndarray, back: np.ndarray) -> float:
    """mIoU of one image over the classes present in the truth or the round trip."""
    ious = iou_per_class(confusion_matrix(back, truth, len(CLASSES)))
    return float(np.nanmean(ious))


def measure(masks: np.ndarray, **options) -> dict:
    per_image, vertices, seconds = [], [], []
    pooled = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
    for truth in masks:
        t0 = time.perf_counter()
        shapes = mask_to_polygons(truth, CLASSES, **options)
        seconds.append(time.perf_counter() - t0)
        back = rasterize(shapes, *truth.shape, CLASSES)
        per_image.append(image_miou(truth, back))
        pooled += confusion_matrix(back, truth, len(CLASSES))
        vertices.append(count_vertices(shapes))
    class_iou = iou_per_class(pooled)
    return {
        "options": options,
        "image_miou": {"mean": float(np.mean(per_image)), "min": float(np.min(per_image)),
                       "p10": float(np.percentile(per_image, 10))},
        "class_iou": {name: (None if np.isnan(v) else round(float(v), 4)) for name, v in zip(CLASSES, class_iou)},
        "vertices_per_image": {"mean": float(np.mean(vertices)), "p90": float(np.percentile(vertices, 90)),
                               "max": int(np.max(vertices))},
        "ms_per_image": 1000 * float(np.mean(seconds)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/labelme_round_trip.json"))
    args = parser.parse_args()

    masks = oracle_mask(sample_latents(32, args.images, seed=HELD_OUT_SEED).numpy())
    results = {"images": args.images, "export (min_pixels=6)": measure(masks, min_pixels=6),
               "defaults": measure(masks)}
    for name, r in results.items():
        if name == "images":
            continue
        print(f"{name}: image mIoU mean {r['image_miou']['mean']:.4f} (min {r['image_miou']['min']:.4f}, "
              f"p10 {r['image_miou']['p10']:.4f}); vertices per image mean {r['vertices_per_image']['mean']:.0f} "
              f"(p90 {r['vertices_per_image']['p90']:.0f}); {r['ms_per_image']:.1f} ms per image")
        print("  class IoU: " + ", ".join(f"{k} {v:.3f}" for k, v in r["class_iou"].items() if v is not None))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
