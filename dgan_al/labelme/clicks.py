"""The annotator's effort in clicks: from scratch, or correcting a pre-filled LabelMe file.

One click per polygon vertex placed and one per polygon deleted (Cai et al., CVPR 2021, count the cost
of segmentation active learning in clicks). Polygons are traced with ``mask_to_polygons`` at this
module's own fixed tolerance (``TRACE_TOLERANCE`` px, ``TRACE_MIN_IOU``), independent of the export's
pre-fill settings; the simulated annotator draws its polygons with the same tracing (``trace``).

- From scratch (``scratch_clicks``): the vertices of the polygons that trace the truth mask.
- Correcting a pre-fill (``correction_clicks``):
  1. a pre-filled polygon is wrong when less than half of its own pixels carry its label in the truth:
     the annotator deletes it (1 click each). Its own pixels are those it paints in the file as LabelMe
     shows it (later shapes over earlier ones), so a polygon around a hole is judged by its ring;
  2. the kept polygons are rasterised in file order (later over earlier) into the corrected pre-fill;
  3. a pixel still needs fixing when its truth class differs from the corrected pre-fill and that
     class is not painted within ``TOLERANCE_PX`` (1 px, 8-neighbourhood) of it: boundaries off by a
     pixel are what tracing at this tolerance leaves as well, and nobody redraws them;
  4. those pixels, each with its truth class (background errors with a class of their own), are traced
     as one mask and the vertices of its polygons are added. Pixels already right cost nothing.
So a pre-fill equal to the truth costs 0, an empty one costs exactly ``scratch_clicks``, and one wrong
polygon costs 1 plus the vertices of the right one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import scipy.ndimage

from dgan_al.labelme.format import IGNORE, label_values, shape_from_mapping
from dgan_al.labelme.polygons import count_vertices, mask_to_polygons
from dgan_al.labelme.rasterize import shape_mask

TRACE_TOLERANCE = 1.0  # px: Douglas-Peucker tolerance of the annotator's polygons
TRACE_MIN_IOU = 0.97  # each traced region keeps at least this IoU with the truth
TOLERANCE_PX = 1  # a wrong pixel with its true class painted this close (Chebyshev) is left as it is


def trace(mask: np.ndarray, classes: Sequence[str]) -> list[dict[str, Any]]:
    """The annotator's polygons for a class mask uint8 [H, W] (LabelMe shape dicts, painting order)."""
    return mask_to_polygons(mask, classes, tolerance=TRACE_TOLERANCE, min_iou=TRACE_MIN_IOU)


def scratch_clicks(truth: np.ndarray, classes: Sequence[str]) -> int:
    """Clicks to annotate ``truth`` (uint8 [H, W] class ids) from an empty file: one per vertex."""
    return count_vertices(trace(truth, classes))


@dataclass(frozen=True)
class Correction:
    deleted: int  # wrong pre-filled polygons deleted (1 click each)
    vertices: int  # vertices of the polygons drawn over what was still wrong
    kept: int  # pre-filled polygons kept

    @property
    def clicks(self) -> int:
        return self.deleted + self.vertices


def correction_clicks(prefill: Sequence[Mapping[str, Any]], truth: np.ndarray, classes: Sequence[str]) -> Correction:
    """Clicks to turn pre-filled shapes (LabelMe shape dicts) into ``truth`` (uint8 [H, W]); see the top."""
    truth = np.asarray(truth)
    if truth.ndim != 2:
        raise ValueError(f"truth must be [H, W], got shape {truth.shape}")
    values = label_values(classes)
    height, width = truth.shape
    owner = np.full(truth.shape, -1, dtype=np.int64)  # the shape that paints each pixel (-1: none)
    shapes, labels = [], []
    for k, raw in enumerate(prefill):
        shape = shape_from_mapping(raw)
        if shape.label not in values:
            raise ValueError(f"pre-filled shape label {shape.label!r} is no class of {list(classes)}")
        covered = shape_mask(shape, height, width)
        owner[covered] = k
        shapes.append(covered)
        labels.append(values[shape.label])
    corrected = np.zeros_like(truth, dtype=np.uint8)
    deleted = kept = 0
    for k, (covered, value) in enumerate(zip(shapes, labels)):
        own = owner == k
        if 2 * int(np.sum(own & (truth == value))) < int(own.sum()):
            deleted += 1
            continue
        corrected[covered] = value
        kept += 1
    wrong = truth != corrected
    if TOLERANCE_PX:
        near = np.ones((2 * TOLERANCE_PX + 1,) * 2, dtype=bool)
        for value in np.unique(truth[wrong]).tolist():
            here = wrong & (truth == value)
            wrong[here & scipy.ndimage.binary_dilation(corrected == value, structure=near)] = False
    # what still needs drawing: each wrong pixel with its truth class; background to paint gets its own
    # class (the last id) so that it is traced and not taken for the untouched background
    fix_classes = [*classes, "background-fix"]
    fix = np.zeros_like(truth, dtype=np.uint8)
    fix[wrong] = truth[wrong]
    fix[wrong & (truth == 0)] = len(classes)
    fix[wrong & (truth == IGNORE)] = IGNORE
    vertices = count_vertices(mask_to_polygons(fix, fix_classes, tolerance=TRACE_TOLERANCE, min_iou=TRACE_MIN_IOU))
    return Correction(deleted=deleted, vertices=vertices, kept=kept)
