"""The simulated annotator of toy-faces: LabelMe files written from the ground truth.

It does what a person does in LabelMe, through the same files: draws polygons (traced from the exact
mask, simplified as a careful annotator would: ~0.99 mIoU to the truth), keeps our metadata, ticks
``done``, and — playing the paper's expert — may keep only the ``keep`` most realistic images and tick
``unrealistic`` on the rest. "Most realistic" = lowest mean squared error between the GAN image and the
renderer's image of the same scene (a GAN failure renders the scene badly).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dgan_al.errors import UserError
from dgan_al.generators.protocol import OracleGenerator
from dgan_al.labelme import count_vertices, mask_to_polygons, write_labelme
from dgan_al.labelme.format import TOP_LEVEL_KEYS
from dgan_al.workflows.export import latent_tensor, read_selection
from dgan_al.workspace.layout import Workspace


@dataclass
class OracleResult:
    folder: Path
    annotated: list[str] = field(default_factory=list)
    unrealistic: list[str] = field(default_factory=list)
    untouched: list[str] = field(default_factory=list)  # already done / unrealistic before
    vertices: dict[str, int] = field(default_factory=dict)
    realism_mse: dict[str, float] = field(default_factory=dict)


def realism_error(generator, z: torch.Tensor) -> np.ndarray:
    """Per latent, the mean squared error (uint8 scale) between G(z) and the rendered scene: [B]."""
    fake = generator.synthesize(z).images.numpy().astype(np.float32)
    real = generator.render(z)[0].astype(np.float32)
    return ((fake - real) ** 2).reshape(len(z), -1).mean(1)


def oracle_annotate(ws: Workspace, round_number: int | None = None, keep: int | None = None,
                    generator=None) -> OracleResult:
    generator = generator or ws.load_generator()
    if not isinstance(generator, OracleGenerator):
        raise UserError("the oracle only exists for the toy-faces world", path=ws.config_path,
                        fix="annotate this workspace's rounds in LabelMe (dgan-al annotate)")
    if list(ws.config.classes) != list(generator.classes):
        raise UserError("the workspace classes differ from toy-faces' own", path=ws.config_path,
                        fix=f"use classes = {generator.classes}")
    number = ws.latest_round() if round_number is None else round_number
    folder = ws.round_dir(number) if number is not None else None
    selection = read_selection(folder) if folder is not None and folder.is_dir() else None
    if selection is None:
        raise UserError(f"no exported round {number}", path=ws.rounds_dir, fix="run `dgan-al next-round` first")
    result = OracleResult(folder)
    todo = []
    annotate = ws.round_files(number).annotate
    for item in selection["items"]:
        path = annotate / item["json"]
        raw = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        flags = raw.get("flags") or {}
        if flags.get("done") or flags.get("unrealistic"):
            result.untouched.append(item["id"])
        else:
            todo.append((item, path, raw))
    if not todo:
        return result
    z = torch.stack([latent_tensor(item) for item, _, _ in todo])
    errors = realism_error(generator, z)
    order = np.argsort(errors, kind="stable")
    kept = set(order[: keep if keep is not None else len(todo)].tolist())
    masks = generator.oracle_mask(z)
    for k, (item, path, raw) in enumerate(todo):
        extra = {key: value for key, value in raw.items() if key not in TOP_LEVEL_KEYS}
        result.realism_mse[item["id"]] = float(errors[k])
        if k in kept:
            shapes = mask_to_polygons(masks[k], ws.config.classes)
            write_labelme(path, None, shapes, flags={"done": True, "unrealistic": False}, extra=extra)
            result.annotated.append(item["id"])
            result.vertices[item["id"]] = count_vertices(shapes)
        else:
            write_labelme(path, None, [], flags={"done": False, "unrealistic": True}, extra=extra)
            result.unrealistic.append(item["id"])
    return result
