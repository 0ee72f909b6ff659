"""A pool of real images: a folder of photos, each known by its content, read as the UNet sees it.

```
scan_pool(folder) -> PoolIndex          every image file, its sha256, size and pool id; duplicates reported
PoolIndex.save(path) / PoolIndex.load   the index as JSON (atomic), kept from round to round
diff(old, new) -> PoolChanges           added, removed, changed (same name, other bytes), renamed (same bytes)
load_pool_image(folder, entry, size)    uint8 [size, size, 3]: EXIF-turned, RGB, shorter side resized, centre crop
pool_transform(entry, size)             the crop box: pool_to_original(x, y) / original_to_pool(x, y)
copy_annotated_image(folder, entry, dest)  the file byte for byte (never re-encoded), checked against its sha256
nearest_to_mean(features [N, D])        the index of the photo nearest the pool's mean feature (the first image)
```
An image's identity is its bytes: the pool id is ``p-`` + the first 12 hex digits of the sha256 of the file,
so a renamed or moved file keeps its id (and its annotation), an edited file gets a new one, and two files with
the same bytes are one image. Names are paths relative to the pool folder in POSIX form (``sub/a.jpg``).

Resize/crop policy, following ddpm-segmentation (``src/datasets.py``, ``make_transform('ddpm', resolution)``):
their transform is torchvision's ``transforms.Resize(resolution)`` — the shorter side to ``resolution``, the
longer to ``int(resolution * long / short)`` (torchvision's ``_compute_resized_output_size``), bilinear (the
default; on a PIL image it is PIL's ``resize(..., BILINEAR)``). Their ``ImageLabelDataset`` asserts square
images and crops nothing; for the rest we take the centre ``size`` x ``size`` with guided-diffusion's offsets
(``image_datasets.py``, ``center_crop_arr``: ``(H - size) // 2``, ``(W - size) // 2``). A square photo
therefore gets exactly their input. Labels are made at ``size`` x ``size`` (their masks are resized to
``resolution`` too): the label resolution equals ``size``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import PIL.Image

from dgan_al.errors import UserError, quote
from dgan_al.files import atomic_write_bytes, atomic_write_json, sha256_bytes
from dgan_al.labelme.read import apply_orientation, exif_orientation
from dgan_al.progress import ProgressCallback, silent

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
ID_PREFIX = "p-"
ID_HEX = 12  # 48 bits: a chance of about 2e-5 that two of 100,000 different images share an id (refused then)
INDEX_VERSION = 1
SHOWN_PROBLEMS = 5  # how many unreadable files an error names
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, struct.error, PIL.Image.DecompressionBombError)


@dataclass(frozen=True)
class PoolEntry:
    """One image of the pool. ``width`` x ``height`` is the image as shown (EXIF ``orientation`` applied,
    as LabelMe shows it); ``n_bytes`` the file's length; ``name`` its POSIX path relative to the pool folder."""

    pool_id: str
    name: str
    sha256: str
    width: int
    height: int
    orientation: int
    n_bytes: int


@dataclass(frozen=True)
class Duplicate:
    """A file with the same bytes as the entry ``kept`` (the first of them by relative path): not a second image."""

    name: str
    kept: str
    pool_id: str


@dataclass(frozen=True)
class Unreadable:
    """A file with an image suffix that PIL cannot decode, and why (only with ``scan_pool(skip_unreadable=True)``)."""

    name: str
    reason: str


@dataclass(frozen=True)
class PoolIndex:
    """What ``scan_pool`` found: ``entries`` sorted by name, the ``duplicates`` left out, the ``unreadable`` skipped."""

    entries: tuple[PoolEntry, ...]
    duplicates: tuple[Duplicate, ...] = ()
    unreadable: tuple[Unreadable, ...] = ()

    def __len__(self) -> int:
        return len(self.entries)

    def by_id(self) -> dict[str, PoolEntry]:
        return {e.pool_id: e for e in self.entries}

    def by_name(self) -> dict[str, PoolEntry]:
        return {e.name: e for e in self.entries}

    def digest(self) -> str:
        """16 hex digits naming the photos and their names (a changed folder has another digest)."""
        return hashlib.sha256("".join(f"{e.sha256}{e.name}" for e in self.entries).encode()).hexdigest()[:16]

    def save(self, path: str | Path) -> None:
        """Write the index as JSON, atomically (readers see the old file or the new one)."""
        atomic_write_json(Path(path), {
            "version": INDEX_VERSION,
            "entries": [asdict(e) for e in self.entries],
            "duplicates": [asdict(d) for d in self.duplicates],
            "unreadable": [asdict(u) for u in self.unreadable],
        })

    @classmethod
    def load(cls, path: str | Path) -> "PoolIndex":
        """Read an index written by ``save``; anything else is a ``UserError`` naming the file."""
        path = Path(path)
        fix = "the tool writes this file: restore it, or delete it and scan the pool again (the changes since " \
              "the last scan are then not reported)"
        try:
            raw = json.loads(path.read_bytes().decode("utf-8"))
            if raw.get("version") != INDEX_VERSION:
                raise ValueError(f"version {quote(raw.get('version'))}, expected {INDEX_VERSION}")
            entries = tuple(_record(PoolEntry, r) for r in raw["entries"])
            duplicates = tuple(_record(Duplicate, r) for r in raw.get("duplicates", []))
            unreadable = tuple(_record(Unreadable, r) for r in raw.get("unreadable", []))
        except FileNotFoundError:
            raise UserError("the pool index is missing", path=path, fix=fix) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError, TypeError, KeyError,
                AttributeError) as err:
            raise UserError(f"not a pool index: {err}", path=path, fix=fix) from None
        return cls(entries, duplicates, unreadable)


def _record(kind: type, raw: Any) -> Any:
    """``kind(**raw)`` with each field's type checked (a hand-edited or foreign file is refused, not half-read)."""
    if not isinstance(raw, dict) or set(raw) != set(kind.__dataclass_fields__):
        raise ValueError(f"a {kind.__name__} record must have exactly the keys {sorted(kind.__dataclass_fields__)}")
    for key, f in kind.__dataclass_fields__.items():
        want = int if f.type == "int" else str
        if type(raw[key]) is not want:
            raise ValueError(f"{kind.__name__}.{key} must be {want.__name__}, got {quote(raw[key])}")
    return kind(**raw)


def pool_id_of(sha256: str) -> str:
    """The stable pool id of an image whose file has this sha256 (hex)."""
    return ID_PREFIX + sha256[:ID_HEX]


def list_image_files(folder: str | Path) -> list[str]:
    """The image files under ``folder`` (subfolders included) as sorted POSIX relative names.

    An image file has one of ``IMAGE_SUFFIXES`` in any case; files and folders whose name starts with ``.``
    (hidden, or our own temp files) are skipped, and so is anything else. Symlinked folders are not entered.
    """
    folder = Path(folder)
    names = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = Path(root).relative_to(folder)
        for f in files:
            if not f.startswith(".") and f.lower().endswith(IMAGE_SUFFIXES) and (Path(root) / f).is_file():
                names.append((rel / f).as_posix())
    return sorted(names)


def scan_pool(folder: str | Path, *, skip_unreadable: bool = False,
              progress: ProgressCallback = silent) -> PoolIndex:
    """Every image under ``folder`` with its identity (sha256, name, size as shown, pool id), sorted by name.

    Each file is read once: its bytes are hashed and fully decoded (so a truncated download is found now, not
    in the middle of a round; the decode is small beside the UNet passes each image will get). Files with the
    bytes of an earlier name (by sorted relative name) are ``duplicates``: the first name is kept.

    Unreadable files (not an image, truncated, EXIF PIL cannot parse): by default one ``UserError`` names the
    first few and their count, after the whole folder was read. A user who points the tool at a photo folder
    expects every photo in it to be labelled; a file silently left out would be missing from the dataset with
    nothing to say why, and the fix (repair or move the files) is theirs to make. ``skip_unreadable=True``
    leaves them out and lists them in ``PoolIndex.unreadable`` for a report instead. A folder without images
    gives an empty index (the caller says whether that is a mistake).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError("the image pool folder does not exist or is not a folder", path=folder,
                        fix="give the folder that holds your photos")
    names = list_image_files(folder)
    entries: list[PoolEntry] = []
    duplicates: list[Duplicate] = []
    unreadable: list[Unreadable] = []
    seen: dict[str, PoolEntry] = {}  # sha256 -> entry
    ids: dict[str, str] = {}  # pool id -> sha256
    for i, name in enumerate(names):
        progress("scanning images", i, len(names))
        try:
            data = (folder / name).read_bytes()
        except OSError as err:
            unreadable.append(Unreadable(name, f"cannot read the file: {err.strerror or err}"))
            continue
        digest = sha256_bytes(data)
        if digest in seen:
            duplicates.append(Duplicate(name, seen[digest].name, seen[digest].pool_id))
            continue
        try:
            width, height, orientation = _measure(data)
        except _DECODE_ERRORS as err:
            unreadable.append(Unreadable(name, str(err) or type(err).__name__))
            continue
        pool_id = pool_id_of(digest)
        if ids.setdefault(pool_id, digest) != digest:
            other = next(e.name for e in entries if e.pool_id == pool_id)
            raise UserError(f"{name} and {other} are different images with the same pool id {pool_id}",
                            path=folder, fix="move one of the two out of the pool")
        seen[digest] = PoolEntry(pool_id, name, digest, width, height, orientation, len(data))
        entries.append(seen[digest])
    progress("scanning images", len(names), len(names))
    if unreadable and not skip_unreadable:
        shown = "; ".join(f"{u.name}: {u.reason}" for u in unreadable[:SHOWN_PROBLEMS])
        more = f"; and {len(unreadable) - SHOWN_PROBLEMS} more" if len(unreadable) > SHOWN_PROBLEMS else ""
        raise UserError(f"{len(unreadable)} of {len(names)} image files cannot be read as images: {shown}{more}",
                        path=folder, fix="repair those files or move them out of the folder, then run again")
    return PoolIndex(tuple(entries), tuple(duplicates), tuple(unreadable))


def _measure(data: bytes) -> tuple[int, int, int]:
    """(width, height, orientation) of the encoded image as shown; decodes it whole (raises _DECODE_ERRORS)."""
    with PIL.Image.open(io.BytesIO(data)) as image:
        orientation = exif_orientation(image)
        image.load()
        width, height = image.size
    if orientation in (5, 6, 7, 8):  # a quarter turn swaps the sides
        width, height = height, width
    return width, height, orientation


# ---------------------------------------------------------------------------------------------------
# changes between two scans


@dataclass(frozen=True)
class PoolChanges:
    """What differs between two scans. ``changed``: (old, new) with one name and other bytes; ``renamed``:
    (old, new) with the same bytes (so the same pool id) under another name."""

    added: tuple[PoolEntry, ...] = ()
    removed: tuple[PoolEntry, ...] = ()
    changed: tuple[tuple[PoolEntry, PoolEntry], ...] = ()
    renamed: tuple[tuple[PoolEntry, PoolEntry], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.renamed)

    def summary(self) -> str:
        """One line for a report: ``"2 added, 1 removed, 0 changed, 1 renamed"``."""
        return (f"{len(self.added)} added, {len(self.removed)} removed, {len(self.changed)} changed, "
                f"{len(self.renamed)} renamed")


def diff(old: PoolIndex, new: PoolIndex) -> PoolChanges:
    """The changes from ``old`` to ``new``: images matched by their bytes first (kept or ``renamed``), then the
    rest by name (``changed``: the old bytes are gone and other bytes took the name), then ``added`` / ``removed``.
    Each list is sorted by name."""
    old_by_hash = {e.sha256: e for e in old.entries}
    new_by_hash = {e.sha256: e for e in new.entries}
    renamed = [(old_by_hash[h], e) for h, e in new_by_hash.items()
               if h in old_by_hash and old_by_hash[h].name != e.name]
    old_rest = {e.name: e for h, e in old_by_hash.items() if h not in new_by_hash}
    new_rest = {e.name: e for h, e in new_by_hash.items() if h not in old_by_hash}
    changed = [(old_rest[n], new_rest[n]) for n in sorted(old_rest.keys() & new_rest.keys())]
    return PoolChanges(
        added=tuple(sorted((e for n, e in new_rest.items() if n not in old_rest), key=lambda e: e.name)),
        removed=tuple(sorted((e for n, e in old_rest.items() if n not in new_rest), key=lambda e: e.name)),
        changed=tuple(changed),
        renamed=tuple(sorted(renamed, key=lambda pair: pair[1].name)),
    )


# ---------------------------------------------------------------------------------------------------
# reading an image the way the UNet sees it, and relating it to the original


@dataclass(frozen=True)
class PoolTransform:
    """Where the ``size`` x ``size`` pool image lies in the original (EXIF-turned, as LabelMe shows the file).

    The original (``width`` x ``height``) is resized to ``resized_width`` x ``resized_height`` (shorter side =
    ``size``) and cropped at (``left``, ``top``). Coordinates are continuous with pixel edges at integers (pixel
    (i, j) covers [i, i+1) x [j, j+1), its centre at i + 0.5): the grid PIL's resize samples on, so the maps
    are exact (align_corners=False, as ``LabelGeometry`` upsamples). x runs along the width, y down the height.
    """

    width: int
    height: int
    size: int
    resized_width: int
    resized_height: int
    left: int
    top: int

    def pool_to_original(self, x: Any, y: Any) -> tuple[Any, Any]:
        """A point of the pool image (floats or arrays) in the original's pixel coordinates."""
        return ((np.asarray(x, dtype=np.float64) + self.left) * (self.width / self.resized_width),
                (np.asarray(y, dtype=np.float64) + self.top) * (self.height / self.resized_height))

    def original_to_pool(self, x: Any, y: Any) -> tuple[Any, Any]:
        """A point of the original in the pool image's pixel coordinates (outside [0, size] if cropped away)."""
        return (np.asarray(x, dtype=np.float64) * (self.resized_width / self.width) - self.left,
                np.asarray(y, dtype=np.float64) * (self.resized_height / self.height) - self.top)

    @property
    def crop_box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1): the region of the original the pool image shows."""
        x0, y0 = self.pool_to_original(0, 0)
        x1, y1 = self.pool_to_original(self.size, self.size)
        return float(x0), float(y0), float(x1), float(y1)


def pool_transform(entry: PoolEntry, size: int) -> PoolTransform:
    """The resize and centre crop of ``entry`` to ``size`` (see the module docstring for the policy)."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    w, h = entry.width, entry.height
    if w <= h:  # torchvision's _compute_resized_output_size: the longer side truncated
        rw, rh = size, int(size * h / w)
    else:
        rw, rh = int(size * w / h), size
    return PoolTransform(w, h, size, rw, rh, (rw - size) // 2, (rh - size) // 2)


def load_pool_image(folder: str | Path, entry: PoolEntry, size: int) -> np.ndarray:
    """The pool image as the UNet gets it: uint8 [size, size, 3], RGB.

    The file is checked against ``entry.sha256`` (a file edited since the scan is refused: its annotation and
    features would belong to other pixels). EXIF orientation is applied first, so the result and
    ``pool_transform`` refer to the image as LabelMe shows it. Grey, palette and 16-bit images become RGB;
    transparency (alpha, or a palette's or grey image's transparent colour) is composited over white — a
    plain ``convert("RGB")``, as ddpm-segmentation does, would show whatever colour hides under alpha 0.
    Then bilinear resize of the shorter side to ``size`` and the centre crop (``pool_transform``).
    """
    path = Path(folder) / entry.name
    image = _open_checked(path, entry)
    t = pool_transform(entry, size)
    with image:
        rgb = _to_rgb(apply_orientation(image, entry.orientation))
        if rgb.size != (entry.width, entry.height):
            raise UserError(f"the image is {rgb.size[0]}x{rgb.size[1]} but was {entry.width}x{entry.height} when "
                            "the pool was scanned", path=path, fix="scan the pool again")
        if rgb.size != (t.resized_width, t.resized_height):
            rgb = rgb.resize((t.resized_width, t.resized_height), PIL.Image.Resampling.BILINEAR)
        pixels = np.asarray(rgb)[t.top:t.top + size, t.left:t.left + size]  # [size, size, 3]
    return np.array(pixels, dtype=np.uint8, order="C")  # a writable copy (PIL's buffer is read-only)


def _open_checked(path: Path, entry: PoolEntry) -> PIL.Image.Image:
    """``path`` opened and decoded, after checking its bytes are still ``entry``'s."""
    data = _read_checked(path, entry)
    try:
        image = PIL.Image.open(io.BytesIO(data))
        image.load()
    except _DECODE_ERRORS as err:
        raise UserError(f"cannot read the image: {err}", path=path, fix="scan the pool again") from None
    return image


def _read_checked(path: Path, entry: PoolEntry) -> bytes:
    fix = "scan the pool again: an image's identity is its bytes, so an edited file is a new image"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"pool image {entry.pool_id} is gone", path=path, fix=fix) from None
    except OSError as err:
        raise UserError(f"cannot read pool image {entry.pool_id}: {err.strerror or err}", path=path) from None
    if sha256_bytes(data) != entry.sha256:
        raise UserError(f"the file is no longer pool image {entry.pool_id} (its bytes changed since the scan)",
                        path=path, fix=fix)
    return data


def _to_rgb(image: PIL.Image.Image) -> PIL.Image.Image:
    """``image`` as 8-bit RGB; transparent pixels over white."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):  # 16-bit grey (PNG): scale to 8 bits
        grey = np.asarray(image if image.mode == "I" else image.convert("I"), dtype=np.float64)  # [H, W]
        image = PIL.Image.fromarray(np.clip(np.rint(grey / 257.0), 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = PIL.Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PIL.Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def copy_annotated_image(folder: str | Path, entry: PoolEntry, dest: str | Path) -> Path:
    """Copy the pool file of ``entry`` to ``dest`` byte for byte (atomically; never decoded or re-encoded).

    The bytes are checked against ``entry.sha256`` first, so the stored image is the one scanned. The copy
    keeps the file's EXIF: LabelMe shows it turned exactly as ``load_pool_image`` turns it, so an annotation
    of the copy is in the original's coordinates of ``pool_transform`` (``original_to_pool`` maps it to the
    ``size`` x ``size`` label grid). Keep the suffix (``dest_name``): LabelMe picks the decoder by it.
    """
    dest = Path(dest)
    atomic_write_bytes(dest, _read_checked(Path(folder) / entry.name, entry))
    return dest


def dest_name(entry: PoolEntry) -> str:
    """A file name for the stored copy: the pool id and the original's suffix, lower case (``p-0123abcd4567.jpg``)."""
    return entry.pool_id + PurePosixPath(entry.name).suffix.lower()


# ---------------------------------------------------------------------------------------------------
# the first image


def nearest_to_mean(features: Any, chunk: int = 1024) -> int:
    """The index of the row of ``features`` [N, D] nearest (Euclidean) the mean row; ties go to the lower index.

    It plays the part of the mean latent's image for a pool of photos: the most typical photo is annotated
    first. Float64 throughout, in chunks of ``chunk`` rows (a 10k x 8448 float32 pool is not copied whole).
    Accepts numpy arrays and CPU tensors.
    """
    if hasattr(features, "detach"):
        features = features.detach().cpu().numpy()
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] < 1:
        raise ValueError(f"features must be [N, D] with N >= 1, got shape {features.shape}")
    n = features.shape[0]
    total = np.zeros(features.shape[1], dtype=np.float64)
    for start in range(0, n, chunk):
        total += features[start:start + chunk].sum(axis=0, dtype=np.float64)
    mean = total / n
    if not np.all(np.isfinite(mean)):
        raise ValueError("features must be finite")
    best, best_d = 0, np.inf
    for start in range(0, n, chunk):
        d = ((features[start:start + chunk].astype(np.float64) - mean) ** 2).sum(axis=1)  # [chunk]
        i = int(np.argmin(d))  # the first of equal minima
        if d[i] < best_d:  # strictly smaller: an equal distance in a later chunk loses
            best, best_d = start + i, float(d[i])
    return best
