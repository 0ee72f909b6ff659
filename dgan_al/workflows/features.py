"""Feature maps of annotated latents, cached on disk at native resolution (fp16).

The interpreter trains on the generator's features of every annotated image. They are a pure function
of (generator, latent), so they are cached in ``rounds/cache/features/<generator>/<id>.pt`` and
recomputed only for new annotations. Per toy-faces image the cache is ~2.7 MB (1040 channels at
4..128 px); a config-f 512px image 129 MB fp16 (``interpreter.feature_cache.feature_cache_bytes``),
far below the full-resolution pixel features the reference code keeps (6 GB fp32 for one 512px image).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Sequence

import torch

from dgan_al.errors import UserError
from dgan_al.files import atomic_torch_save
from dgan_al.generators.protocol import Generator
from dgan_al.progress import ProgressCallback, silent


def cache_folder(cache_root: Path, generator: Generator) -> Path:
    return Path(cache_root) / "features" / re.sub(r"[^A-Za-z0-9_.-]", "_", generator.identity)


def cached_features(generator: Generator, cache_root: Path, ids: Sequence[str], latents: Sequence[torch.Tensor],
                    batch: int = 16, progress: ProgressCallback = silent) -> list[Path]:
    """Make sure every id has its maps cached; returns the cache file of each id (same order). A latent
    is z [z_dim] or w+ [num_ws, w_dim] (``Generator.w_plus_shape``).

    Each latent is synthesised on its own (a batch of one), so its cached maps are the same bits whatever
    else is missing, and a run resumed after an interruption trains exactly what an uninterrupted one
    does (a batch's kernels may round differently per batch size: fp16 maps then differ by ~5e-4).
    ``benchmarks/bench_feature_batch.py`` measures the cost. ``batch`` is accepted for callers' sake and
    not used. A cache file that cannot be read, or is another latent's, is computed again.
    """
    folder = cache_folder(cache_root, generator)
    paths = [folder / f"{id}.pt" for id in ids]
    missing = [i for i, p in enumerate(paths) if not _cached(p, ids[i], latents[i])]
    for done, row in enumerate(missing):
        maps = synthesize_maps(generator, latents[row])
        atomic_torch_save(paths[row], {"id": ids[row], "z": latents[row].clone(), "maps": maps})
        progress("feature cache", done + 1, len(missing))
    return paths


def synthesize_maps(generator: Generator, z: torch.Tensor) -> list[torch.Tensor]:
    """The feature maps of one latent ``z`` (z or w+) as cached: fp16 [C_l, h_l, w_l] per layer."""
    out = generator.synthesize(z[None])
    return [f[0].to(torch.float16).cpu().contiguous() for f in out.features]


def _cached(path: Path, id: str, z: torch.Tensor) -> bool:
    """Whether ``path`` holds readable maps of this latent (derived data is checked, never trusted)."""
    if not path.is_file():
        return False
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return payload["id"] == id and torch.equal(payload["z"], z.to(payload["z"].dtype)) and \
            all(isinstance(m, torch.Tensor) and torch.isfinite(m).all() for m in payload["maps"])
    except Exception:  # noqa: BLE001 - any unreadable cache file (torch raises many types) is recomputed
        return False


def load_maps(path: Path) -> list[torch.Tensor]:
    """The cached maps of one image: list of fp16 [C_l, h_l, w_l]. A file damaged after it was checked
    (``cached_features``) is a ``UserError`` saying it is derived data and safe to delete."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)["maps"]
    except Exception as err:  # noqa: BLE001 - torch raises many types for a damaged file
        raise UserError(f"this cached feature file cannot be read ({type(err).__name__}); it is derived data, "
                        "computed from the generator, not an annotation", path=path,
                        fix="delete it (or all of rounds/cache/) and run again: it is computed again") from None


class TrainingItems:
    """(maps, mask) per annotated image, read lazily from the cache: one image in memory at a time."""

    def __init__(self, paths: Sequence[Path], masks: Sequence):
        self.paths, self.masks = list(paths), list(masks)

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[tuple[list[torch.Tensor], object]]:
        for path, mask in zip(self.paths, self.masks):
            yield load_maps(path), mask


def cache_bytes(paths: Sequence[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())
