"""The interpreter of a workspace: train one on the annotations, or find the one a round trained.

``next-round``, ``build-dataset``, ``evaluate`` and ``simulate`` all train the same way, from the
settings in ``dgan-al.toml`` and the features cached per annotated latent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from dgan_al.files import sha256_file
from dgan_al.interpreter import PixelEnsemble
from dgan_al.progress import ProgressCallback, silent
from dgan_al.workflows.features import TrainingItems, cached_features
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.layout import Workspace
from dgan_al.workspace.rounds import read_round_state

INTERPRETER_FILE = "interpreter.pt"


def new_ensemble(ws: Workspace, generator, device: torch.device) -> PixelEnsemble:
    """An untrained ensemble with the workspace's settings; with ``[keypoints] names``, one heatmap head per
    name (sigma from ``[keypoints] sigma``). Without names the ensemble is built exactly as before."""
    cfg = ws.config
    heads = {"keypoints": list(cfg.keypoints.names), "sigma": cfg.keypoints.sigma} if cfg.keypoints.names else {}
    return PixelEnsemble(generator.feature_channels, cfg.classes, n_members=cfg.ensemble.members,
                         generator=generator.identity, pixels_per_image=cfg.ensemble.pixels_per_image,
                         max_epochs=cfg.ensemble.epochs, seed=cfg.ensemble.seed, device=device, **heads)


class KeypointTrainingItems(TrainingItems):
    """(maps, mask, keypoints) per annotated image: ``keypoints`` the record's ``{name: [x, y, v]}``, None for an
    image not annotated for keypoints (it trains the classes only)."""

    def __init__(self, paths: Sequence[Path], masks: Sequence, keypoints: Sequence):
        super().__init__(paths, masks)
        self.keypoints = list(keypoints)

    def __iter__(self):
        for (maps, mask), keypoints in zip(super().__iter__(), self.keypoints):
            yield maps, mask, keypoints


def training_items(ws: Workspace, store: AnnotationStore, ids: Sequence[str], paths: Sequence[Path]) -> TrainingItems:
    """The fit items of the annotations ``ids`` (cache files ``paths``): (maps, mask), and the record's
    keypoints as a third element when the workspace has ``[keypoints] names``."""
    masks = [store.mask(i) for i in ids]
    if not ws.config.keypoints.names:
        return TrainingItems(paths, masks)
    return KeypointTrainingItems(paths, masks, [store.records[i].keypoints for i in ids])


def annotation_latents(store: AnnotationStore, ids: Sequence[str]) -> list[torch.Tensor]:
    """Each annotation's key as recorded: z [z_dim], w+ [num_ws, w_dim] (imported w+ annotations), or a photo's
    key [32] (``generators.photos.photo_key``)."""
    from dgan_al.generators.photos import origin_key

    return [torch.as_tensor(origin_key(store.records[i].latent, store.records[i].z), dtype=torch.float32) for i in ids]


def train_on_annotations(ws: Workspace, store: AnnotationStore, ids: Sequence[str], generator,
                         device: torch.device, progress: ProgressCallback = silent) -> PixelEnsemble:
    """Fit a fresh ensemble on the annotations ``ids`` (features from the workspace cache)."""
    paths = cached_features(generator, ws.cache_dir, ids, annotation_latents(store, ids),
                            batch=ws.config.run.batch, progress=progress)
    ensemble = new_ensemble(ws, generator, device)
    ensemble.fit(training_items(ws, store, ids, paths), generator.geometry, progress=progress)
    return ensemble


def round_interpreter(ws: Workspace, annotation_set: str) -> tuple[int, Path] | None:
    """The latest round whose interpreter was trained on exactly this annotation set (and is intact)."""
    for number in reversed(ws.rounds()):
        folder = ws.round_dir(number)
        state = read_round_state(folder)
        weights = folder / INTERPRETER_FILE
        if state.get("annotation_set") == annotation_set and weights.is_file() \
                and state.get("interpreter_sha256") == sha256_file(weights):
            return number, weights
    return None
