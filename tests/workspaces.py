"""Small toy-faces workspaces for the tests: the shipped generator, a tiny ensemble and pool."""

from pathlib import Path

from dgan_al.workflows.init import init_workspace
from dgan_al.workspace.config import CONFIG_NAME, load_config, render_config
from dgan_al.workspace.layout import Workspace

# a tiny ensemble, pool chunks and round, so that a whole loop runs in seconds
SMALL = {"ensemble.members": 2, "ensemble.epochs": 1, "ensemble.pixels_per_image": 256, "run.chunk": 16,
         "selection.centers": 4, "selection.annotate": 2, "selection.score_pixels": "grid:2",
         "run.prefill_min_annotations": 1}  # pre-fill from round 1, so that every test sees pre-filled files


def make_workspace(path: Path, pool_size: int = 48, settings: dict | None = None) -> Workspace:
    """A toy-faces workspace made by ``init``, its config set to SMALL and ``settings`` ("section.key": value)."""
    init_workspace(path, pool_size=pool_size)
    config = load_config(path / CONFIG_NAME)
    for key, value in {**SMALL, **(settings or {})}.items():
        section, name = key.split(".")
        assert hasattr(getattr(config, section), name), key
        setattr(getattr(config, section), name, value)
    (path / CONFIG_NAME).write_text(render_config(config.validate()))
    return Workspace.find(path)


def snapshot(*folders: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def after_first_round(path: Path, pool_size: int = 48) -> Workspace:
    """A small workspace after init -> the oracle annotates round 000 -> next-round (round 001 exported)."""
    from dgan_al.workflows.next_round import next_round
    from dgan_al.workflows.oracle import oracle_annotate

    ws = make_workspace(path, pool_size=pool_size)
    oracle_annotate(ws, 0)
    next_round(Workspace.find(path))
    return Workspace.find(path)
