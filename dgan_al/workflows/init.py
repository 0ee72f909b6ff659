"""``init_workspace``: a new workspace with its settings, pool and round 0 (the mean-latent image)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dgan_al.errors import UserError
from dgan_al.files import atomic_write_text
from dgan_al.labelme import write_labels_file
from dgan_al.progress import ProgressCallback, silent
from dgan_al.workflows.export import export_round
from dgan_al.workflows.next_round import mean_latent_item
from dgan_al.workspace.annotations import AnnotationStore
from dgan_al.workspace.config import (
    CONFIG_NAME,
    GeneratorSettings,
    KeypointSettings,
    PoolSettings,
    WorkspaceConfig,
    render_config,
)
from dgan_al.workspace.layout import Workspace
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
                   keypoints: list[str] | None = None) -> InitResult:
    """Make the workspace ``directory``. ``keypoints``: the keypoint names (``[keypoints] names``); with them
    and no ``classes`` a checkpoint generator gets a keypoint-only workspace (classes = the background)."""
    from dgan_al.generators import load_generator

    root = Path(directory).resolve()
    if (root / CONFIG_NAME).exists() or (root / "annotations" / "index.json").exists():
        raise UserError("a dgan-al workspace already exists here; refusing to overwrite it", path=root,
                        fix="choose another folder, or continue this one with `dgan-al next-round`")
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
    spec = generator_spec
    if generator_spec != "toy-faces":
        path = Path(generator_spec).expanduser().resolve()
        spec = str(path.relative_to(root)) if root in path.parents else str(path)
    config = WorkspaceConfig(classes=list(classes),
                             generator=GeneratorSettings(spec=spec, truncation_psi=truncation_psi,
                                                         label_resolution=label_resolution or 0,
                                                         crop=list(crop) if crop else []),
                             pool=PoolSettings(size=pool_size, seed=seed),
                             keypoints=KeypointSettings(names=list(keypoints or []))).validate()
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / CONFIG_NAME, render_config(config))
    ws = Workspace(root, config)
    ws.annotations_dir.mkdir(parents=True, exist_ok=True)
    write_labels_file(ws.annotations_dir / "labels.txt", config.classes, config.keypoints.names)
    atomic_write_text(ws.annotations_dir / "README.md", ANNOTATIONS_README)
    store = AnnotationStore(ws.annotations_dir)
    store.save()
    progress("pool latents", 0, pool_size)
    ws.pool_latents(generator.z_dim)
    progress("pool latents", pool_size, pool_size)
    folder = ws.round_dir(0)
    export_round(folder, 0, generator, [mean_latent_item(generator)], config.classes, keep=1,
                 rule="The paper's first image to annotate: the mean latent (no interpreter yet, so no pre-fill).",
                 selection={"annotation_set": store.set_hash(), "why": "mean latent"}, progress=progress,
                 keypoints=config.keypoints.names)
    write_round_state(folder, {"round": 0, "stage": "complete", "annotation_set": store.set_hash()})
    return InitResult(ws, folder, generator.identity, sum(generator.feature_channels))
