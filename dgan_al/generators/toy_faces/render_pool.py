"""A "photo pool" of toy-faces renders: PNG files whose exact masks can be re-rendered (the oracle of photo pools).

``write_render_pool(folder, n, seed)`` writes ``render_00000.png`` ... (RGB, 128 x 128, the renderer's
pixels losslessly) for latents 0 .. n-1 of the stream ``seed`` (``protocol.sample_latents``), then
``toy-renders.json``::

    {"seed": S, "files": {"render_00000.png": 0, ...}, "generator": "toy-faces renderer"}

``render_truth(folder, name)`` reads that record, re-renders the file's latent and returns its exact part
mask (uint8 [128, 128], ids in ``classes.CLASSES`` order) and keypoints (float [K, 3] x, y, v in
``keypoints.KEYPOINTS`` order, the renderer's truth). It first checks that the file's pixels equal the
re-render: a file edited, replaced or renamed onto another's name would otherwise get a wrong truth.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dgan_al.errors import UserError, quote
from dgan_al.progress import ProgressCallback, silent

RECORD = "toy-renders.json"
GENERATOR = "toy-faces renderer"
CHUNK = 32  # renders per render_latents call


@dataclass
class RenderPoolResult:
    folder: Path
    files: list[str]
    seed: int


def render_name(index: int) -> str:
    return f"render_{index:05d}.png"


def write_render_pool(folder: str | Path, n: int, seed: int, progress: ProgressCallback = silent) -> RenderPoolResult:
    """Write n renders of stream ``seed`` as PNGs into ``folder`` plus ``toy-renders.json`` (written last).

    A folder that already holds PNG files is refused (UserError) before anything is written."""
    from PIL import Image

    from dgan_al.files import atomic_write_bytes, atomic_write_json
    from dgan_al.generators.protocol import sample_latents
    from dgan_al.generators.toy_faces.render import render_latents
    from dgan_al.generators.toy_faces.scene import Z_DIM

    folder = Path(folder)
    if n < 1:
        raise UserError(f"must be at least 1, got {n}", setting="n", fix="e.g. --n 200")
    if seed < 0:
        raise UserError(f"must be >= 0, got {seed}", setting="seed", fix="e.g. --seed 0")
    if folder.exists() and not folder.is_dir():
        raise UserError("is a file, not a folder", path=folder, fix="choose a new folder")
    if folder.is_dir() and any(p.is_file() and p.suffix.lower() == ".png" for p in folder.iterdir()):
        raise UserError("the folder already holds PNG files", path=folder,
                        fix="choose a new or empty folder (nothing there was touched)")
    folder.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    for start in range(0, n, CHUNK):
        z = sample_latents(Z_DIM, min(CHUNK, n - start), seed=seed, start=start)
        images, _ = render_latents(z.numpy())
        for j, image in enumerate(images):
            buffer = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(image), "RGB").save(buffer, format="PNG")
            names.append(render_name(start + j))
            atomic_write_bytes(folder / names[-1], buffer.getvalue())
        progress("rendering the photo pool", start + len(images), n)
    atomic_write_json(folder / RECORD, {"seed": int(seed), "files": {name: i for i, name in enumerate(names)},
                                        "generator": GENERATOR})
    return RenderPoolResult(folder, names, int(seed))


def read_render_record(folder: str | Path) -> dict:
    """``folder/toy-renders.json``, checked: {"seed": int, "files": {name: index}, "generator": ...}."""
    path = Path(folder) / RECORD
    fix = "make the folder with `dgan-al toy renders FOLDER`"
    if not path.is_file():
        raise UserError("missing: this is not a folder of toy renders", path=path, fix=fix)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"is not valid JSON ({err})", path=path, fix=fix) from None
    ok = (isinstance(record, dict) and record.get("generator") == GENERATOR and isinstance(record.get("seed"), int)
          and isinstance(record.get("files"), dict)
          and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in record["files"].values()))
    if not ok:
        raise UserError("is not a toy-renders record (seed, files, generator)", path=path, fix=fix)
    return record


def render_truth(folder: str | Path, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The exact mask (uint8 [128, 128]) and keypoints (float [K, 3]) of render ``name`` in ``folder``.

    Re-renders latent ``files[name]`` of stream ``seed`` from ``toy-renders.json`` and checks that the
    file's pixels equal it; a file not in the record, unreadable or with other pixels is a UserError."""
    from PIL import Image, UnidentifiedImageError

    from dgan_al.generators.protocol import sample_latents
    from dgan_al.generators.toy_faces.keypoints import latent_keypoints
    from dgan_al.generators.toy_faces.render import render_latents
    from dgan_al.generators.toy_faces.scene import Z_DIM

    folder = Path(folder)
    record = read_render_record(folder)
    if name not in record["files"]:
        raise UserError(f"{quote(name)} is not one of the renders this folder's {RECORD} lists", path=folder,
                        fix="give a file name as the record lists it, e.g. render_00000.png")
    path = folder / name
    try:
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB")) if im.mode != "RGB" else np.asarray(im)
    except FileNotFoundError:
        raise UserError("missing: the record lists it but the file is gone", path=path,
                        fix="restore the file or make a new pool") from None
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(f"cannot be read as an image ({err})", path=path, fix="restore the file or make a new pool") from None
    z = sample_latents(Z_DIM, 1, seed=record["seed"], start=record["files"][name]).numpy()
    images, masks = render_latents(z)
    if pixels.shape != images[0].shape or not np.array_equal(pixels, images[0]):
        raise UserError("its pixels differ from the render the record names: the file was changed or replaced",
                        path=path, fix="restore the original file (or drop it from the pool); its truth is unknown")
    return np.ascontiguousarray(masks[0]), latent_keypoints(z, "renderer")[0]
