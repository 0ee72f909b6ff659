"""The annotation store: ``annotations/`` holds every imported human annotation.

```
annotations/labels.txt            LabelMe's labels file for the workspace's classes
annotations/index.json            what is imported: id -> latent, source round, checksums, versions
annotations/<id>.json, <id>.png   the LabelMe file and its image, copied byte for byte on import
annotations/masks/<id>.png        the rasterised class mask (palette PNG, values = class ids)
annotations/history/<id>/vN.json  every imported version of the JSON (edits in LabelMe keep the old one)
annotations/originals/<pool id>.<ext>  a photo pool's annotated photo files, byte for byte (``workflows.pool``)
annotations/removed/<id>/         annotations taken out of training by `dgan-al remove` (never deleted)
```
A person may open ``annotations/<id>.json`` in LabelMe and fix it; the next round sees the changed
checksum and imports it again as a new version. The tool never rewrites a person's JSON.

Keypoints live in the index, in each record's ``keypoints``: ``{name: [x, y, v]}`` (COCO visibility) for
every name the image was annotated for, absent for an image not annotated for keypoints (it trains the
parts only). They are a few numbers per image, read from the JSON in the same import as the mask, so
they need no file, checksum or repair of their own, and ``remove`` keeps them with the record.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from dgan_al.errors import UserError, quote
from dgan_al.files import atomic_write_bytes, atomic_write_json, sha256_bytes, sha256_file

INDEX_VERSION = 1


@dataclass
class AnnotationRecord:
    id: str  # the latent id (s<seed>-<index> or "mean"); file stem of its JSON, image and mask
    round: int  # the round whose export it was annotated from
    latent: dict  # {"seed": s, "index": i} or {"mean": true}; a photo's {"pool_id", "name", "sha256"}
    z: list[float]  # the latent vector itself (checked on import against the export); [] for a photo
    json_sha256: str
    image_sha256: str
    mask_sha256: str
    version: int = 1
    imported_at: str = ""
    source: str = ""  # workspace-relative path of the JSON it was imported from
    source_sha256: str = ""  # that file's checksum when imported (a later change there re-imports it)
    class_pixels: dict[str, int] = field(default_factory=dict)  # class name -> labelled pixels
    # keypoint name -> [x, y, v] (v: 2 visible, 1 occluded, 0 not visible with x = y = 0) for every name the
    # image was annotated for; None: not annotated for keypoints (not written to index.json)
    keypoints: dict[str, list[float]] | None = None

    def to_json(self) -> dict:
        """The record as ``index.json`` holds it (no ``keypoints`` key when None: older indexes stay as they were)."""
        data = asdict(self)
        if data["keypoints"] is None:
            del data["keypoints"]
        return data


class AnnotationStore:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.index_path = self.folder / "index.json"
        self.records: dict[str, AnnotationRecord] = {}
        self.skipped: dict[str, dict] = {}
        self.removed: dict[str, dict] = {}
        if self.index_path.is_file():
            self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.index_path.read_bytes().decode("utf-8"))
        except OSError as err:
            raise self._damaged(f"cannot be read: {err.strerror or err}") from None
        except UnicodeDecodeError as err:
            raise self._damaged(f"not UTF-8 text (byte {err.start})") from None
        except json.JSONDecodeError as err:
            raise self._damaged(f"not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
        except (ValueError, RecursionError):
            raise self._damaged("not valid JSON") from None
        try:
            self.records = {k: AnnotationRecord(**v) for k, v in data.get("annotations", {}).items()}
            self.skipped = dict(data.get("skipped", {}))
            self.removed = dict(data.get("removed", {}))
        except (ValueError, TypeError, AttributeError):
            raise self._damaged("not the index dgan-al writes") from None

    def _damaged(self, why: str) -> UserError:
        """The message for a damaged ``index.json``: the loop's record of what is imported, not an annotation."""
        return UserError(f"damaged ({why}): this is dgan-al's record of the imported annotations, not an annotation "
                         "file; every annotation's own files are still in annotations/", path=self.index_path,
                         fix="restore it from version control (`git checkout annotations/index.json` in a clone) or "
                             "a backup; do not delete it: without it no annotation counts as imported")

    def save(self) -> None:
        atomic_write_json(self.index_path, {
            "version": INDEX_VERSION,
            "annotations": {k: v.to_json() for k, v in sorted(self.records.items())},
            "skipped": dict(sorted(self.skipped.items())),
            "removed": dict(sorted(self.removed.items())),
        })

    # --- paths -------------------------------------------------------------------------------------
    def json_path(self, id: str) -> Path:
        return self.folder / f"{id}.json"

    def image_path(self, id: str) -> Path:
        return self.folder / f"{id}.png"

    def mask_path(self, id: str) -> Path:
        return self.folder / "masks" / f"{id}.png"

    # --- reading -----------------------------------------------------------------------------------
    def ids(self) -> list[str]:
        return sorted(self.records)

    def mask(self, id: str) -> np.ndarray:
        """The class-id mask of an annotation: uint8 [H,W], checked against its checksum in the index."""
        path = self.mask_path(id)
        try:
            data = path.read_bytes()
            if sha256_bytes(data) == self.records[id].mask_sha256:
                return np.array(Image.open(io.BytesIO(data)))
        except (OSError, ValueError):
            pass
        raise UserError("this annotation's mask is missing or damaged (it does not match annotations/index.json); "
                        "it is derived from the annotation's LabelMe file", path=path,
                        fix="run `dgan-al next-round`: it rasterises damaged masks again from the annotation files")

    def set_hash(self, ids: list[str] | None = None) -> str:
        """Identity of the annotation set (default: all): changes when any annotation is added, edited, removed."""
        h = hashlib.sha256()
        for id in sorted(ids) if ids is not None else self.ids():
            r = self.records[id]
            h.update(f"{id}:{r.json_sha256}:{r.mask_sha256};".encode())
        return h.hexdigest()[:16]

    def edited_in_place(self) -> list[str]:
        """Ids whose ``annotations/<id>.json`` differs from the version imported last (edited in LabelMe)."""
        out = []
        for id, record in self.records.items():
            path = self.json_path(id)
            if path.is_file() and sha256_file(path) != record.json_sha256:
                out.append(id)
        return sorted(out)

    def class_totals(self, classes: list[str]) -> dict[str, tuple[int, int]]:
        """Per class: (annotated images containing it, labelled pixels)."""
        totals = {c: [0, 0] for c in classes}
        for record in self.records.values():
            for name, count in record.class_pixels.items():
                if name in totals and count > 0:
                    totals[name][0] += 1
                    totals[name][1] += count
        return {c: (v[0], v[1]) for c, v in totals.items()}

    def keypoint_totals(self, names: list[str]) -> dict[str, dict[str, int]]:
        """Per keypoint name: ``annotated`` (images annotated for it), ``images`` (of those, where it is
        placed), ``occluded`` (of those, marked occluded)."""
        totals = {name: {"annotated": 0, "images": 0, "occluded": 0} for name in names}
        for record in self.records.values():
            for name, (_, _, v) in (record.keypoints or {}).items():
                if name in totals:
                    totals[name]["annotated"] += 1
                    totals[name]["images"] += v > 0
                    totals[name]["occluded"] += v == 1
        return totals

    # --- writing -----------------------------------------------------------------------------------
    def add(self, record: AnnotationRecord, json_bytes: bytes, image_bytes: bytes, mask: np.ndarray,
            classes: list[str], *, copy_json: bool = True) -> AnnotationRecord:
        """Store one annotation (a new one, or a new version of an existing id). Index saved by caller.

        ``copy_json=False`` when the JSON already is ``annotations/<id>.json`` (an in-place edit).
        """
        from dgan_al.report import save_mask_png

        previous = self.records.get(record.id)
        record.version = (previous.version + 1) if previous else 1
        record.json_sha256 = sha256_bytes(json_bytes)
        record.image_sha256 = sha256_bytes(image_bytes)
        counts = np.bincount(mask.reshape(-1), minlength=256)
        record.class_pixels = {name: int(counts[i]) for i, name in enumerate(classes) if counts[i]}
        record.imported_at = record.imported_at or time.strftime("%Y-%m-%d %H:%M:%S")
        history = self.folder / "history" / record.id / f"v{record.version}.json"
        atomic_write_bytes(history, json_bytes)
        if copy_json:
            atomic_write_bytes(self.json_path(record.id), json_bytes)
        if not self.image_path(record.id).is_file() or sha256_file(self.image_path(record.id)) != record.image_sha256:
            atomic_write_bytes(self.image_path(record.id), image_bytes)
        save_mask_png(self.mask_path(record.id), mask)
        record.mask_sha256 = sha256_file(self.mask_path(record.id))
        self.records[record.id] = record
        self.skipped.pop(record.id, None)
        return record

    def skip(self, id: str, round: int, source: str) -> None:
        self.skipped[id] = {"round": round, "source": source, "at": time.strftime("%Y-%m-%d %H:%M:%S")}

    def remove(self, id: str) -> Path:
        """Take an annotation out of training: its files move to ``removed/<id>/`` (never deleted)."""
        if id not in self.records:
            known = ", ".join(self.ids()[:10]) or "none"
            raise UserError(f"no annotation {quote(id)} (annotated: {known})", path=self.index_path,
                            fix="give an id listed by `dgan-al status`")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.folder / "removed" / id / stamp
        target.mkdir(parents=True, exist_ok=True)
        for src in (self.json_path(id), self.image_path(id), self.mask_path(id)):
            if src.is_file():
                shutil.move(str(src), target / (src.name if src.parent == self.folder else f"mask-{src.name}"))
        record = self.records.pop(id)
        self.removed[id] = record.to_json() | {"removed_at": stamp, "moved_to": str(target.relative_to(self.folder))}
        self.save()
        return target
