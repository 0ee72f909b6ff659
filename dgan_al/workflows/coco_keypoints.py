"""``keypoints.json`` of a built dataset: the interpreter's keypoints in the COCO keypoint-detection format.

One category (the generated object), one image per sample of manifest.csv (same order) and one annotation
per image (https://cocodataset.org/#format-data):

    images       id = the sample's latent index (unique in a dataset: one seed per dataset), file_name
                 "images/<id>.png", width, height; extras: dgan_al_id, mask "masks/<id>.png", kept (0/1 as
                 manifest.csv: 0 = filtered out as most uncertain)
    annotations  id = latent index + 1 (COCOeval matches by annotation id and reads 0 as "no match"),
                 image_id, category_id 1, iscrowd 0, keypoints [x1, y1, v1, ..., xK, yK, vK] in the
                 category's order, num_keypoints = count of v > 0, bbox [x, y, w, h], area; extra:
                 confidence [K] (the heads' peak values, 4 decimals)
    categories   [{id 1, name "object", supercategory "object", keypoints: names, skeleton: 1-based pairs}]

Coordinates are label pixels of images/<id>.png and masks/<id>.png (the same size: both are the generator's
label geometry), with pixel centres at integers as LabelMe and COCO keypoints use: the top-left pixel's
centre is (0, 0); kept inside the image. v = 2 where the recorded confidence is at least the threshold
(``[keypoints] prefill_confidence``, as the pre-fill), else v = 0 with x = y = 0 (COCO: not labelled); the
heads do not predict occlusion, so v = 1 does not occur.

bbox and area, in COCO's box convention (pixel i spans [i, i+1)): the mask's object pixels (every class but
the background) when there are any: the box of those pixels, area their count (what pycocotools'
``toBbox`` / ``area`` give for that mask); else the box of the pixels holding the labelled keypoints,
area w * h; else [0, 0, 0, 0] and 0.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

CATEGORY_ID = 1
COORDINATES = ("label pixels of images/<id>.png and masks/<id>.png (the same size); pixel centres at integers "
               "(LabelMe, COCO keypoints): the top-left pixel's centre is (0, 0)")
BBOX_RULE = ("[x, y, w, h], pixel i spanning [i, i+1): the box of the mask's non-background pixels and area their "
             "count; without any, the box of the pixels holding the labelled keypoints and area w*h; else zeros")


def object_box(labels: np.ndarray) -> tuple[list[int], int]:
    """bbox [x, y, w, h] and area (pixel count) of the non-background pixels (class > 0) of a mask [H, W];
    ([0, 0, 0, 0], 0) without any."""
    obj = labels != 0
    cols, rows = np.flatnonzero(obj.any(0)), np.flatnonzero(obj.any(1))
    if cols.size == 0:
        return [0, 0, 0, 0], 0
    x0, x1, y0, y1 = int(cols[0]), int(cols[-1]), int(rows[0]), int(rows[-1])
    return [x0, y0, x1 - x0 + 1, y1 - y0 + 1], int(np.count_nonzero(obj))


def keypoint_rows(positions, confidence, width: int, height: int) -> list[list[float]]:
    """A sample's recorded keypoints: [x, y, confidence] per name, x, y kept inside the image and rounded to 2
    decimals, the confidence to 4 (so that every way of building writes the same bytes)."""
    out = []
    for (x, y), c in zip(positions.tolist(), confidence.tolist()):
        x = round(min(max(x, 0.0), width - 1.0), 2) + 0.0  # + 0.0: never -0.0
        y = round(min(max(y, 0.0), height - 1.0), 2) + 0.0
        out.append([x, y, round(c, 4) + 0.0])
    return out


def coco_keypoints(rows: Sequence[dict], kept: Sequence[bool], *, names: Sequence[str],
                   skeleton: Sequence[Sequence[str]], threshold: float, width: int, height: int,
                   info: dict) -> dict:
    """The COCO keypoints document of a dataset's ``rows`` (chunk records in manifest order: id, index,
    keypoints [[x, y, confidence]] per name, bbox, area); ``kept`` the filter's verdict per row."""
    index_of = {name: k for k, name in enumerate(names)}
    images, annotations = [], []
    for row, keep in zip(rows, kept):
        image_id = int(row["index"])
        images.append({"id": image_id, "file_name": f"images/{row['id']}.png", "width": width, "height": height,
                       "dgan_al_id": row["id"], "mask": f"masks/{row['id']}.png", "kept": int(bool(keep))})
        flat, placed = [], []
        for x, y, c in row["keypoints"]:
            if c >= threshold:
                flat += [x, y, 2]
                placed.append((x, y))
            else:
                flat += [0, 0, 0]
        bbox, area = list(row["bbox"]), row["area"]
        if area == 0 and placed:
            x0, x1 = (_pixel(min(p[0] for p in placed), width), _pixel(max(p[0] for p in placed), width))
            y0, y1 = (_pixel(min(p[1] for p in placed), height), _pixel(max(p[1] for p in placed), height))
            bbox = [x0, y0, x1 - x0 + 1, y1 - y0 + 1]
            area = bbox[2] * bbox[3]
        annotations.append({"id": image_id + 1, "image_id": image_id, "category_id": CATEGORY_ID, "iscrowd": 0,
                            "keypoints": flat, "num_keypoints": len(placed), "bbox": bbox, "area": area,
                            "confidence": [c for _, _, c in row["keypoints"]]})
    category = {"id": CATEGORY_ID, "name": "object", "supercategory": "object", "keypoints": list(names),
                "skeleton": [[index_of[a] + 1, index_of[b] + 1] for a, b in skeleton]}
    return {"info": info, "licenses": [], "images": images, "annotations": annotations, "categories": [category]}


def _pixel(coordinate: float, size: int) -> int:
    """The pixel (index) whose centre is nearest ``coordinate`` (centres at integers), inside [0, size)."""
    return min(max(int(math.floor(coordinate + 0.5)), 0), size - 1)
