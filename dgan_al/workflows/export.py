"""Export a round's chosen images for annotation in LabelMe.

``rounds/round_NNN/annotate/`` gets only what a person annotates (LabelMe lists every image below the
folder it opens): per chosen latent ``<id>.png`` and ``<id>.json`` (pre-filled with the interpreter's
predicted polygons unless asked not to) and the labels file. Beside it, in ``rounds/round_NNN/``:
``selection.json`` (ids, latents, scores, ranks, coreset order and distances, image and JSON sha256),
``contact_sheet.png`` and ``README.txt`` (``RoundFiles`` in ``workspace/layout.py`` says where each
file lives). The JSON carries our metadata in the extra key ``dgan_al`` (LabelMe keeps unknown keys).
"""

from __future__ import annotations

import io
import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from dgan_al.files import atomic_write_bytes, atomic_write_json, atomic_write_text, sha256_file
from dgan_al.generators.photos import is_photo
from dgan_al.generators.protocol import Generator
from dgan_al.labelme import mask_to_polygons, write_labelme, write_labels_file
from dgan_al.labelme.format import CHECK_FLAG, EXPORT_FLAGS, KEYPOINT_EXPORT_FLAGS, OCCLUDED_FLAG, shape_from_mapping
from dgan_al.labelme.rasterize import visible_pixels
from dgan_al.progress import ProgressCallback, silent
from dgan_al.report import contact_sheet, heatmap, overlay
from dgan_al.workspace.layout import RoundFiles

META_KEY = "dgan_al"
# JSON files of ours in a round folder (an earlier version's round folder also holds the LabelMe files)
OWN_FILES = {"selection.json", "state.json", "clicks.json"}
# How the pre-fill is traced (mask_to_polygons options), chosen by what editing it into the truth costs
# (benchmarks/prefill_design.py, docs/effort.md), not by its vertex count.
PREFILL_TRACING = {"tolerance": 1.0, "min_iou": 0.0, "min_pixels": 6}
# A pre-filled polygon is flagged ``check`` where its mean JS exceeds this multiple of the image's mean JS
# (an attention aid for the person; it changes no click count, so it is not measured).
CHECK_JS_RATIO = 6.0


def prefill_allowed(enabled: bool, trained_on: int, min_annotations: int) -> tuple[bool, str]:
    """Whether a round's files are pre-filled by an interpreter trained on ``trained_on`` annotated images,
    and the reason in words (README.txt, selection.json); ``[run] prefill_min_annotations`` holds the
    pre-fill back until the interpreter has seen that many images."""
    if not enabled:
        return False, "not pre-filled: pre-fill is off ([run] prefill = false)"
    if trained_on < min_annotations:
        return False, (f"not pre-filled: the interpreter was trained on {trained_on} annotated image(s), fewer than "
                       f"[run] prefill_min_annotations = {min_annotations}")
    return True, f"pre-filled with the prediction of the interpreter trained on {trained_on} annotated images"


@dataclass
class ExportItem:
    id: str
    z: torch.Tensor  # [z_dim]: what ``generator.synthesize`` takes (a photo's key: ``photos.photo_key``)
    latent: dict  # {"seed": s, "index": i}, {"mean": True}, or a photo's {"pool_id", "name", "sha256"}
    score: float | None = None
    rank: int | None = None  # 0 = the most uncertain of the pool
    coreset_order: int | None = None
    coreset_distance: float | None = None
    extra: dict = field(default_factory=dict)


README = """\
dgan-al round {round:03d}: images to annotate
{rule}

What to do (DatasetGAN's protocol):
  1. Open the images in LabelMe:   dgan-al annotate {round}
     (or run LabelMe yourself on the folder annotate/, which holds only the files to annotate)
  2. {which}{prefill}
     Every pixel you do not cover is background; use the label __ignore__ for pixels to leave out.
  3. Tick the image flag "done" when an image is finished: only "done" files are imported.
     Tick "unrealistic" on images not worth annotating (GAN failures) and on the ones you leave out:
     they are recorded as skipped, and no file stays pending.
  4. Run `dgan-al next-round` again: it imports what you finished and picks the next images.

Do not rename the files: each image is tied to its latent by its name and checksum.
Files: annotate/<id>.png and annotate/<id>.json (one per image), annotate/labels.txt (the classes);
here: selection.json (why these images), contact_sheet.png (the images with the current prediction and
its uncertainty), interpreter.pt, state.json and scores/ (the round's model and pool scores).
`dgan-al status` lists which files are done, skipped, have a problem, or are untouched.
"""


def export_round(folder: Path, number: int, generator: Generator, items: list[ExportItem], classes: list[str],
                 ensemble=None, prefill: bool = True, keep: int | None = None, rule: str = "",
                 selection: dict | None = None, batch: int = 16, progress: ProgressCallback = silent,
                 prefill_note: str = "", keep_prediction: bool = False, keypoints: Sequence[str] = (),
                 prefill_confidence: float = 0.2) -> dict:
    """Write the round's files; returns the selection record (also written to selection.json).

    ``prefill``: write the ensemble's predicted polygons into the JSON files (``prefill_allowed`` decides);
    ``prefill_note`` says why or why not (recorded in selection.json as ``prefill``); ``keep_prediction``
    writes the ensemble's labels and JS of every image to ``RoundFiles.prediction``, so that the pre-fill can
    be re-counted under other settings (``benchmarks/prefill_design.py``); ``keypoints``: the workspace's
    keypoint names, offered as labels beside the classes, with the image flag ``keypoints`` (left unticked:
    the person ticks it when the points are done); with an ensemble that has keypoint heads, the pre-fill
    also writes a ``point`` shape per predicted keypoint whose confidence is at least ``prefill_confidence``
    (``[keypoints] prefill_confidence``), after the polygons."""
    files = RoundFiles(folder)
    annotate = files.annotate
    annotate.mkdir(parents=True, exist_ok=True)
    write_labels_file(files.labels, classes, keypoints)
    image_flags = dict.fromkeys(KEYPOINT_EXPORT_FLAGS if keypoints else EXPORT_FLAGS, False)
    records, sheet_rows, captions = [], [], []
    kept_labels, kept_js = [], []
    z = torch.stack([item.z for item in items]) if items else torch.zeros(0, generator.z_dim)
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        out = generator.synthesize(z[start:start + batch])
        pred = ensemble.predict(out.features) if ensemble is not None else None
        if pred is not None and keep_prediction:
            kept_labels.append(pred.labels.numpy().astype(np.uint8))
            kept_js.append(pred.js.numpy().astype(np.float16))
        for j, item in enumerate(chunk):
            image = out.images[j].numpy()
            json_path = annotate / f"{item.id}.json"
            shapes, points = [], []
            if pred is not None and prefill:
                shapes = prefill_shapes(pred.labels[j].numpy(), classes, pred.js[j].numpy())
                if keypoints and pred.keypoints is not None:
                    points = prefill_points(pred.keypoints, j, keypoints, prefill_confidence, pred.labels.shape[-2:])
            meta = {"id": item.id, "round": number, "latent": item.latent,
                    "z": [] if is_photo(item.latent) else [float(v) for v in item.z.tolist()],
                    "generator": generator.identity,
                    "score": item.score, "rank": item.rank}
            if not _touched_by_a_person(json_path):
                write_labelme(json_path, image, shapes + points, flags=image_flags, extra={META_KEY: meta})
            png = json_path.with_suffix(".png")
            records.append({**{k: v for k, v in meta.items() if k not in ("z", "generator", "round")},
                            "coreset_order": item.coreset_order, "coreset_distance": item.coreset_distance,
                            "image": png.name, "image_sha256": sha256_file(png), "json": json_path.name,
                            "json_sha256": sha256_file(json_path),
                            "z": meta["z"], "prefilled_shapes": len(shapes),
                            "prefilled_vertices": sum(len(shape["points"]) for shape in shapes),
                            **({"prefilled_points": len(points)} if keypoints else {}), **item.extra})
            panels = [image]
            if pred is not None:
                labels = pred.labels[j].numpy()
                panels += [overlay(image, labels, 0.55), heatmap(pred.js[j].numpy())]
            sheet_rows.append(panels)
            score = "" if item.score is None else f"  JS {item.score:.1f}"
            rank = "" if item.rank is None else f"  rank {item.rank}"
            captions.append(f"{item.id}{score}{rank}")
        progress("exporting", min(start + batch, len(items)), len(items))
    if kept_labels:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, ids=np.array([item.id for item in items]), labels=np.concatenate(kept_labels),
                            js=np.concatenate(kept_js))
        atomic_write_bytes(files.prediction, buffer.getvalue())
    if sheet_rows:
        title = f"round {number:03d}: " + ("image | predicted parts | JS uncertainty" if ensemble is not None else "image")
        contact_sheet(sheet_rows, captions, path=files.contact_sheet, scale=2 if generator.resolution[0] <= 256 else 1,
                      title=title, legend=classes)
    keep = len(items) if keep is None else min(keep, len(items))
    prefill_text = ("\n     The JSON files are pre-filled with the current prediction: correct it, do not start from nothing."
                    "\n     Polygons flagged 'check' (see a shape's flags when you edit its label) are where the"
                    "\n     interpreter's members disagree most: look there first.") \
        if ensemble is not None and prefill else ""
    if ensemble is not None and not prefill:
        why = textwrap.fill(f"({prefill_note or 'not pre-filled'})", width=100, initial_indent=" " * 5,
                            subsequent_indent=" " * 5)
        prefill_text = "\n     The JSON files are empty: draw every part.\n" + why
    which = "Annotate the image." if len(items) == 1 else \
        f"Of these {len(items)} images, annotate the {keep} that look most realistic."
    atomic_write_text(files.readme, README.format(round=number, which=which, prefill=prefill_text,
                                                           rule=rule or ""))
    record = dict(selection or {})
    record.update({"round": number, "generator": generator.identity, "classes": classes, "keep": keep,
                   "prefill": {"used": bool(ensemble is not None and prefill), "why": prefill_note,
                               **({"tracing": PREFILL_TRACING} if ensemble is not None and prefill else {})},
                   "items": records})
    atomic_write_json(files.selection, record)
    return record


def prefill_shapes(mask: np.ndarray, classes: list[str], js: np.ndarray | None = None) -> list[dict]:
    """The pre-filled polygons (LabelMe shape dicts) of a predicted class mask uint8 [H, W]. With the
    members' JS [H, W], a polygon whose shown pixels' mean JS exceeds ``CHECK_JS_RATIO`` times the
    image's carries the shape flag ``check`` (true), so that a person looks there first."""
    shapes = mask_to_polygons(mask, classes, **PREFILL_TRACING)
    if js is not None:
        limit = CHECK_JS_RATIO * float(np.mean(js, dtype=np.float64))
        for shape, disagreement in zip(shapes, shape_disagreement(shapes, js)):
            if disagreement > limit:
                shape["flags"] = {CHECK_FLAG: True}
    return shapes


def prefill_points(predicted, j: int, names: Sequence[str], confidence: float, size) -> list[dict]:
    """The pre-filled keypoints of image ``j`` of a ``KeypointPrediction``: a LabelMe ``point`` shape (label
    pixels, centres at integers, as LabelMe uses; kept inside the image) for each of ``names`` the heads
    predict with a confidence of at least ``confidence``, in ``names`` order."""
    height, width = int(size[0]), int(size[1])
    shapes = []
    for name in names:
        if name not in predicted.names:
            continue
        k = predicted.names.index(name)
        if float(predicted.confidence[j, k]) < confidence:
            continue
        x, y = (float(v) for v in predicted.positions[j, k])
        x, y = round(min(max(x, 0.0), width - 1.0), 2), round(min(max(y, 0.0), height - 1.0), 2)
        shapes.append({"label": name, "points": [[x, y]], "group_id": None, "description": "",
                       "shape_type": "point", "flags": {OCCLUDED_FLAG: False}, "mask": None})
    return shapes


def shape_disagreement(shapes: list[dict], js: np.ndarray) -> list[float]:
    """Per shape (LabelMe shape dicts, painting order), the mean JS [H, W] over the pixels it shows (later
    shapes over earlier ones, so an enclosing polygon is not judged by its inner parts); 0 for none."""
    js = np.asarray(js, dtype=np.float32)
    _, visible = visible_pixels([shape_from_mapping(s) for s in shapes], *js.shape)
    return [float(js[own].mean()) if own.any() else 0.0 for own in visible]


def _touched_by_a_person(json_path: Path) -> bool:
    """A JSON already there whose flags say someone worked on it: never overwrite it."""
    if not json_path.is_file():
        return False
    try:
        flags = json.loads(json_path.read_text(encoding="utf-8")).get("flags") or {}
    except (ValueError, OSError, AttributeError):
        return True
    return bool(flags.get("done") or flags.get("unrealistic"))


def read_selection(folder: Path) -> dict | None:
    path = RoundFiles(folder).selection
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None


def latent_tensor(record: dict) -> torch.Tensor:
    return torch.tensor(np.asarray(record["z"], dtype=np.float32))
