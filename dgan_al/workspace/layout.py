"""A workspace on disk: where everything lives, found from any folder inside it.

```
dgan-al.toml            the project settings
annotations/            the human annotations (LabelMe JSON + image per id), derived masks, index.json
rounds/pool/            the candidate latents (deterministic from the pool seed)
rounds/round_NNN/       one folder per round: interpreter, scores, selection, contact sheet, README
rounds/round_NNN/annotate/   only what a person annotates: the exported images, their JSON, labels.txt
rounds/cache/           derived data that can be rebuilt (feature maps of annotated latents)
```
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dgan_al.errors import UserError
from dgan_al.workspace.config import CONFIG_NAME, WorkspaceConfig, load_config
from dgan_al.files import atomic_write_bytes, atomic_write_json

TOY_ADM = "toy-faces-adm"  # the shipped diffusion UNet of toy-faces renders (generators/adm/toy_faces_adm.pt)
BUILT_IN = ("toy-faces", TOY_ADM)  # generator specs that name no file
ROUND_RE = re.compile(r"^round_(\d{3,})$")
MEAN_ID = "mean"
ANNOTATE_DIR = "annotate"  # the folder LabelMe opens; it lists every image below it, so nothing else goes there
LABELS_FILE = "labels.txt"


@dataclass(frozen=True)
class RoundFiles:
    """Where each file of one round lives (``folder`` = ``rounds/round_NNN``).

    LabelMe lists every image below the folder it opens, so the files to annotate get a folder of their
    own, ``annotate/``, and everything else a round writes stays beside it. A round exported before
    ``annotate/`` existed has its images in the round folder itself (recognised by its labels file
    there); it keeps being read and written there, so old workspaces import and resume as they were.
    """

    folder: Path

    @property
    def annotate(self) -> Path:
        """The folder of the exported images, their LabelMe JSON and the labels file."""
        new = self.folder / ANNOTATE_DIR
        if not new.is_dir() and (self.folder / LABELS_FILE).is_file():
            return self.folder  # an earlier version's layout
        return new

    @property
    def labels(self) -> Path:
        return self.annotate / LABELS_FILE

    @property
    def selection(self) -> Path:
        return self.folder / "selection.json"

    @property
    def contact_sheet(self) -> Path:
        return self.folder / "contact_sheet.png"

    @property
    def readme(self) -> Path:
        return self.folder / "README.txt"

    @property
    def prediction(self) -> Path:
        """simulate's record of what each exported image's pre-fill came from (``export_round(keep_prediction)``):
        ids, predicted labels and JS per pixel, whether or not the files were pre-filled."""
        return self.folder / "prediction.npz"

    @property
    def scores(self) -> Path:
        """The pool score chunks (``chunk_NNNNN.npz``)."""
        return self.folder / "scores"


def latent_id(seed: int, index: int) -> str:
    """The stable id of pool latent ``index`` of stream ``seed``: e.g. ``s0-000123``."""
    return f"s{seed}-{index:06d}"


def parse_latent_id(text: str) -> tuple[int, int] | None:
    m = re.fullmatch(r"s(\d+)-(\d{6,})", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


@dataclass
class Workspace:
    root: Path
    config: WorkspaceConfig

    @classmethod
    def find(cls, start: Path | None = None) -> "Workspace":
        """The workspace containing ``start`` (default: the current folder)."""
        start = Path(start or Path.cwd()).resolve()
        for folder in [start, *start.parents]:
            if (folder / CONFIG_NAME).is_file():
                return cls(folder, load_config(folder / CONFIG_NAME))
        raise UserError(f"no dgan-al workspace at {start} or above it (no {CONFIG_NAME})",
                        fix="cd into a workspace, or create one with `dgan-al init DIR`")

    # --- paths -------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def annotations_dir(self) -> Path:
        return self.root / "annotations"

    @property
    def rounds_dir(self) -> Path:
        return self.root / "rounds"

    @property
    def pool_dir(self) -> Path:
        return self.rounds_dir / "pool"

    @property
    def cache_dir(self) -> Path:
        return self.rounds_dir / "cache"

    def round_dir(self, number: int) -> Path:
        return self.rounds_dir / f"round_{number:03d}"

    def round_files(self, number: int) -> RoundFiles:
        return RoundFiles(self.round_dir(number))

    def rounds(self) -> list[int]:
        """Round numbers present on disk, ascending."""
        if not self.rounds_dir.is_dir():
            return []
        found = [int(m.group(1)) for p in self.rounds_dir.iterdir() if p.is_dir() and (m := ROUND_RE.match(p.name))]
        return sorted(found)

    def latest_round(self) -> int | None:
        found = self.rounds()
        return found[-1] if found else None

    # --- the generator and the pool ---------------------------------------------------------------
    def generator_spec(self) -> str:
        spec = self.config.generator.spec
        if spec in BUILT_IN:
            return spec
        path = Path(spec).expanduser()
        return str(path if path.is_absolute() else (self.root / path))

    def photos_folder(self) -> Path:
        """The folder of a photo pool (``[photos] folder``, relative to the workspace or absolute)."""
        path = Path(self.config.photos.folder).expanduser()
        return path if path.is_absolute() else self.root / path

    @property
    def photo_index_path(self) -> Path:
        """The photo pool's index as of the last round (``image_pool.PoolIndex``): what changes are measured from."""
        return self.pool_dir / "photos.json"

    def load_generator(self, device: str = "cpu"):
        """The workspace's image source: the generator, or for a photo pool a ``PhotoGenerator`` over a fresh
        scan of the pool folder (``[photos]``)."""
        from dgan_al.generators import load_generator

        if self.config.photo_pool:
            return self._load_photo_generator(device)
        g = self.config.generator
        return load_generator(self.generator_spec(), truncation_psi=g.truncation_psi,
                              label_resolution=g.label_resolution or None,
                              crop=tuple(g.crop) if g.crop else None, device=device)

    def _load_photo_generator(self, device: str):
        from dgan_al.generators.adm.source import DiffusionFeatures
        from dgan_al.generators.photos import PhotoGenerator
        from dgan_al.workspace.image_pool import scan_pool

        p = self.config.photos
        folder = self.photos_folder()
        if not folder.is_dir():
            raise UserError("the photo pool folder is missing", path=folder,
                            fix=f"put the photos back, or set [photos] folder in {CONFIG_NAME}")
        spec = self.generator_spec()
        if spec == TOY_ADM:
            from dgan_al.generators.adm.train import TOY_WEIGHTS as spec
        try:
            source = DiffusionFeatures.from_checkpoint(spec, steps=p.steps, blocks=p.blocks,
                                                       seed=p.noise_seed, size=p.size or None, device=device)
        except ValueError as err:
            raise UserError(str(err), path=self.config_path, fix="edit [photos] steps, blocks or size") from None
        index = scan_pool(folder)
        if not len(index):
            raise UserError("the photo pool folder holds no images (.png .jpg .jpeg .webp .bmp)", path=folder,
                            fix="put the photos to label there")
        return PhotoGenerator(source, [(folder, index)], annotations=self.annotations_dir,
                              label_size=p.label_size or None)

    def pool_latents(self, z_dim: int, size: int | None = None) -> torch.Tensor:
        """The pool's latents [size, z_dim] (stored in rounds/pool/ for the record, written on first use).

        They are a pure function of the pool seed, so they are always computed from it; the stored copy
        is rewritten when it is missing, shorter, or differs (truncated, garbled, another generator's).
        """
        from dgan_al.generators.protocol import sample_latents

        size = size or self.config.pool.size
        seed = self.config.pool.seed
        path = self.pool_dir / f"latents_s{seed}.npy"
        try:
            have = np.load(path, allow_pickle=False) if path.is_file() else None
        except (OSError, ValueError, EOFError):
            have = None
        latents = sample_latents(z_dim, max(size, len(have) if _is_pool(have, z_dim) else 0), seed=seed).numpy()
        if not (_is_pool(have, z_dim) and np.array_equal(have, latents)):
            buf = io.BytesIO()
            np.save(buf, latents)
            atomic_write_bytes(path, buf.getvalue())
            atomic_write_json(self.pool_dir / "pool.json", {"seed": seed, "size": int(len(latents)), "z_dim": z_dim,
                                                            "ids": f"{latent_id(seed, 0)} .. {latent_id(seed, len(latents) - 1)}"})
        return torch.from_numpy(latents[:size].copy())


def _is_pool(have, z_dim: int) -> bool:
    return isinstance(have, np.ndarray) and have.dtype == np.float32 and have.ndim == 2 and have.shape[1] == z_dim
