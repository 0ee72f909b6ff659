"""Import what people annotated: every finished LabelMe file in any round folder, and edits made later
to the copies in ``annotations/``.

All files are validated first; if any has a problem nothing is imported and every problem is listed
(one ``UserError``), so ``annotations/`` and the round folders stay byte-identical. Files ticked
``unrealistic`` are recorded as skipped; files not ticked ``done`` stay pending (listed, never lost).
The person's JSON files are only read, never changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dgan_al.errors import UserError
from dgan_al.files import sha256_bytes
from dgan_al.labelme import LabelMeError, embedded_image_problem, rasterize, read_labelme
from dgan_al.workflows.export import META_KEY, OWN_FILES, read_selection
from dgan_al.workspace.annotations import AnnotationRecord, AnnotationStore
from dgan_al.workspace.layout import Workspace


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)  # new annotations
    reimported: list[str] = field(default_factory=list)  # changed since their last import
    skipped: list[str] = field(default_factory=list)  # ticked unrealistic (newly)
    pending: list[str] = field(default_factory=list)  # workspace-relative paths of files not done yet
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.imported or self.reimported or self.skipped)


@dataclass
class _Planned:
    id: str
    round: int
    json_path: Path
    json_bytes: bytes
    image_bytes: bytes
    mask: np.ndarray
    latent: dict
    z: list[float]
    in_place: bool = False


def _problem(problems: list[str], path: Path, root: Path, message: str) -> None:
    problems.append(f"{path.relative_to(root) if root in path.parents else path}: {message}")


def import_annotations(ws: Workspace, store: AnnotationStore) -> ImportReport:
    classes = ws.config.classes
    report = ImportReport()
    problems: list[str] = []
    planned: list[_Planned] = []
    skips: list[tuple[str, int, str]] = []
    root = ws.root

    for number in ws.rounds():
        folder = ws.round_dir(number)
        annotate = ws.round_files(number).annotate
        selection = read_selection(folder)
        exported = {item["id"]: item for item in (selection or {}).get("items", [])}
        for json_path in sorted(annotate.glob("*.json")):
            if json_path.name in OWN_FILES:
                continue
            rel = str(json_path.relative_to(root))
            data = json_path.read_bytes()
            try:
                raw = json.loads(data.decode("utf-8"))
                flags = raw.get("flags") if isinstance(raw, dict) else None
            except (ValueError, UnicodeDecodeError) as err:
                _problem(problems, json_path, root, f"not valid JSON ({err}); fix it in a text editor or LabelMe")
                continue
            flags = flags if isinstance(flags, dict) else {}
            done, unrealistic = flags.get("done") is True, flags.get("unrealistic") is True
            if not (done or unrealistic):
                report.pending.append(rel)
                continue
            id = json_path.stem
            item = exported.get(id)
            if item is None:
                _problem(problems, json_path, root, f"no image {id!r} was exported in round {number} (not in its "
                         "selection.json): annotate only the files dgan-al exported, under their own names")
                continue
            if unrealistic:
                if id not in store.skipped and id not in store.records:
                    skips.append((id, number, rel))
                continue
            record = store.records.get(id)
            sha = sha256_bytes(data)
            if record is not None and record.source == rel and record.source_sha256 == sha:
                report.unchanged += 1
                continue
            plan = _validate(json_path, data, item, classes, problems, root, expected_image=annotate / item["image"])
            if plan is not None:
                plan.round = number
                planned.append(plan)

    # annotations edited in place (in LabelMe, in annotations/)
    round_ids = {p.id for p in planned}
    for id in store.edited_in_place():
        path = store.json_path(id)
        record = store.records[id]
        if id in round_ids:
            _problem(problems, path, root, f"edited here and in {record.source} as well: keep one of the two edits")
            continue
        item = {"id": id, "latent": record.latent, "z": record.z, "image_sha256": record.image_sha256, "image": f"{id}.png"}
        plan = _validate(path, path.read_bytes(), item, classes, problems, root, expected_image=store.image_path(id))
        if plan is not None:
            plan.round, plan.in_place = record.round, True
            planned.append(plan)

    if problems:
        count = len(problems)
        listing = "\n  ".join(problems)
        raise UserError(f"{count} annotation file{'s have' if count > 1 else ' has'} problems; nothing was imported:\n  "
                        f"{listing}\n", fix="correct them (dgan-al annotate opens a round in LabelMe) and run again")

    for plan in planned:
        existed = plan.id in store.records
        record = AnnotationRecord(id=plan.id, round=plan.round, latent=plan.latent, z=plan.z, json_sha256="",
                                  image_sha256="", mask_sha256="",
                                  source=str(plan.json_path.relative_to(root)) if not plan.in_place
                                  else store.records[plan.id].source,
                                  source_sha256=sha256_bytes(plan.json_bytes) if not plan.in_place
                                  else store.records[plan.id].source_sha256)
        store.add(record, plan.json_bytes, plan.image_bytes, plan.mask, classes, copy_json=not plan.in_place)
        (report.reimported if existed else report.imported).append(plan.id)
    for id, number, rel in skips:
        store.skip(id, number, rel)
        report.skipped.append(id)
    if report.changed:
        store.save()
    return report


def _validate(json_path: Path, data: bytes, item: dict, classes: list[str], problems: list[str], root: Path,
              expected_image: Path) -> _Planned | None:
    try:
        annotation = read_labelme(json_path, classes)
    except LabelMeError as err:
        for p in err.problems:
            _problem(problems, json_path, root, p)
        return None
    ok = True
    meta = annotation.extra.get(META_KEY)
    if isinstance(meta, dict) and meta.get("id") not in (None, item["id"]):
        _problem(problems, json_path, root, f"its dgan_al.id is {meta.get('id')!r} but the file belongs to "
                 f"{item['id']!r}: do not rename or copy annotation files")
        ok = False
    if annotation.image_path.resolve() != expected_image.resolve():
        _problem(problems, json_path, root, f"imagePath names {annotation.image_path.name}, not the exported "
                 f"image {expected_image.name}: point it back to {expected_image.name}")
        return None
    image_bytes = annotation.image_path.read_bytes()
    if sha256_bytes(image_bytes) != item["image_sha256"]:
        _problem(problems, json_path, root, f"the image {expected_image.name} is not the one exported for this "
                 "latent (its sha256 changed): restore the exported image; never edit the images")
        ok = False
    elif (shown := embedded_image_problem(annotation, expected_image)) is not None:
        _problem(problems, json_path, root, shown)
        ok = False
    if not ok:
        return None
    mask = rasterize(annotation, annotation.height, annotation.width, classes)
    return _Planned(id=item["id"], round=-1, json_path=json_path, json_bytes=data, image_bytes=image_bytes,
                    mask=mask, latent=item["latent"], z=list(item["z"]))


def finished_file_problems(ws: Workspace, json_path: Path, item: dict, expected_image: Path) -> list[str]:
    """What the import would refuse in one file ticked ``done`` (empty: it imports), without importing."""
    problems: list[str] = []
    _validate(json_path, json_path.read_bytes(), item, ws.config.classes, problems, ws.root, expected_image)
    return problems
