"""A folder of photos as the loop's image source: what a latent generator is to a StyleGAN workspace.

The loop asks its source for the images and feature maps of pool items by *key* (``synthesize(keys)``): a
latent pool's key is z; a photo's key is its content, the 32 bytes of its file's sha256 as float32 [32]
(``photo_key``). So the pool, the scoring chunks, the exclusion of used images and the feature cache work the
same on both kinds of pool, and the StyleGAN path is untouched. On disk a photo item says which photo it is in
its ``latent`` record, ``{"pool_id", "name", "sha256"}`` (``photo_origin``), and its ``z`` is empty.

``PhotoGenerator`` pairs a ``DiffusionFeatures`` (an ADM UNet read as ddpm-segmentation does) with the folders
it may read photos from: the pool, another folder to label (``add_folder``), and the workspace's
``annotations/``, whose stored PNG (the exported image, lossless) stands in for an annotated photo that has
left the pool folder. A photo has no latent to interpolate or map: ``map`` returns an empty embedding, and the
config refuses ``embedding = "w"``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from dgan_al.errors import UserError
from dgan_al.generators.protocol import Synthesis
from dgan_al.geometry import LabelGeometry
from dgan_al.workspace.image_pool import PoolEntry, PoolIndex, load_pool_image

KEY_DIM = 32  # a photo's key: its sha256, one byte per element


def photo_key(sha256_hex: str) -> torch.Tensor:
    """The key of the photo whose file has this sha256: float32 [32], each element one byte (0..255)."""
    return torch.tensor(list(bytes.fromhex(sha256_hex)), dtype=torch.float32)


def key_sha256(key: torch.Tensor) -> str:
    """The sha256 (hex) a photo key stands for (``photo_key``'s inverse)."""
    return bytes(int(v) for v in key.reshape(-1).tolist()).hex()


def photo_origin(entry: PoolEntry) -> dict:
    """A photo item's ``latent`` record in selection.json, the LabelMe files and the annotation index."""
    return {"pool_id": entry.pool_id, "name": entry.name, "sha256": entry.sha256}


def is_photo(latent: dict) -> bool:
    return isinstance(latent, dict) and "sha256" in latent and "pool_id" in latent


def origin_key(latent: dict, z):
    """An item's key from its record: the photo's key for a photo, else ``z`` as recorded."""
    return photo_key(latent["sha256"]) if is_photo(latent) else z


class PhotoGenerator:
    """Images and features of photos by key, with the interface the loop uses of a ``Generator``.

    source       the ``DiffusionFeatures`` (its ``size`` is the UNet's input size)
    folders      (folder, index) pairs the photos are read from, the pool's first
    annotations  the workspace's ``annotations/`` (the fallback for an annotated photo no folder has)
    label_size   the side of the label image and of the image a person annotates (None: the UNet's input
                 size, as ddpm-segmentation labels). Larger, the maps are upsampled to it bilinearly, as they are
                 to the input size, and the UNet still gets the photo resized to its own size.
    """

    truncation_psi = 1.0
    w_plus_shape = None
    z_dim = KEY_DIM

    def __init__(self, source, folders: Sequence[tuple[Path, PoolIndex]] = (), annotations: Path | None = None,
                 label_size: int | None = None):
        self.source = source
        self.label_size = int(label_size or source.size)
        self.identity = source.identity + ("" if self.label_size == source.size else f"|label{self.label_size}px")
        self.geometry = LabelGeometry.full(self.label_size, self.label_size)
        self.feature_channels = list(source.feature_channels)
        self.feature_sizes = list(source.feature_sizes)
        self.annotations = Path(annotations) if annotations is not None else None
        self._where: dict[str, tuple[Path, PoolEntry]] = {}
        self.folders = [(Path(folder), index) for folder, index in folders]
        for folder, index in self.folders:
            self.add_folder(folder, index)

    @property
    def resolution(self) -> tuple[int, int]:
        return self.geometry.size

    def add_folder(self, folder: Path, index: PoolIndex) -> None:
        """Let ``synthesize`` read the photos of ``index`` (scanned from ``folder``); earlier folders win."""
        for entry in index.entries:
            self._where.setdefault(entry.sha256, (Path(folder), entry))
        if (Path(folder), index) not in self.folders:
            self.folders.append((Path(folder), index))

    def image(self, sha256: str, size: int | None = None) -> np.ndarray:
        """The photo with this sha256, resized and cropped to ``size`` (None: the label size): uint8 [size, size, 3]."""
        size = size or self.label_size
        if sha256 in self._where:
            folder, entry = self._where[sha256]
            return load_pool_image(folder, entry, size)
        stored = self._annotated_image(sha256)
        if stored is None:
            raise UserError(f"no photo with sha256 {sha256[:16]}... in the pool folder or annotations/",
                            path=self.folders[0][0] if self.folders else None,
                            fix="put the photo back into the pool folder, or take its annotation out with "
                                "`dgan-al remove ID`")
        if size != self.label_size:  # the stored image is at the label size: resized as the pool's photos are
            stored = np.asarray(Image.fromarray(stored).resize((size, size), Image.Resampling.BILINEAR))
        return stored

    def _annotated_image(self, sha256: str) -> np.ndarray | None:
        """The exported PNG kept in ``annotations/`` for the annotated photo ``sha256`` (None: not annotated)."""
        if self.annotations is None or not (self.annotations / "index.json").is_file():
            return None
        records = json.loads((self.annotations / "index.json").read_text(encoding="utf-8")).get("annotations", {})
        for id, record in records.items():
            if is_photo(record.get("latent")) and record["latent"]["sha256"] == sha256:
                try:
                    with Image.open(self.annotations / f"{id}.png") as png:
                        image = np.asarray(png.convert("RGB"))
                except OSError as err:
                    raise UserError(f"the annotated photo's stored image cannot be read ({err})",
                                    path=self.annotations / f"{id}.png",
                                    fix="restore it, or put the photo back into the pool folder") from None
                if image.shape[:2] != (self.label_size, self.label_size):
                    raise UserError(f"the stored image is {image.shape[1]}x{image.shape[0]}, not the pool's "
                                    f"{self.label_size}x{self.label_size}", path=self.annotations / f"{id}.png",
                                    fix="restore it from annotations/history or put the photo back into the pool")
                return image
        return None

    @torch.no_grad()
    def synthesize(self, keys: torch.Tensor) -> Synthesis:
        """Images uint8 [B, label_size, label_size, 3] and feature maps of the photos ``keys`` [B, 32]."""
        hashes = [key_sha256(k) for k in keys]

        def read(size: int) -> np.ndarray:
            return np.stack([self.image(h, size) for h in hashes]) if hashes else np.zeros((0, size, size, 3), np.uint8)

        images = read(self.label_size)
        inputs = images if self.label_size == self.source.size else read(self.source.size)
        features = self.source.features(torch.from_numpy(inputs))
        return Synthesis(images=torch.from_numpy(images), features=features)

    def map(self, keys: torch.Tensor) -> torch.Tensor:
        """A photo has no latent w: an empty embedding [B, 0]."""
        return torch.zeros(len(keys), 0)

    def mean_latent(self) -> torch.Tensor:
        raise UserError("a pool of photos has no mean latent; its first image is the photo nearest the mean feature",
                        fix="this command works on StyleGAN workspaces only")

    def sample_latents(self, n: int, seed: int, start: int = 0) -> torch.Tensor:
        raise UserError("a pool of photos has no latents to sample", fix="this command works on StyleGAN workspaces only")
