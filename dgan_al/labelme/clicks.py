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

- Editing a pre-fill (``edit_clicks``), as in LabelMe and as Polygon-RNN++'s simulated annotator, which
  only drags; this one also inserts, deletes and draws (the matching and the cases: docs/effort.md).
  Polygons are kept or deleted by rule 1. A truth *region* is a 4-connected region of one class with its
  holes filled, its *outline* the line through its edge pixels' centres, as ``mask_to_polygons`` traces.
  1. Each kept polygon that shows a pixel is matched, one to one and best IoU first (greedy), to a region
     of its class by filled area. An unmatched one is deleted (1 click) unless all it shows is right.
  2. A matched polygon, in its own vertex order: each vertex farther than ``TRACE_TOLERANCE`` from the
     outline is dragged to its nearest outline point (1 click); then the farthest outline point beyond
     ``TRACE_TOLERANCE`` is inserted into its nearest edge (1 click), until none is. Never more than
     deleting it and drawing the region (then charged so).
  3. Every region nothing was matched to is drawn: its traced vertices.
  ``EDIT_MODEL`` numbers this model's revisions (``clicks.json`` records it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import scipy.ndimage

from dgan_al.labelme.format import IGNORE, label_values, shape_from_mapping
from dgan_al.labelme.polygons import count_vertices, mask_regions, mask_to_polygons, region_polygon
from dgan_al.labelme.rasterize import visible_pixels

TRACE_TOLERANCE = 1.0  # px: Douglas-Peucker tolerance of the annotator's polygons
TRACE_MIN_IOU = 0.97  # each traced region keeps at least this IoU with the truth
TOLERANCE_PX = 1  # a wrong pixel with its true class painted this close (Chebyshev) is left as it is
EDIT_MODEL = 2  # revision of edit_clicks (2: polygons keep their vertex order; hidden polygons cost nothing)


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


@dataclass(frozen=True)
class _Prefill:
    """A pre-fill judged by rule 1: each shape, the pixels it covers and shows, its mask value, kept?"""

    shapes: list
    covered: list  # bool [H, W] per shape: its filled area
    visible: list  # bool [H, W] per shape: what it shows (later shapes paint over earlier ones)
    values: list  # int per shape
    kept: list  # bool per shape


def _judge(prefill: Sequence[Mapping[str, Any]], truth: np.ndarray, classes: Sequence[str]) -> _Prefill:
    """Rule 1: a shape is deleted when less than half of the pixels it paints as LabelMe shows the file
    (later shapes over earlier ones) carry its label in ``truth``."""
    if truth.ndim != 2:
        raise ValueError(f"truth must be [H, W], got shape {truth.shape}")
    values = label_values(classes)
    shapes, labels = [], []
    for raw in prefill:
        shape = shape_from_mapping(raw)
        if shape.label not in values:
            raise ValueError(f"pre-filled shape label {shape.label!r} is no class of {list(classes)}")
        shapes.append(shape)
        labels.append(values[shape.label])
    covered, visible = visible_pixels(shapes, *truth.shape)
    kept = [2 * int(np.sum(own & (truth == value))) >= int(own.sum()) for own, value in zip(visible, labels)]
    return _Prefill(shapes, covered, visible, labels, kept)


def correction_clicks(prefill: Sequence[Mapping[str, Any]], truth: np.ndarray, classes: Sequence[str]) -> Correction:
    """Clicks to turn pre-filled shapes (LabelMe shape dicts) into ``truth`` (uint8 [H, W]) by re-tracing
    what is still wrong; see the top."""
    truth = np.asarray(truth)
    judged = _judge(prefill, truth, classes)
    corrected = np.zeros_like(truth, dtype=np.uint8)
    for covered, value, kept in zip(judged.covered, judged.values, judged.kept):
        if kept:
            corrected[covered] = value
    deleted, kept = judged.kept.count(False), judged.kept.count(True)
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


@dataclass(frozen=True)
class Edit:
    deleted: int  # pre-filled polygons deleted (1 click each): wrong, unmatched, or cheaper to redraw
    moved: int  # vertices dragged onto the outline (1 click each)
    inserted: int  # vertices inserted on an edge (1 click each)
    drawn: int  # vertices of the truth regions drawn from scratch
    edited: int  # pre-filled polygons kept and edited (0 clicks when already right)

    @property
    def clicks(self) -> int:
        return self.deleted + self.moved + self.inserted + self.drawn


class TruthRegions:
    """A truth mask's regions, their filled pixels and (when first needed) traced vertex counts: what
    ``edit_clicks`` derives from the truth alone, to share between pre-fills of one image."""

    def __init__(self, truth: np.ndarray):
        self.truth = np.asarray(truth)
        if self.truth.ndim != 2:
            raise ValueError(f"truth must be [H, W], got shape {self.truth.shape}")
        self.regions = mask_regions(self.truth)
        self.painted = [r.paint(*self.truth.shape) for r in self.regions]
        self.traced = _Traced(self.regions)


def edit_clicks(prefill: Sequence[Mapping[str, Any]], truth: np.ndarray | TruthRegions, classes: Sequence[str]) -> Edit:
    """Clicks to turn pre-filled shapes into ``truth`` (uint8 [H, W], or its ``TruthRegions``) by editing
    polygons; see the top."""
    known = truth if isinstance(truth, TruthRegions) else TruthRegions(truth)
    truth, regions, painted, traced = known.truth, known.regions, known.painted, known.traced
    judged = _judge(prefill, truth, classes)
    areas = [int(p.sum()) for p in painted]
    pairs = []  # (-IoU, shape index, region index) for every kept, visible polygon and region of its class
    shown = [k for k, (kept, own) in enumerate(zip(judged.kept, judged.visible)) if kept and own.any()]
    for k in shown:
        covered, value = judged.covered[k], judged.values[k]
        area = int(covered.sum())
        for j, region in enumerate(regions):
            if region.value == value:
                overlap = int(np.sum(covered & painted[j]))
                if overlap:
                    pairs.append((-overlap / (area + areas[j] - overlap), k, j))
    match: dict[int, int] = {}  # shape index -> region index
    taken: set[int] = set()
    for _, k, j in sorted(pairs):
        if k not in match and j not in taken:
            match[k] = j
            taken.add(j)
    deleted = judged.kept.count(False)
    for k in shown:  # unmatched: deleted, unless every pixel it shows is already right (then it is harmless)
        if k not in match and not np.all(truth[judged.visible[k]] == judged.values[k]):
            deleted += 1
    moved = inserted = edited = 0
    for k, j in sorted(match.items()):
        shape = judged.shapes[k]
        budget = 1 + traced[j]  # deleting the polygon and drawing the region
        cost = _edit_polygon(np.asarray(shape.points, dtype=np.float64), regions[j].outline(), budget) \
            if shape.shape_type == "polygon" else None  # other shapes are redrawn, not edited
        if cost is not None:
            moved, inserted, edited = moved + cost[0], inserted + cost[1], edited + 1
        else:
            deleted += 1
            taken.discard(j)
    drawn = sum(traced[j] for j in range(len(regions)) if j not in taken)
    return Edit(deleted=deleted, moved=moved, inserted=inserted, drawn=drawn, edited=edited)


class _Traced(dict):
    """Region index -> the vertices of its traced polygon (what drawing it costs), computed when first asked."""

    def __init__(self, regions):
        super().__init__()
        self.regions = regions

    def __missing__(self, j: int) -> int:
        self[j] = len(region_polygon(self.regions[j], TRACE_TOLERANCE, TRACE_MIN_IOU))
        return self[j]


def _edit_polygon(points: np.ndarray, outline: np.ndarray, budget: int) -> tuple[int, int] | None:
    """(vertices dragged, vertices inserted) to bring a polygon (float [P, 2] (x, y), in its own order)
    within ``TRACE_TOLERANCE`` of a closed outline (float [N, 2] (x, y), no repeated end point); None once
    that takes more than ``budget`` clicks. A dragged vertex goes to its nearest outline point; an inserted
    one goes into the polygon edge nearest to it, so the polygon keeps its order."""
    limit = TRACE_TOLERANCE + 1e-9
    starts, ends = outline, np.roll(outline, -1, axis=0)
    distance, t = _to_segments(points, starts, ends)  # [P, N]
    nearest = distance.argmin(axis=1)
    rows = np.arange(len(points))
    moved = distance[rows, nearest] > limit
    on_outline = starts[nearest] + t[rows, nearest][:, None] * (ends[nearest] - starts[nearest])
    polygon = np.where(moved[:, None], on_outline, points)
    clicks = int(moved.sum())
    if clicks > budget:
        return None
    gap, _ = _to_segments(outline, polygon, np.roll(polygon, -1, axis=0))  # [N, E]: outline point to edge
    inserted = 0
    while True:
        far = gap.min(axis=1)
        worst = int(far.argmax())
        if far[worst] <= limit:
            return clicks, inserted
        if clicks + inserted + 1 > budget:
            return None
        edge = int(gap[worst].argmin())  # the edge from vertex ``edge`` to the next: split it at the point
        polygon = np.insert(polygon, edge + 1, outline[worst], axis=0)
        following = polygon[(edge + 2) % len(polygon)]
        halves, _ = _to_segments(outline, polygon[edge:edge + 2], np.stack([polygon[edge + 1], following]))
        gap = np.concatenate([gap[:, :edge], halves, gap[:, edge + 1:]], axis=1)
        inserted += 1


def _to_segments(points: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from each point (float [P, 2]) to each segment (``starts``/``ends`` float [S, 2]), and
    the position of the nearest point along the segment in [0, 1]: both [P, S]."""
    direction = ends - starts  # [S, 2]
    length2 = np.maximum((direction ** 2).sum(axis=1), 1e-12)  # [S]
    offset = points[:, None, :] - starts[None, :, :]  # [P, S, 2]
    t = np.clip((offset * direction[None]).sum(axis=2) / length2, 0.0, 1.0)
    nearest = starts[None] + t[..., None] * direction[None]
    return np.sqrt(((points[:, None, :] - nearest) ** 2).sum(axis=2)), t


@dataclass(frozen=True)
class KeypointEdit:
    kept: int  # pre-filled points already within the tolerance of the truth (0 clicks)
    moved: int  # pre-filled points dragged to the truth (1 click each)
    added: int  # points placed where the pre-fill has none (1 click each)
    deleted: int  # pre-filled points of a keypoint the truth does not place (1 click each)
    flagged: int  # pre-filled points whose ``occluded`` flag is changed (1 click each)

    @property
    def clicks(self) -> int:
        return self.moved + self.added + self.deleted + self.flagged


def keypoint_clicks(prefilled: Mapping[str, Sequence[float]], truth: Mapping[str, Sequence[float]],
                    tolerance: float = TRACE_TOLERANCE) -> KeypointEdit:
    """Clicks to turn pre-filled keypoints into the truth, both ``name -> (x, y)`` or ``(x, y, v)`` (COCO v:
    0 = not placed, 1 = occluded, 2 = visible; v absent = 2). Per name: a pre-filled point within
    ``tolerance`` px of the truth costs 0, farther 1 (dragged); a missing one 1 (placed); one the truth
    does not place 1 (deleted); a kept or dragged point whose occluded flag is wrong 1 more (the label
    dialog). From an empty pre-fill it is 1 per point placed; ticking ``occluded`` while placing a point
    is part of that click, as choosing a label is."""
    def placed(points: Mapping[str, Sequence[float]]) -> dict[str, tuple[float, float, bool]]:
        out = {}
        for name, p in points.items():
            v = p[2] if len(p) > 2 else 2
            if v:
                out[name] = (float(p[0]), float(p[1]), v == 1)
        return out

    have, want = placed(prefilled), placed(truth)
    kept = moved = flagged = 0
    for name in have.keys() & want.keys():
        (x0, y0, occluded0), (x1, y1, occluded1) = have[name], want[name]
        if np.hypot(x1 - x0, y1 - y0) <= tolerance + 1e-9:
            kept += 1
        else:
            moved += 1
        flagged += occluded0 != occluded1
    return KeypointEdit(kept=kept, moved=moved, added=len(want.keys() - have.keys()),
                        deleted=len(have.keys() - want.keys()), flagged=flagged)
