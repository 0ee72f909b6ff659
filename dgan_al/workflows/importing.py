"""Import what people annotated: every finished LabelMe file in any round folder, and edits made later
to the copies in ``annotations/``.

Every file is read by the strict reader (``labelme.read_labelme``) before it is called pending, done or
unrealistic, and all are validated first; if any has a problem nothing is imported and every problem is
listed (one ``UserError``: one line for one file, a list for several, each file with its own fix), so
``annotations/`` and the round folders stay byte-identical. Files ticked
``unrealistic`` are recorded as skipped; files ticked neither stay pending (listed, never lost); a file
ticked both is a problem. The person's JSON files are only read, never changed. Masks in
``annotations/masks/`` are derived: one that fails its checksum is rasterised again from its JSON.

In a workspace with ``[keypoints] names`` the points labelled with them are keypoints (``labelme.format``):
a file ticked ``keypoints`` records every name (``[x, y, v]``, v = 0 where no point is placed) in its
index record; a file not ticked trains the parts only, and one with points placed but not ticked is a
problem (the person's points would be lost). Without names, files import exactly as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dgan_al.errors import UserError, quote
from dgan_al.files import sha256_bytes, sha256_file
from dgan_al.labelme import Annotation, LabelMeError, embedded_image_problem, rasterize, read_labelme
from dgan_al.labelme.format import KEYPOINTS_FLAG
from dgan_al.labelme.read import EMBEDDED_IMAGE_FIX
from dgan_al.report import save_mask_png
from dgan_al.workflows.export import META_KEY, OWN_FILES
from dgan_al.workspace.annotations import AnnotationRecord, AnnotationStore
from dgan_al.workspace.layout import Workspace

SELECTION_FILE = "selection.json"
ITEM_KEYS = {"id", "image", "image_sha256", "latent", "z"}  # what import checks an annotation file against
# the fix of a problem in a person's LabelMe file (the loop's own records say their own fix)
LABELME_FIX = "fix the file in LabelMe or an editor and run again; `dgan-al annotate` opens the round"
MAX_LISTED = 20  # problems of one file shown in its message


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)  # new annotations
    reimported: list[str] = field(default_factory=list)  # changed since their last import
    skipped: list[str] = field(default_factory=list)  # ticked unrealistic (newly)
    pending: list[str] = field(default_factory=list)  # workspace-relative paths of files not done yet
    unchanged: int = 0
    masks_rebuilt: list[str] = field(default_factory=list)  # derived masks that failed their checksum

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
    keypoints: dict[str, list[float]] | None = None  # name -> [x, y, v]; None: not annotated for keypoints


@dataclass
class Problem:
    """What is wrong with one file (``path``: workspace-relative), and what to do about it."""

    path: str
    message: str
    fix: str = LABELME_FIX


def _problem(problems: list[Problem], path: Path, root: Path, message: str, fix: str = LABELME_FIX) -> None:
    problems.append(Problem(str(path.relative_to(root) if root in path.parents else path), message, fix))


def refusal(problems: list[Problem]) -> UserError:
    """The one error for a refused import: one line naming the file, its problem(s) and fix when one file
    has problems; a list, one line per problem, when several do."""
    files = list(dict.fromkeys(p.path for p in problems))
    fixes = list(dict.fromkeys(p.fix for p in problems))
    if len(files) == 1:
        listed = [p.message for p in problems]
        if len(listed) == 1:
            text = listed[0]
        else:
            text = f"{len(listed)} problems: " + "; ".join(f"[{i + 1}] {m}" for i, m in enumerate(listed[:MAX_LISTED]))
            if len(listed) > MAX_LISTED:
                text += f"; ... and {len(listed) - MAX_LISTED} more"
        return UserError(f"{text}; nothing was imported", path=files[0], fix="; ".join(fixes))
    lines = [f"{p.path}: {p.message}" + (f" ({p.fix})" if len(fixes) > 1 else "") for p in problems]
    return UserError(f"{len(files)} files have problems; nothing was imported:\n  " + "\n  ".join(lines) + "\n",
                     fix=fixes[0] if len(fixes) == 1 else "fix each as said and run again")


def selection_fix(folder: Path) -> str:
    """What to do about a round's damaged ``selection.json`` (import and status say the same)."""
    return (f"restore it from a backup; without one, move the folder {folder.name} out of rounds/ and run again: "
            "what it imported stays in annotations/, its files not imported yet are left out; do not delete "
            "selection.json alone")


def exported_items(folder: Path) -> tuple[dict[str, dict], str | None]:
    """The items a round exported (id -> item of its ``selection.json``), or what is wrong with that file.

    A round folder without ``selection.json`` exported nothing; one whose ``selection.json`` cannot be
    read, or has items without the fields import checks against, is reported as damaged (the person's
    files are not blamed for it).
    """
    path = folder / SELECTION_FILE
    if not path.is_file():
        return {}, None
    try:
        selection = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as err:
        return {}, f"cannot be read ({err.strerror or err})"
    except UnicodeDecodeError as err:
        return {}, f"not UTF-8 text (byte {err.start})"
    except json.JSONDecodeError as err:
        return {}, f"not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
    except RecursionError:
        return {}, "not valid JSON: nested too deeply"
    items = selection.get("items") if isinstance(selection, dict) else None
    if not isinstance(items, list):
        return {}, "not the record dgan-al writes (no list of exported items)"
    out = {}
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not ITEM_KEYS <= item.keys():
            return {}, f"exported item {n} lacks one of {sorted(ITEM_KEYS)}"
        out[item["id"]] = item
    return out, None


def import_annotations(ws: Workspace, store: AnnotationStore) -> ImportReport:
    classes = ws.config.classes
    keypoints = ws.config.keypoints.names
    report = ImportReport()
    problems: list[Problem] = []
    planned: list[_Planned] = []
    skips: list[tuple[str, int, str]] = []
    root = ws.root

    for number in ws.rounds():
        folder = ws.round_dir(number)
        annotate = ws.round_files(number).annotate
        exported, damaged = exported_items(folder)
        if damaged:
            _problem(problems, folder / SELECTION_FILE, root, f"damaged ({damaged}): this is dgan-al's record of "
                     f"what round {number:03d} exported, not an annotation file (those were not touched)",
                     selection_fix(folder))
            continue
        for json_path in sorted(annotate.glob("*.json")):
            if json_path.name in OWN_FILES:
                continue
            rel = str(json_path.relative_to(root))
            # every file is read strictly before it is called pending, done or unrealistic
            try:
                annotation = read_labelme(json_path, classes, keypoints)
            except LabelMeError as err:
                for p in err.problems:
                    _problem(problems, json_path, root, p)
                continue
            if annotation.done and annotation.unrealistic:
                _problem(problems, json_path, root, "both 'done' and 'unrealistic' are ticked",
                         "untick one in LabelMe ('done' imports the annotation, 'unrealistic' skips the image) and run "
                         "again")
                continue
            if not (annotation.done or annotation.unrealistic):
                report.pending.append(rel)
                continue
            id = json_path.stem
            item = exported.get(id)
            if item is None:
                _problem(problems, json_path, root, f"no image {quote(id)} was exported in round {number} (not in "
                         "its selection.json)", "annotate only the files dgan-al exported, under their own names; "
                         "move this one out of the round folder")
                continue
            if annotation.unrealistic:
                if id not in store.skipped and id not in store.records:
                    skips.append((id, number, rel))
                continue
            record = store.records.get(id)
            data = json_path.read_bytes()
            if record is not None and record.source == rel and record.source_sha256 == sha256_bytes(data):
                report.unchanged += 1
                continue
            plan = _validate(json_path, data, item, classes, problems, root, expected_image=annotate / item["image"],
                             annotation=annotation, keypoints=keypoints)
            if plan is not None:
                plan.round = number
                planned.append(plan)

    # annotations edited in place (in LabelMe, in annotations/)
    round_ids = {p.id for p in planned}
    for id in store.edited_in_place():
        path = store.json_path(id)
        record = store.records[id]
        if id in round_ids:
            _problem(problems, path, root, f"edited here and in {record.source} as well",
                     f"keep one of the two edits: restore the other from annotations/history/{id}/")
            continue
        item = {"id": id, "latent": record.latent, "z": record.z, "image_sha256": record.image_sha256, "image": f"{id}.png"}
        plan = _validate(path, path.read_bytes(), item, classes, problems, root, expected_image=store.image_path(id),
                         keypoints=keypoints)
        if plan is not None:
            plan.round, plan.in_place = record.round, True
            planned.append(plan)

    repairs = _damaged_masks(store, classes, {p.id for p in planned}, problems, root, keypoints)

    if problems:
        raise refusal(problems)

    for plan in planned:
        existed = plan.id in store.records
        record = AnnotationRecord(id=plan.id, round=plan.round, latent=plan.latent, z=plan.z, json_sha256="",
                                  image_sha256="", mask_sha256="",
                                  source=str(plan.json_path.relative_to(root)) if not plan.in_place
                                  else store.records[plan.id].source,
                                  source_sha256=sha256_bytes(plan.json_bytes) if not plan.in_place
                                  else store.records[plan.id].source_sha256, keypoints=plan.keypoints)
        store.add(record, plan.json_bytes, plan.image_bytes, plan.mask, classes, copy_json=not plan.in_place)
        (report.reimported if existed else report.imported).append(plan.id)
    for id, mask in repairs:
        report.masks_rebuilt.append(id)
        record = store.records[id]
        save_mask_png(store.mask_path(id), mask)
        record.mask_sha256 = sha256_file(store.mask_path(id))
    for id, number, rel in skips:
        store.skip(id, number, rel)
        report.skipped.append(id)
    if report.changed or report.masks_rebuilt:
        store.save()
    return report


def _damaged_masks(store: AnnotationStore, classes: list[str], reimported: set[str], problems: list[Problem],
                   root: Path, keypoints: list[str]) -> list[tuple[str, np.ndarray]]:
    """(id, mask) for every stored mask that is missing or fails its checksum, rasterised from its JSON."""
    out = []
    for id, record in sorted(store.records.items()):
        path = store.mask_path(id)
        if id in reimported or (path.is_file() and sha256_file(path) == record.mask_sha256):
            continue
        json_path = store.json_path(id)
        if not json_path.is_file() or sha256_file(json_path) != record.json_sha256:
            continue  # edited in place: imported again above (or reported there)
        try:
            annotation = read_labelme(json_path, classes, keypoints)
        except LabelMeError as err:
            source = f"{Path(record.source).parent}/ (where they were imported from)" if record.source else "a copy"
            _problem(problems, path, root, f"this mask (derived data) is damaged and cannot be rebuilt from "
                     f"{json_path.name}: {'; '.join(err.problems[:3])}",
                     f"restore {json_path.name} and {store.image_path(id).name} from {source} or a backup, or "
                     f"take the annotation out with `dgan-al remove {id}`; then run again")
            continue
        out.append((id, rasterize(annotation, annotation.height, annotation.width, classes)))
    return out


def _validate(json_path: Path, data: bytes, item: dict, classes: list[str], problems: list[Problem], root: Path,
              expected_image: Path, annotation: Annotation | None = None,
              keypoints: list[str] = ()) -> _Planned | None:  # fmt: skip
    if annotation is None:
        try:
            annotation = read_labelme(json_path, classes, keypoints)
        except LabelMeError as err:
            for p in err.problems:
                _problem(problems, json_path, root, p)
            return None
    ok = True
    meta = annotation.extra.get(META_KEY)
    if isinstance(meta, dict) and meta.get("id") not in (None, item["id"]):
        _problem(problems, json_path, root, f"its dgan_al.id is {quote(meta.get('id'))} but the file belongs to "
                 f"{item['id']!r}", "do not rename or copy annotation files: annotate each under its own name")
        ok = False
    if annotation.image_path.resolve() != expected_image.resolve():
        _problem(problems, json_path, root, f"imagePath names {quote(annotation.image_path.name)}, not the exported "
                 f"image {expected_image.name}", f"set imagePath back to {expected_image.name!r}")
        return None
    if annotation.raw["imagePath"] != expected_image.name:  # the same file, but not as LabelMe and the export write it
        _problem(problems, json_path, root, f"imagePath is {quote(annotation.raw['imagePath'])}, not the image's plain "
                 f"file name {expected_image.name!r} that the export (and LabelMe, for a JSON beside its image) writes",
                 f"set imagePath to {expected_image.name!r}")
        return None
    try:
        image_bytes = annotation.image_path.read_bytes()
    except OSError as err:
        _problem(problems, json_path, root, f"cannot read the image {expected_image.name}: {err.strerror or err}",
                 f"make {expected_image.name} readable again and run again")
        return None
    if sha256_bytes(image_bytes) != item["image_sha256"]:
        _problem(problems, json_path, root, f"the image {expected_image.name} is not the one exported for this "
                 "latent (its sha256 changed)", "restore the exported image; never edit the images")
        ok = False
    elif (shown := embedded_image_problem(annotation, expected_image)) is not None:
        _problem(problems, json_path, root, shown, EMBEDDED_IMAGE_FIX.format(name=expected_image.name))
        ok = False
    table = None
    if keypoints and annotation.keypoints_ticked:
        table = annotation.keypoint_table(keypoints)
    elif keypoints and annotation.keypoints:
        _problem(problems, json_path, root, f"{len(annotation.keypoints)} keypoint(s) placed, but the image flag "
                 f"{KEYPOINTS_FLAG!r} is not ticked", f"tick {KEYPOINTS_FLAG!r} in LabelMe once every visible keypoint "
                 "is placed (a keypoint without a point then counts as not visible), or delete the points to annotate "
                 "the parts only; then run again")
        ok = False
    if not ok:
        return None
    mask = rasterize(annotation, annotation.height, annotation.width, classes)  # keypoints paint nothing
    return _Planned(id=item["id"], round=-1, json_path=json_path, json_bytes=data, image_bytes=image_bytes,
                    mask=mask, latent=item["latent"], z=list(item["z"]), keypoints=table)


def finished_file_problems(ws: Workspace, json_path: Path, item: dict, expected_image: Path) -> list[str]:
    """What the import would refuse in one file ticked ``done`` (empty: it imports), without importing:
    ``"<path>: <problem> (<fix>)"`` per problem."""
    problems: list[Problem] = []
    _validate(json_path, json_path.read_bytes(), item, ws.config.classes, problems, ws.root, expected_image,
              keypoints=ws.config.keypoints.names)
    return [f"{p.path}: {p.message}" + (f" ({p.fix})" if p.fix != LABELME_FIX else "") for p in problems]
