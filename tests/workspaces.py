"""Small toy-faces workspaces for the tests: the shipped generator, a tiny ensemble and pool."""

from pathlib import Path

from dgan_al.workflows.init import init_workspace
from dgan_al.workspace.layout import Workspace

SMALL = {"members = 10": "members = 2", "epochs = 8": "epochs = 1", "pixels_per_image = 2048": "pixels_per_image = 256",
         "chunk = 512": "chunk = 16", "centers = 12": "centers = 4", "annotate = 6": "annotate = 2", 'score_pixels = "auto"': 'score_pixels = "grid:2"'}


def make_workspace(path: Path, pool_size: int = 48, **edits) -> Workspace:
    init_workspace(path, pool_size=pool_size)
    config = path / "dgan-al.toml"
    text = config.read_text()
    for old, new in {**SMALL, **edits}.items():
        assert old in text, old
        text = text.replace(old, new)
    config.write_text(text)
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
