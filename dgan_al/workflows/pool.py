"""The pool a round chooses from, whichever kind: generated latents or a folder of photos.

``workspace_pool(ws, generator)`` gives the rows the loop scores and picks from: each row's key (what
``generator.synthesize`` takes), its id (the file stem of its exported image) and its ``latent`` record (where
it comes from, as selection.json and the LabelMe file record it). A latent pool's rows are the pool latents of
``[pool] seed`` (ids ``s<seed>-<index>``); a photo pool's are the photos of ``[photos] folder`` by name (ids
``p-<sha256 prefix>``), scanned afresh, compared with the index of the last round (``rounds/pool/photos.json``:
files added, removed, changed or renamed are reported) and that index then replaced.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dgan_al.workspace.image_pool import PoolChanges, PoolIndex, diff
from dgan_al.workspace.layout import Workspace, latent_id


@dataclass
class Pool:
    keys: torch.Tensor  # [N, z_dim]: latents, or photo keys (generators.photos.photo_key)
    ids: list[str]
    origins: list[dict]  # each row's ``latent`` record
    identity: str  # what names the rows in the score chunks' key: the seed, or a digest of the photos
    record: dict  # selection.json's "pool": where the rows come from
    changes: PoolChanges | None = None  # a photo pool: what changed in the folder since the last round

    def __len__(self) -> int:
        return len(self.ids)


def workspace_pool(ws: Workspace, generator, save: bool = True) -> Pool:
    """The workspace's pool (``save``: record a photo pool's scan as the new reference for changes)."""
    if ws.config.photo_pool:
        return _photo_pool(ws, generator, save)
    seed = ws.config.pool.seed
    latents = ws.pool_latents(generator.z_dim)
    return Pool(keys=latents, ids=[latent_id(seed, i) for i in range(len(latents))],
                origins=[{"seed": seed, "index": i} for i in range(len(latents))], identity=str(seed),
                record={"seed": seed, "size": len(latents)})


def _photo_pool(ws: Workspace, generator, save: bool) -> Pool:
    from dgan_al.generators.photos import photo_key, photo_origin

    folder, index = generator.folders[0]
    changes = photo_changes(ws, index)
    if save and (changes is None or not changes.empty):  # None: no scan recorded yet
        index.save(ws.photo_index_path)
    entries = index.entries
    digest = index.digest()
    keys = torch.stack([photo_key(e.sha256) for e in entries])
    record = {"folder": ws.config.photos.folder, "size": len(entries), "photos_digest": digest}
    if index.duplicates:
        record["duplicates"] = len(index.duplicates)
    if changes is not None and not changes.empty:
        record["changes"] = changes.summary()
    return Pool(keys=keys, ids=[e.pool_id for e in entries], origins=[photo_origin(e) for e in entries],
                identity=f"photos:{digest}", record=record, changes=changes)


def photo_changes(ws: Workspace, index: PoolIndex) -> PoolChanges | None:
    """What changed in the pool folder since the last recorded scan (None: no scan recorded yet)."""
    if not ws.photo_index_path.is_file():
        return None
    return diff(PoolIndex.load(ws.photo_index_path), index)


def keep_originals(ws: Workspace, store, generator) -> list[str]:
    """Copy each annotated photo's file into ``annotations/originals/`` byte for byte, once (never re-encoded,
    EXIF kept: ``image_pool.copy_annotated_image``). The annotation is made on the exported PNG at the label
    resolution; the original beside it lets its labels be mapped back (``image_pool.pool_transform``). Returns
    the ids copied now; a photo no longer in the folder is left (its exported PNG stays in ``annotations/``)."""
    from dgan_al.generators.photos import is_photo
    from dgan_al.workspace.image_pool import copy_annotated_image, dest_name

    copied = []
    folder, index = generator.folders[0]
    by_hash = {e.sha256: e for e in index.entries}
    for id, record in sorted(store.records.items()):
        entry = by_hash.get(record.latent.get("sha256")) if is_photo(record.latent) else None
        if entry is None:
            continue
        dest = store.folder / "originals" / dest_name(entry)
        if not dest.is_file():
            copy_annotated_image(folder, entry, dest)
            copied.append(id)
    return copied


def photo_pool_status(ws: Workspace) -> dict:
    """A photo pool as ``status`` reports it, without saving anything: the folder, its photo count and the
    files added, removed, changed or renamed since the last round's scan (names; the next round reports and
    records them)."""
    from dgan_al.workspace.image_pool import scan_pool

    folder = ws.photos_folder()
    if not folder.is_dir():
        return {"folder": str(folder), "photos": 0, "problem": "the folder is missing"}
    index = scan_pool(folder, skip_unreadable=True)
    changes = photo_changes(ws, index)
    out = {"folder": str(folder), "photos": len(index), "unreadable": [u.name for u in index.unreadable]}
    if changes is not None:
        out["changes"] = {"added": [e.name for e in changes.added], "removed": [e.name for e in changes.removed],
                          "changed": [new.name for _, new in changes.changed],
                          "renamed": [[old.name, new.name] for old, new in changes.renamed]}
    return out
