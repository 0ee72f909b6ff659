"""Bring the DatasetGAN paper's released data into a workspace (``dgan-al import-datasetgan``).

datasetGAN_release's training code (``train_interpreter.py``) pairs ``image_mask{i}.npy`` with row i of
the latents file (``latent_stylegan1.npy``; z [N, 512] or w+ [N, L, 512], float32 or float64) and the stored
``image_{i}.jpg`` (or .png); masks are resized to the label size by nearest neighbour and, per class,
regions under 30 pixels are set to background ("clean up artifacts"). This import does the same, then
records each row as a workspace annotation: the generator's own image of latent i, the release mask as its
class mask, and a LabelMe file traced from it (so a person can open and correct it).

Before writing anything it checks that the generator reproduces the stored images. The release drew
fresh noise for every image, so no absolute PSNR is meaningful; instead each stored image is compared
with the generator's images of every row (and of 8 unrelated latents): it matches when its own row is
its best match. Fewer than half matching -> refused (the images do not come from this generator and
these latents; nothing written). The rows may also be w+ ([N, L, 512], the release's
``annotation_data_from_w`` form): they are used as given (no truncation, as the release feeds them to the
synthesis) and recorded as they are, so the features are regenerated from the same w+.

``convert_test_set`` turns a release testing-data folder (images + ``.npy`` masks, paired in sorted
order as ``test_deeplab_cross_validation.py`` pairs them) into LabelMe files for ``evaluate --test``.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dgan_al.errors import UserError
from dgan_al.files import sha256_file
from dgan_al.progress import ProgressCallback, silent

SMALL_REGION = 30  # train_interpreter.py: a class with fewer pixels in a mask becomes background
DISTRACTORS = 8  # unrelated latents every stored image is also compared with
DISTRACTOR_SEED = 9_999
RELEASE_PSI = 0.7  # the release's Truncation(threshold=0.7)


@dataclass(kw_only=True)
class DatasetGANImport:
    """Where the release's files are. ``classes``: one class name per line, line i = mask value i
    (default: the workspace's classes in order)."""

    folder: Path
    latents: Path
    avg_latent: Path | None = None
    classes: Path | None = None


@dataclass
class ImageCheck:
    row: int
    image: str
    own_psnr: float  # stored image vs the generator's image of its own latent (dB)
    best_other_psnr: float  # ... vs the best of the other rows and the distractors
    matches: bool


@dataclass
class DatasetGANReport:
    latent_kind: str  # "z [N, 512] float64" etc.
    checks: list[ImageCheck] = field(default_factory=list)
    imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # rows whose image matched another latent better
    cleaned_pixels: int = 0  # pixels of small regions set to background
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------
# reading the release's files


def read_latents(path: Path) -> tuple[np.ndarray, str]:
    """The latents file as float32, and a description of what it holds: z [N, z_dim] or w+ [N, L, w_dim]
    (checked against the generator by the caller); other shapes refused."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise UserError(f"not a readable .npy latents file ({err})", path=path, setting="latents",
                        fix="give the release's latent_stylegan1.npy") from None
    kind = f"{'z' if arr.ndim == 2 else 'w+' if arr.ndim == 3 else 'unknown'} {list(arr.shape)} {arr.dtype}"
    if arr.ndim not in (2, 3) or arr.dtype.kind != "f" or len(arr) == 0:
        raise UserError(f"expected z [N, 512] or w+ [N, L, 512] latents of floats, found {kind}", path=path,
                        setting="latents",
                        fix="give the release's latent_stylegan1.npy")
    if not np.isfinite(arr).all():
        raise UserError("the latents contain NaN or infinite values", path=path, setting="latents")
    return arr.astype(np.float32), kind


def read_classes(path: Path) -> list[str]:
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read the class list ({err})", path=path, setting="classes") from None
    if len(names) < 2 or len(set(names)) != len(names):
        raise UserError("the class list needs at least two distinct names, one a line (mask value 0 first)",
                        path=path, setting="classes")
    return names


def read_mask(path: Path) -> np.ndarray:
    """An annotation mask as the release reads it (np.load, squeezed; [H, W, C] -> channel 0)."""
    try:
        arr = np.squeeze(np.load(path, allow_pickle=False))
    except (OSError, ValueError) as err:
        raise UserError(f"not a readable .npy mask ({err})", path=path) from None
    if arr.ndim == 3:
        arr = arr[:, :, 0]
    if arr.ndim != 2 or arr.dtype.kind not in "uif" or (arr.dtype.kind == "f" and not np.all(arr == np.round(arr))):
        raise UserError(f"a mask must be an [H, W] array of class ids, found {list(arr.shape)} {arr.dtype}", path=path)
    if arr.min() < 0:
        raise UserError("the mask holds negative class ids", path=path)
    return arr.astype(np.int64)


def resize_nearest(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """cv2.resize(..., INTER_NEAREST) as the release resizes masks: source index floor(dst * in / out)."""
    h, w = mask.shape
    rows = np.minimum((np.arange(height) * (h / height)).astype(np.int64), h - 1)
    cols = np.minimum((np.arange(width) * (w / width)).astype(np.int64), w - 1)
    return mask[rows][:, cols]


def clean_small_regions(mask: np.ndarray, n_classes: int) -> tuple[np.ndarray, int]:
    """Classes with fewer than SMALL_REGION pixels in this mask become 0 (train_interpreter.py does it)."""
    counts = np.bincount(mask.reshape(-1), minlength=n_classes)
    small = [c for c in range(1, len(counts)) if 0 < counts[c] < SMALL_REGION]
    out = mask.copy()
    for c in small:
        out[mask == c] = 0
    return out, int(sum(counts[c] for c in small))


def _read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except OSError as err:
        raise UserError(f"cannot read the image ({err})", path=path) from None


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


# ---------------------------------------------------------------------------------------------------
# the import


def import_datasetgan(ws, settings: DatasetGANImport, progress: ProgressCallback = silent) -> DatasetGANReport:
    """Check, then record the release folder's rows as annotations. Refusals write nothing."""
    from dgan_al.labelme import mask_to_polygons, write_labelme
    from dgan_al.workflows.export import META_KEY
    from dgan_al.workspace.annotations import AnnotationRecord, AnnotationStore
    from dgan_al.workspace.lock import WorkspaceLock

    folder = Path(settings.folder)
    if not folder.is_dir():
        raise UserError("no such folder", path=folder, fix="give the release's training-data folder "
                        "(e.g. annotation/training_data/face_processed)")
    z, kind = read_latents(Path(settings.latents))
    classes = ws.config.classes
    names = read_classes(Path(settings.classes)) if settings.classes else list(classes)
    missing = [n for n in names[1:] if n not in classes]  # value 0 is the background in both
    if missing:
        raise UserError(f"classes not in the workspace: {', '.join(missing[:6])}", path=settings.classes,
                        setting="classes",
                        fix="create the workspace with the release's class list (its classes setting)")
    to_workspace = np.array([0] + [classes.index(n) for n in names[1:]], dtype=np.uint8)

    # the rows: mask i + image i (jpg or png), as train_interpreter.py reads them
    rows, problems = [], []
    for i in range(len(z)):
        mask_path = folder / f"image_mask{i}.npy"
        image_path = next((p for p in (folder / f"image_{i}.jpg", folder / f"image_{i}.png") if p.is_file()), None)
        if not mask_path.is_file() or image_path is None:
            absent = f"image_mask{i}.npy" if not mask_path.is_file() else f"image_{i}.jpg|png"
            problems.append(f"row {i}: {absent} missing")
            continue
        rows.append((i, mask_path, image_path))
    extra = sorted(p.name for p in folder.glob("image_mask*.npy")
                   if (m := re.fullmatch(r"image_mask(\d+)\.npy", p.name)) and int(m.group(1)) >= len(z))
    if extra:
        problems.append(f"{len(extra)} mask(s) beyond the {len(z)} latent rows ({', '.join(extra[:3])})")
    if problems:
        raise UserError(f"the folder does not pair with the latents: {'; '.join(problems[:5])}", path=folder,
                        fix="give the latents file of this folder (row i belongs to image_mask{i}.npy)")

    if ws.config.photo_pool:
        raise UserError("DatasetGAN's annotations belong to StyleGAN latents, and this workspace's pool is a folder "
                        "of photos", path=ws.config_path,
                        fix="import them into a workspace made with `dgan-al init --generator <their StyleGAN>`")
    generator = ws.load_generator()
    _check_latent_shape(z, kind, generator, Path(settings.latents))
    report = DatasetGANReport(latent_kind=kind)
    _check_average_latent(generator, settings.avg_latent, ws)
    if abs(generator.truncation_psi - RELEASE_PSI) > 1e-9:
        report.notes.append(f"the workspace renders at truncation psi {generator.truncation_psi:g}; the release "
                            f"rendered its images at {RELEASE_PSI}")

    height, width = generator.resolution
    stored, masks = [], []
    for i, mask_path, image_path in rows:
        image = _read_rgb(image_path)
        if image.shape[:2] != (height, width):
            raise UserError(f"the stored image is {image.shape[1]}x{image.shape[0]} but the workspace labels at "
                            f"{width}x{height}", path=image_path,
                            fix="give the workspace the release's geometry: generator label_resolution = 512 "
                            "(faces) or crop = [64, 0, 384, 512] (cars) in dgan-al.toml")
        mask = read_mask(mask_path)
        if int(mask.max()) >= len(names):
            raise UserError(f"mask values up to {int(mask.max())}, but only {len(names)} classes", path=mask_path,
                            fix="give the release's class list (the classes file of the import)")
        if mask.shape != (height, width):
            mask = resize_nearest(mask, height, width)
        mask, cleaned = clean_small_regions(mask, len(names))
        report.cleaned_pixels += cleaned
        stored.append(image)
        masks.append(to_workspace[mask])

    # does the generator reproduce the stored images? each against every row and the distractors
    ours = []
    latents = torch.from_numpy(z[[i for i, _, _ in rows]])
    distractors = generator.sample_latents(DISTRACTORS, seed=DISTRACTOR_SEED)
    if latents.ndim == 3:  # w+ rows: the distractors as the synthesis sees them too
        distractors = generator.map_ws(distractors)
    candidates = torch.cat([latents, distractors])
    for start in range(0, len(candidates), 8):
        ours.append(generator.synthesize(candidates[start:start + 8]).images.numpy())
        progress("rendering the release latents", min(start + 8, len(candidates)), len(candidates))
    ours = np.concatenate(ours)
    for k, (i, _, image_path) in enumerate(rows):
        scores = [psnr(stored[k], ours[j]) for j in range(len(ours))]
        own = scores[k]
        other = max(s for j, s in enumerate(scores) if j != k)
        report.checks.append(ImageCheck(i, image_path.name, own, other, own > other))
    matched = [c.matches for c in report.checks]
    if sum(matched) < len(matched) / 2:
        raise UserError(f"only {sum(matched)} of {len(matched)} stored images look most like their own latent's "
                        "image: they were not made by this generator from these latents (nothing was written)",
                        path=folder, fix="check the checkpoint, the latents file, the average latent and the "
                        "workspace's truncation psi (the release uses 0.7)")

    store = AnnotationStore(ws.annotations_dir)
    ids = {i: f"datasetgan-{i:04d}" for i, _, _ in rows}
    taken = [ids[i] for i, _, _ in rows if ids[i] in store.records]
    if taken:
        raise UserError(f"already imported: {', '.join(taken[:5])}", path=ws.annotations_dir,
                        fix="remove them first (dgan-al remove ID) or import into a new workspace")
    latents_sha = sha256_file(Path(settings.latents))
    with WorkspaceLock(ws.root, "import-datasetgan"), tempfile.TemporaryDirectory() as tmp:
        for k, (i, _, image_path) in enumerate(rows):
            if not report.checks[k].matches:
                report.skipped.append(ids[i])
                continue
            id = ids[i]
            latent = {"datasetgan": {"row": i, "latents_sha256": latents_sha[:16], "image": image_path.name}}
            z_list = z[i].astype(np.float64).tolist()  # z [z_dim] or w+ [L][w_dim]
            staged = Path(tmp) / f"{id}.json"
            write_labelme(staged, ours[k], mask_to_polygons(masks[k], classes),
                          flags={"done": True, "unrealistic": False},
                          extra={META_KEY: {"id": id, "round": 0, "latent": latent, "z": z_list,
                                            "generator": generator.identity}})
            record = AnnotationRecord(id=id, round=0, latent=latent, z=z_list, json_sha256="", image_sha256="",
                                      mask_sha256="", source=str(image_path), source_sha256=sha256_file(image_path))
            store.add(record, staged.read_bytes(), staged.with_suffix(".png").read_bytes(), masks[k], classes)
            report.imported.append(id)
            progress("recording annotations", k + 1, len(rows))
        store.save()
    return report


def _check_latent_shape(z: np.ndarray, kind: str, generator, path: Path) -> None:
    """z rows must fit the generator's z, w+ rows its (num_ws, w_dim)."""
    if z.ndim == 2 and z.shape[1] == generator.z_dim:
        return
    plus = generator.w_plus_shape
    if z.ndim == 3 and plus is not None and tuple(z.shape[1:]) == plus:
        return
    takes = f"z [N, {generator.z_dim}]" + (f" or w+ [N, {plus[0]}, {plus[1]}]" if plus else "")
    raise UserError(f"the latents are {kind}, but the generator takes {takes}", path=path, setting="latents",
                    fix="use the latents of this generator's category")


def _check_average_latent(generator, path: Path | None, ws) -> None:
    """The release truncates towards its own per-category average latent: the generator must hold it."""
    if path is None:
        return
    from dgan_al.generators.checkpoints import AVG_LATENT_NAMES, read_average_latent

    model = getattr(generator, "model", None)
    if model is None or not hasattr(model, "w_avg") or model.w_avg.ndim != 2:
        raise UserError("an average latent file only applies to a datasetGAN StyleGAN1 checkpoint", path=path,
                        setting="avg_latent", fix="leave it out for other generators")
    want = read_average_latent(Path(path), model.config.num_ws, model.config.w_dim)
    if not torch.allclose(model.w_avg.cpu(), want, atol=1e-6):
        spec = Path(ws.generator_spec())
        raise UserError(f"the generator truncates towards another average latent ({generator.w_avg_origin})",
                        path=path, setting="avg_latent", fix=f"copy this file beside the checkpoint as "
                        f"{spec.with_name(AVG_LATENT_NAMES[0].format(name=spec.name))}")


# ---------------------------------------------------------------------------------------------------
# the testing data


@dataclass
class TestSetReport:
    folder: Path
    written: list[str] = field(default_factory=list)


def convert_test_set(source: Path, out: Path, classes: list[str], progress: ProgressCallback = silent) -> TestSetReport:
    """A release testing-data folder -> LabelMe files (+ PNGs and labels.txt) in ``out`` for evaluate --test.

    Pairing as the release's test script: files whose name contains 'npy' are the masks, the rest the
    images, each list sorted. Everything is read and checked before anything is written."""
    from dgan_al.labelme import mask_to_polygons, write_labelme, write_labels_file

    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise UserError("no such folder", path=source, fix="give the release's testing-data folder")
    files = sorted(p for p in source.iterdir() if p.is_file())
    labels = [p for p in files if "npy" in p.name]
    images = [p for p in files if "npy" not in p.name and p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp")]
    if not images or len(images) != len(labels):
        raise UserError(f"{len(images)} images and {len(labels)} .npy masks: they must pair one to one", path=source,
                        fix="give the release's testing-data folder (e.g. testing_data/face_34_class)")
    if out.is_dir() and any(p.suffix == ".json" for p in out.iterdir()):
        raise UserError("the output folder already holds LabelMe files", path=out, setting="test_out",
                        fix="choose a new folder (nothing there was touched)")
    pairs = []
    for image_path, label_path in zip(images, labels):
        image = _read_rgb(image_path)
        mask = read_mask(label_path)
        if mask.shape != image.shape[:2]:
            raise UserError(f"mask {label_path.name} is {mask.shape[1]}x{mask.shape[0]} but its image "
                            f"{image_path.name} is {image.shape[1]}x{image.shape[0]}", path=label_path)
        if int(mask.max()) >= len(classes):
            raise UserError(f"mask values up to {int(mask.max())}, but only {len(classes)} classes", path=label_path,
                            fix="give the class list the masks were made with")
        pairs.append((image_path.stem, image, mask.astype(np.uint8)))
    report = TestSetReport(out)
    out.mkdir(parents=True, exist_ok=True)
    for k, (stem, image, mask) in enumerate(pairs):
        write_labelme(out / f"{stem}.json", np.ascontiguousarray(image), mask_to_polygons(mask, classes),
                      flags={"done": True, "unrealistic": False})
        report.written.append(f"{stem}.json")
        progress("writing the test set", k + 1, len(pairs))
    write_labels_file(out / "labels.txt", classes)
    return report
