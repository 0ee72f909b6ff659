"""Small toy-faces workspaces for the tests: the shipped generator, a tiny ensemble and pool."""

import json
import shutil
from pathlib import Path

import pytest

from dgan_al.workflows.init import init_workspace
from dgan_al.workflows.oracle import oracle_annotate
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


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    """A small workspace whose round 000 (the mean image) the oracle annotated and ticked done (import the
    fixture, and ``ws``, into a test module to use them)."""
    root = tmp_path_factory.mktemp("annotated") / "ws"
    oracle_annotate(make_workspace(root, pool_size=8), 0)
    return root


@pytest.fixture
def ws(annotated, tmp_path):
    """A copy of ``annotated`` of the test's own."""
    shutil.copytree(annotated, tmp_path / "ws")
    return Workspace.find(tmp_path / "ws")


def mean_json(ws: Workspace) -> Path:
    return ws.round_files(0).annotate / "mean.json"


def edit_json(path: Path, change) -> None:
    """Rewrite a JSON file with ``change`` applied to its parsed content."""
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))
