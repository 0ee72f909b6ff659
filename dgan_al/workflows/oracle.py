"""The simulated annotator of toy-faces: LabelMe files written from the ground truth.

It does what a person does in LabelMe, through the same files: labels what the image shows (the
visible truth, ``toy_faces/visible.py``; the renderer's truth on request), draws polygons (traced from
that mask as ``labelme.clicks.trace`` does: ~0.99 mIoU to it), keeps our metadata, ticks ``done``, and
— playing the paper's expert — may keep only the ``keep`` most realistic images and tick
``unrealistic`` on the rest; ``as_asked`` keeps as many as the round asks a person to annotate
(``round_asks``: its README.txt's "annotate the K that look most realistic"). "Most realistic" = lowest mean squared error between the GAN image and the
renderer's image of the same scene (a GAN failure renders the scene badly). The effort of each file is
counted in clicks (``labelme.clicks``): from scratch, correcting the file's pre-filled polygons by
re-tracing what is wrong (``prefill``), and by editing them (``edit``); ``clicks.json`` in the round folder
records all three per image.

In a workspace with ``[keypoints] names`` (toy-faces' ``KEYPOINTS`` or some of them) it also places the
keypoints (``oracle_keypoints``, same truth): a ``point`` shape for each visible one, with the shape flag
``occluded`` for one a rare part hides (v = 1), none for one the head hides (v = 0), and ticks the image
flag ``keypoints``. Their clicks (``keypoint_clicks``: 1 per point from scratch; against the file's
pre-filled points 0 within ``TRACE_TOLERANCE``, 1 to move, delete or add one) go into clicks.json as
``"keypoints": {"scratch": n, "edit": m, ...}`` per item, beside the part counts, which stay as they are.
Without keypoint names nothing of this happens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dgan_al.errors import UserError
from dgan_al.files import atomic_write_json
from dgan_al.generators.protocol import OracleGenerator
from dgan_al.labelme import count_vertices, write_labelme
from dgan_al.labelme.clicks import EDIT_MODEL, correction_clicks, edit_clicks, keypoint_clicks, trace
from dgan_al.labelme.format import KEYPOINTS_FLAG, OCCLUDED, OCCLUDED_FLAG, TOP_LEVEL_KEYS
from dgan_al.workflows.export import latent_tensor, read_selection
from dgan_al.workspace.layout import Workspace


@dataclass
class OracleResult:
    folder: Path
    annotated: list[str] = field(default_factory=list)
    unrealistic: list[str] = field(default_factory=list)
    untouched: list[str] = field(default_factory=list)  # already done / unrealistic before
    vertices: dict[str, int] = field(default_factory=dict)  # clicks from scratch
    prefill_clicks: dict[str, int] = field(default_factory=dict)  # clicks correcting the pre-filled file (re-tracing)
    edit_clicks: dict[str, int] = field(default_factory=dict)  # clicks editing the pre-filled polygons
    realism_mse: dict[str, float] = field(default_factory=dict)
    keypoint_clicks: dict[str, dict[str, int]] = field(default_factory=dict)  # keypoint workspaces: scratch, edit
    asked: int | None = None  # with as_asked: how many of the round's images it asks a person to annotate
    exported: int = 0  # images the round exported
    done_before: int = 0  # files already ticked done (by a person or an earlier run)

    @property
    def clicks(self) -> dict[str, int]:
        """Total clicks over the annotated files: from scratch and with the pre-fill."""
        return {"scratch": sum(self.vertices.values()), "prefill": sum(self.prefill_clicks.values()),
                "edit": sum(self.edit_clicks.values())}


CLICKS_FILE = "clicks.json"


def realism_error(generator, z: torch.Tensor, fake: np.ndarray | None = None) -> np.ndarray:
    """Per latent, the mean squared error (uint8 scale) between G(z) (``fake`` if given) and the rendered
    scene: [B]."""
    fake = (generator.synthesize(z).images.numpy() if fake is None else fake).astype(np.float32)
    real = generator.render(z)[0].astype(np.float32)
    return ((fake - real) ** 2).reshape(len(z), -1).mean(1)


def round_asks(ws: Workspace, selection: dict) -> int:
    """How many of a round's images it asks a person to annotate, as ``next-round`` wrote its README.txt:
    ``[selection] annotate`` (at most ``centers``), at most the images exported (``keep`` in selection.json
    where the export recorded it)."""
    n = len(selection.get("items", []))
    recorded = selection.get("keep")
    if isinstance(recorded, int) and not isinstance(recorded, bool):
        return min(recorded, n)
    s = ws.config.selection
    return min(s.annotate, s.centers, n)


def oracle_annotate(ws: Workspace, round_number: int | None = None, keep: int | None = None,
                    generator=None, truth: str = "visible", as_asked: bool = False) -> OracleResult:
    """Annotate round ``round_number`` (default: the latest); ``truth``: "visible" or "renderer".

    ``keep``: annotate only the ``keep`` most realistic open files, tick 'unrealistic' on the rest (None:
    all); ``as_asked`` (with ``keep`` None): as many as the round asks for, less the files already done."""
    renders = ws.config.photo_pool
    if renders:  # a pool of toy-faces renders (``dgan-al toy renders``): the truth is the renderer's, exactly
        from dgan_al.generators.toy_faces.classes import CLASSES
        from dgan_al.generators.toy_faces.keypoints import KEYPOINTS
        from dgan_al.generators.toy_faces.render_pool import read_render_record

        read_render_record(ws.photos_folder())  # a photo pool of anything else has no oracle
        toy_classes, known, truth = list(CLASSES), list(KEYPOINTS), "renderer"
    else:
        generator = generator or ws.load_generator()
        if not isinstance(generator, OracleGenerator):
            raise UserError("the oracle only exists for the toy-faces world", path=ws.config_path,
                            fix="annotate this workspace's rounds in LabelMe (dgan-al annotate)")
        toy_classes, known = list(generator.classes), list(getattr(generator, "keypoints", []))
    if list(ws.config.classes) != toy_classes:
        raise UserError("the workspace classes differ from toy-faces' own", path=ws.config_path,
                        fix=f"use classes = {toy_classes}")
    names = list(ws.config.keypoints.names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"the oracle cannot place the keypoint {unknown[0]!r}: toy-faces has "
                        f"{', '.join(known) or 'none'}", path=ws.config_path,
                        fix="use [keypoints] names from toy-faces' own (or some of them)")
    number = ws.latest_round() if round_number is None else round_number
    folder = ws.round_dir(number) if number is not None else None
    selection = read_selection(folder) if folder is not None and folder.is_dir() else None
    if selection is None:
        raise UserError(f"no exported round {number}", path=ws.rounds_dir, fix="run `dgan-al next-round` first")
    result = OracleResult(folder, exported=len(selection["items"]))
    todo = []
    annotate = ws.round_files(number).annotate
    for item in selection["items"]:
        path = annotate / item["json"]
        raw = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        flags = raw.get("flags") or {}
        if flags.get("done") or flags.get("unrealistic"):
            result.untouched.append(item["id"])
            result.done_before += bool(flags.get("done") and not flags.get("unrealistic"))
        else:
            todo.append((item, path, raw))
    if keep is None and as_asked:
        result.asked = round_asks(ws, selection)
        keep = max(0, result.asked - result.done_before)
    if not todo:
        return result
    if renders:  # every render is realistic: the first ``keep`` in the round's order are annotated
        masks, points = render_pool_truth(ws, [item for item, _, _ in todo], annotate)
        points = points[:, [known.index(n) for n in names]] if names else None
        errors = np.zeros(len(todo))
    else:
        z = torch.stack([latent_tensor(item) for item, _, _ in todo])
        fake = generator.synthesize(z).images.numpy()
        errors = realism_error(generator, z, fake)
        masks = generator.oracle_mask(z, truth=truth, images=fake)
        points = generator.oracle_keypoints(z, truth=truth, images=fake)[:, [known.index(n) for n in names]] \
            if names else None  # [B, len(names), 3]
    order = np.argsort(errors, kind="stable")
    kept = set(order[: keep if keep is not None else len(todo)].tolist())
    record_path = folder / CLICKS_FILE
    record = _read_json(record_path) or {"items": {}}
    classes = ws.config.classes
    for k, (item, path, raw) in enumerate(todo):
        extra = {key: value for key, value in raw.items() if key not in TOP_LEVEL_KEYS}
        result.realism_mse[item["id"]] = float(errors[k])
        prefill, prefill_points = _split_keypoints(raw.get("shapes") or [], names)
        if k in kept:
            shapes = trace(masks[k], classes)
            correction = correction_clicks(prefill, masks[k], classes)
            flags = {"done": True, "unrealistic": False}
            if names:
                truth_points = {n: [float(x), float(y), int(v)] for n, (x, y, v) in zip(names, points[k]) if v > 0}
                count = len(shapes)
                shapes = shapes + [_point(n, p) for n, p in truth_points.items()]
                flags[KEYPOINTS_FLAG] = True
            write_labelme(path, None, shapes, flags=flags, extra=extra)
            result.annotated.append(item["id"])
            result.vertices[item["id"]] = count_vertices(shapes[:count] if names else shapes)
            edit = edit_clicks(prefill, masks[k], classes)
            result.prefill_clicks[item["id"]] = correction.clicks
            result.edit_clicks[item["id"]] = edit.clicks
            record["items"][item["id"]] = {
                "scratch": result.vertices[item["id"]], "prefill": correction.clicks, "edit": edit.clicks,
                "prefilled_shapes": len(prefill), "deleted": correction.deleted,
                "added_vertices": correction.vertices,
                "edits": {"deleted": edit.deleted, "moved": edit.moved, "inserted": edit.inserted, "drawn": edit.drawn},
                "truth": truth}
            if names:
                placed, doubles = prefill_points  # a name pre-filled twice: the extra point is deleted
                moves = keypoint_clicks(placed, truth_points)
                counts = {"scratch": len(truth_points), "edit": moves.clicks + doubles,
                          "occluded": sum(p[2] == OCCLUDED for p in truth_points.values()),
                          "prefilled": len(placed) + doubles, "moved": moves.moved, "added": moves.added,
                          "deleted": moves.deleted + doubles, "flagged": moves.flagged}
                record["items"][item["id"]]["keypoints"] = counts
                result.keypoint_clicks[item["id"]] = {"scratch": counts["scratch"], "edit": counts["edit"]}
        else:
            flags = {"done": False, "unrealistic": True, **({KEYPOINTS_FLAG: False} if names else {})}
            write_labelme(path, None, [], flags=flags, extra=extra)
            result.unrealistic.append(item["id"])
    record["model"] = ("dgan_al.labelme.clicks: one click per vertex placed, dragged or inserted, one per pre-filled "
                       "polygon deleted; prefill: correction_clicks (re-trace what is wrong), edit: edit_clicks")
    record["edit_model"] = EDIT_MODEL
    items = record["items"].values()  # an earlier version's items have no "edit": its total is then None
    record["total"] = {kind: sum(v[kind] for v in items) if all(kind in v for v in items) else None
                       for kind in ("scratch", "prefill", "edit")}
    if names:
        record["keypoint_model"] = ("dgan_al.labelme.clicks.keypoint_clicks: scratch 1 per point placed; edit: 0 per "
                                    "pre-filled point within TRACE_TOLERANCE, 1 per point moved, added, deleted or "
                                    "re-flagged")
        record["keypoint_total"] = {kind: sum(v["keypoints"][kind] for v in items)
                                    if all("keypoints" in v for v in items) else None for kind in ("scratch", "edit")}
    atomic_write_json(record_path, record)
    return result


def render_pool_truth(ws: Workspace, items: list[dict], annotate: Path) -> tuple[np.ndarray, np.ndarray]:
    """The renderer's exact masks uint8 [B, S, S] and keypoints float [B, K, 3] of exported photo items of a pool
    of toy-faces renders, at the label size S of their exported images in ``annotate``: the 128 px truth taken
    through the pool's resize and crop (masks nearest-neighbour, exact when S = 128; points mapped by
    ``image_pool.pool_transform``)."""
    from PIL import Image

    from dgan_al.generators.toy_faces.render_pool import render_truth
    from dgan_al.workspace.image_pool import pool_transform, scan_pool

    folder = ws.photos_folder()
    entries = scan_pool(folder, skip_unreadable=True).by_name()
    masks, points = [], []
    for item in items:
        name = item["latent"]["name"]
        with Image.open(annotate / item["image"]) as exported:
            size = exported.size[0]
        mask, keypoints = render_truth(folder, name)
        t = pool_transform(entries[name], size)
        big = Image.fromarray(mask).resize((t.resized_width, t.resized_height), Image.Resampling.NEAREST)
        masks.append(np.asarray(big)[t.top:t.top + size, t.left:t.left + size])
        x, y = t.original_to_pool(keypoints[:, 0] + 0.5, keypoints[:, 1] + 0.5)  # centres at integers, as LabelMe
        moved = np.stack([x - 0.5, y - 0.5, keypoints[:, 2]], axis=1)
        moved[keypoints[:, 2] == 0, :2] = 0.0
        points.append(moved)
    return np.stack(masks), np.stack(points)


def _split_keypoints(shapes: list, names: list[str]) -> tuple[list, tuple[dict, int]]:
    """A file's shapes -> (the part shapes, ({name: [x, y, v]} of its keypoint points, names given twice))."""
    if not names:
        return list(shapes), ({}, 0)
    parts, placed, doubles = [], {}, 0
    for shape in shapes:
        if shape.get("shape_type") == "point" and shape.get("label") in names:
            (x, y), flags = shape["points"][0], shape.get("flags") or {}
            doubles += shape["label"] in placed
            placed.setdefault(shape["label"], [float(x), float(y), 1 if flags.get(OCCLUDED_FLAG) else 2])
        else:
            parts.append(shape)
    return parts, (placed, doubles)


def _point(name: str, p: list) -> dict:
    """A LabelMe point shape for keypoint ``name`` at ``p`` = [x, y, v] (v 1: the ``occluded`` flag)."""
    return {"label": name, "points": [[p[0], p[1]]], "group_id": None, "description": "", "shape_type": "point",
            "flags": {OCCLUDED_FLAG: p[2] == OCCLUDED}, "mask": None}


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
