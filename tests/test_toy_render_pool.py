"""``dgan-al toy renders``: a photo pool of toy-faces renders, through the real CLI, and ``render_truth``, the
oracle that re-renders a file's exact mask and refuses a file whose pixels were changed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dgan_al.cli import app
from dgan_al.errors import UserError
from dgan_al.generators.protocol import sample_latents
from dgan_al.generators.toy_faces.keypoints import KEYPOINTS, latent_keypoints
from dgan_al.generators.toy_faces.render import render_latents
from dgan_al.generators.toy_faces.render_pool import render_truth
from dgan_al.generators.toy_faces.scene import Z_DIM

runner = CliRunner()
N, SEED = 5, 42


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos") / "renders"
    result = runner.invoke(app, ["toy", "renders", str(folder), "--n", str(N), "--seed", str(SEED)])
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(scope="module")
def truth():
    z = sample_latents(Z_DIM, N, seed=SEED).numpy()
    images, masks = render_latents(z)
    return z, images, masks


def test_renders_are_pngs_equal_to_the_renderer_with_their_record(pool, truth):
    _, images, _ = truth
    names = [f"render_{i:05d}.png" for i in range(N)]
    assert sorted(p.name for p in pool.glob("*.png")) == names
    record = json.loads((pool / "toy-renders.json").read_text())
    assert record == {"seed": SEED, "files": {name: i for i, name in enumerate(names)}, "generator": "toy-faces renderer"}
    for i, name in enumerate(names):
        with Image.open(pool / name) as im:
            assert im.format == "PNG" and im.mode == "RGB" and im.size == (128, 128)
            assert np.array_equal(np.asarray(im), images[i])


def test_render_truth_is_the_exact_mask_and_keypoints(pool, truth):
    z, _, masks = truth
    for i in (0, N - 1):
        mask, points = render_truth(pool, f"render_{i:05d}.png")
        assert mask.dtype == np.uint8 and mask.shape == (128, 128)
        assert np.array_equal(mask, masks[i])
        assert points.shape == (len(KEYPOINTS), 3)
        assert np.array_equal(points, latent_keypoints(z[i:i + 1], "renderer")[0])
    with pytest.raises(UserError, match="not one of the renders"):
        render_truth(pool, "render_99999.png")


def test_an_occupied_folder_is_refused_with_exit_code_2(pool):
    before = {p.name: p.stat().st_mtime_ns for p in pool.iterdir()}
    result = runner.invoke(app, ["toy", "renders", str(pool), "--n", "2"])
    assert result.exit_code == 2, result.output
    assert "already holds PNG files" in result.output and "Traceback" not in result.output
    assert {p.name: p.stat().st_mtime_ns for p in pool.iterdir()} == before


def test_a_tampered_render_is_detected(tmp_path, truth):
    folder = tmp_path / "pool"
    assert runner.invoke(app, ["toy", "renders", str(folder), "--n", "2", "--seed", str(SEED)]).exit_code == 0
    _, images, _ = truth
    changed = images[1].copy()
    changed[60, 60] ^= 1  # one channel of one pixel, off by one
    Image.fromarray(changed).save(folder / "render_00001.png")
    with pytest.raises(UserError, match="pixels differ"):
        render_truth(folder, "render_00001.png")
    (folder / "render_00000.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="cannot be read"):
        render_truth(folder, "render_00000.png")
    (folder / "toy-renders.json").unlink()
    with pytest.raises(UserError, match="not a folder of toy renders"):
        render_truth(folder, "render_00001.png")
