"""``init_workspace``: a new workspace with its settings, pool and round 0 (the mean-latent image)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dgan_al.errors import UserError
from dgan_al.files import atomic_write_text
from dgan_al.labelme import write_labels_file
from dgan_al.progress import ProgressCallback, silent
from dgan_al.workflows.export import ExportItem, export_round
from dgan_al.workflows.next_round import mean_latent_item
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.config import (
    CONFIG_NAME,
    GeneratorSettings,
    KeypointSettings,
    PhotoSettings,
    PoolSettings,
    WorkspaceConfig,
    render_config,
)
from dgan_al.workspace.layout import BUILT_IN, TOY_ADM, Workspace
from dgan_al.workspace.rounds import write_round_state

ANNOTATIONS_README = """\
# annotations/

The human annotations of this workspace, imported by `dgan-al next-round` from the round folders:
`<id>.json` + `<id>.png` per annotated image (LabelMe files, copied byte for byte), `masks/<id>.png` (the
rasterised class masks), `index.json` (latent, round and checksums of each), `history/` (every imported
version) and `removed/` (annotations taken out with `dgan-al remove`; never deleted).

You may open a file here in LabelMe and correct it: the next round imports the new version.
"""


def read_classes(spec: str) -> list[str]:
    """Classes from a file (one per line; LabelMe's labels.txt works) or a comma list: ``a,b,c``.

    The background comes first: ``_background_`` / ``background`` is taken as class 0, and added in
    front when missing; ``__ignore__`` lines are skipped.
    """
    path = Path(spec).expanduser()
    if path.is_file():
        try:
            names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        except UnicodeDecodeError:
            raise UserError("the classes file is not UTF-8 text", path=path, fix="one class name per line") from None
    elif "," in spec or (spec and not path.suffix):
        names = [part.strip() for part in spec.split(",")]
    else:
        raise UserError(f"no classes file {spec}", fix="give a file with one class per line, or a,b,c")
    names = [n for n in names if n and n != "__ignore__"]
    names = ["background" if n == "_background_" else n for n in names]
    if not names or names[0] != "background":
        names = ["background"] + [n for n in names if n != "background"]
    return names


def read_keypoint_names(spec: str) -> list[str]:
    """Keypoint names from a comma list: ``left_eye,right_eye,nose_tip`` (the config checks each name)."""
    return [part.strip() for part in spec.split(",") if part.strip()]


FIRST_PHOTO_RULE = ("The first image to annotate: the photo nearest the pool's mean feature, the most typical one "
                    "(the counterpart of the paper's mean latent; no interpreter yet, so no pre-fill).")


def _relative(root: Path, spec: str | Path) -> str:
    """A path as the config records it: relative to the workspace when inside it, else absolute."""
    path = Path(spec).expanduser().resolve()
    return str(path.relative_to(root)) if root in path.parents else str(path)


def first_photo_item(ws: Workspace, generator, progress: ProgressCallback = silent) -> ExportItem:
    """The photo nearest the pool's mean feature (``image_pool.nearest_to_mean``): every photo's feature maps,
    each averaged over its pixels and joined, [N, sum C_l]. The pool's scan is recorded as the reference for
    the changes the next rounds report."""
    import torch

    from dgan_al.workflows.pool import workspace_pool
    from dgan_al.workspace.image_pool import nearest_to_mean

    pool = workspace_pool(ws, generator)
    pooled = []
    batch = ws.config.run.batch
    for start in range(0, len(pool), batch):
        with torch.no_grad():
            maps = generator.synthesize(pool.keys[start:start + batch]).features
        pooled.append(torch.cat([m.float().mean(dim=(2, 3)).cpu() for m in maps], dim=1))
        progress("photo features (the first image)", min(start + batch, len(pool)), len(pool))
    row = nearest_to_mean(torch.cat(pooled))
    return ExportItem(id=pool.ids[row], z=pool.keys[row], latent=pool.origins[row])


@dataclass
class InitResult:
    workspace: Workspace
    round_folder: Path
    generator: str
    feature_width: int


def init_workspace(directory: Path, generator_spec: str = "toy-faces", classes: list[str] | None = None,
                   pool_size: int = 10_000, seed: int = 0, label_resolution: int | None = None,
                   crop: tuple[int, int, int, int] | None = None, truncation_psi: float = 1.0,
                   device: str = "cpu", progress: ProgressCallback = silent,
                   keypoints: list[str] | None = None, images: Path | None = None,
                   photo_size: int = 0, steps: list[int] | None = None, blocks: list[int] | None = None,
                   label_size: int = 0) -> InitResult:
    """Make the workspace ``directory``. ``keypoints``: the keypoint names (``[keypoints] names``); with them
    and no ``classes`` a checkpoint generator gets a keypoint-only workspace (classes = the background).
    ``images``: a folder of photos as the pool (``[photos]``), read by the ADM checkpoint ``generator_spec``;
    ``photo_size``: the UNet's input size (0: its own); ``label_size``: the label resolution (0: ``photo_size``);
    ``steps``, ``blocks``: the features read (None: ddpm-segmentation's, ``[photos]``'s defaults)."""
    from dgan_al.generators import load_generator

    root = Path(directory).resolve()
    if (root / CONFIG_NAME).exists() or (root / "annotations" / "index.json").exists():
        raise UserError("a dgan-al workspace already exists here; refusing to overwrite it", path=root,
                        fix="choose another folder, or continue this one with `dgan-al next-round`")
    spec = generator_spec if generator_spec in BUILT_IN else _relative(root, generator_spec)
    photos = PhotoSettings()
    if generator_spec == TOY_ADM and images is None:
        raise UserError("toy-faces-adm reads photos, not latents", setting="images",
                        fix="give --images FOLDER (`dgan-al toy renders FOLDER` writes a pool of toy-faces renders)")
    if images is not None:
        if not Path(images).is_dir():
            raise UserError("no such folder of photos", path=Path(images), setting="images",
                            fix="give the folder that holds the images to label")
        photos.folder, photos.size, photos.label_size = _relative(root, images), photo_size, label_size
        if generator_spec == TOY_ADM:  # its own features and size, as its ship gate chose them (docs/diffusion-toy.md)
            from dgan_al.generators.adm.train import TOY_BLOCKS, TOY_SIZE, TOY_STEPS

            photos.steps, photos.blocks, photos.size = list(TOY_STEPS), list(TOY_BLOCKS), photo_size or TOY_SIZE
        photos.steps, photos.blocks = list(steps or photos.steps), list(blocks or photos.blocks)
        draft = WorkspaceConfig(classes=["background"], generator=GeneratorSettings(spec=spec), photos=photos)
        try:
            generator = Workspace(root, draft).load_generator(device)
        except UserError as err:  # no config is written yet: name the options instead
            if err.path is not None and Path(err.path).name == CONFIG_NAME:
                raise UserError(err.message, setting="steps/blocks/photo_size",
                                fix="choose --blocks among the UNet's output blocks (`dgan-al inspect-generator` "
                                    "lists them), --steps within its schedule") from None
            raise
    else:
        generator = load_generator(generator_spec, truncation_psi=truncation_psi, label_resolution=label_resolution,
                                   crop=crop, device=device)
    if classes is None:
        classes = getattr(generator, "classes", None)
        if classes is None and keypoints:
            classes = ["background"]  # keypoint-only, like the paper's cars
        if classes is None:
            raise UserError("required for a checkpoint generator", setting="classes",
                            fix="give a file with one class per line (background first), or a,b,c (or only "
                                "--keypoints for a keypoint-only workspace)")
    config = WorkspaceConfig(classes=list(classes),
                             generator=GeneratorSettings(spec=spec, truncation_psi=truncation_psi,
                                                         label_resolution=label_resolution or 0,
                                                         crop=list(crop) if crop else []),
                             pool=PoolSettings(size=pool_size, seed=seed),
                             keypoints=KeypointSettings(names=list(keypoints or [])), photos=photos).validate()
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / CONFIG_NAME, render_config(config))
    ws = Workspace(root, config)
    ws.annotations_dir.mkdir(parents=True, exist_ok=True)
    write_labels_file(ws.annotations_dir / "labels.txt", config.classes, config.keypoints.names)
    atomic_write_text(ws.annotations_dir / "README.md", ANNOTATIONS_README)
    store = AnnotationStore(ws.annotations_dir)
    store.save()
    folder = ws.round_dir(0)
    if config.photo_pool:
        first, rule, why = first_photo_item(ws, generator, progress), FIRST_PHOTO_RULE, "photo nearest the mean feature"
    else:
        progress("pool latents", 0, pool_size)
        ws.pool_latents(generator.z_dim)
        progress("pool latents", pool_size, pool_size)
        first, why = mean_latent_item(generator), "mean latent"
        rule = "The paper's first image to annotate: the mean latent (no interpreter yet, so no pre-fill)."
    export_round(folder, 0, generator, [first], config.classes, keep=1, rule=rule,
                 selection={"annotation_set": store.set_hash(), "why": why}, progress=progress,
                 keypoints=config.keypoints.names)
    write_round_state(folder, {"round": 0, "stage": "complete", "annotation_set": store.set_hash()})
    return InitResult(ws, folder, generator.identity, sum(generator.feature_channels))
