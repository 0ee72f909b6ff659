"""simulate: a tiny run end to end through the real export / oracle / import path, resumption, the
generator-free pool scoring against score_images on random inputs, and bad settings."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dgan_al.cli import app
from dgan_al.geometry import LabelGeometry
from dgan_al.generators.stylegan2 import StyleGAN2Config, random_generator
from dgan_al.interpreter import PixelEnsemble
from dgan_al.labelme import read_labelme
from dgan_al.workflows.simulate import SimulateSettings, on_grid, simulate

runner = CliRunner()
TINY = dict(rounds=2, per_round=2, repeats=1, pool_size=60, val_size=4, test_size=6, members=2, epochs=1,
            pixels_per_image=128, eval_pixels="grid:4")


@pytest.mark.parametrize("step", [4, 8])
def test_grid_maps_score_like_score_images(step):
    """Scoring the pool from maps pre-sampled at the grid equals score_images on the native maps."""
    config = StyleGAN2Config(resolution=32, z_dim=16, w_dim=16, mapping_layers=2, channels=(16, 12, 8, 8))
    generator = random_generator(config, seed=3)
    z = torch.randn(5, 16, generator=torch.Generator().manual_seed(step))
    features = generator.synthesize(z).features
    rng = np.random.default_rng(step)
    masks = [rng.integers(0, 3, (32, 32), dtype=np.uint8) for _ in range(3)]
    train = [([f[i] for f in generator.synthesize(torch.randn(3, 16)).features], masks[i]) for i in range(3)]
    ensemble = PixelEnsemble(generator.feature_channels, ["a", "b", "c"], n_members=3, max_epochs=1,
                             pixels_per_image=64, seed=0)
    ensemble.fit(train, generator.geometry)
    pixels = f"grid:{step}"
    direct = ensemble.score_images(features, pixels=pixels)
    maps = on_grid(features, generator.geometry, pixels)
    n = 32 // step
    gridded = ensemble.score_images(maps, geometry=LabelGeometry.full(n, n), pixels="full")
    # JS = H(mean) - mean(H) cancels in float32: ~1e-7 nats per pixel, times the 1024 pixels it stands for
    assert torch.allclose(gridded.image_score * (32 * 32) / (n * n), direct.image_score, rtol=1e-4, atol=1e-4 * 1024 / 64)
    assert torch.allclose(gridded.embedding, direct.embedding, rtol=1e-4, atol=1e-5)
    assert torch.equal(gridded.labels, direct.labels)


@pytest.mark.slow
def test_tiny_simulation_end_to_end_and_resume(tmp_path):
    out = tmp_path / "sim"
    settings = SimulateSettings(strategies=("random", "al"), **TINY)
    result = simulate(out, settings)
    assert set(result.summary) == {"random", "al"}
    for strategy, entry in result.summary.items():
        assert entry["n_annotations"] == [1, 3, 5]  # the mean image, then 2 per round
        assert all(0.0 <= m <= 1.0 for m in entry["test_mean"] + entry["val_mean"])
        assert set(entry["final_class_iou_test"]) >= {"background", "earring"}
    # both start from the same round-0 model
    assert result.summary["random"]["test_mean"][0] == result.summary["al"]["test_mean"][0]
    # the real path: the oracle's LabelMe files were written, ticked and imported
    al = out / "work" / "r0" / "al"
    selection = json.loads((al / "rounds" / "round_001" / "selection.json").read_text())
    assert selection["strategy"] == "al" and len(selection["items"]) == 4  # 2K candidates, the expert keeps K
    flags = [read_labelme(al / "rounds" / "round_001" / "annotate" / item["json"], _classes(al)).flags for item in selection["items"]]
    assert sum(f["done"] for f in flags) == 2 and sum(f["unrealistic"] for f in flags) == 2
    index = json.loads((al / "annotations" / "index.json").read_text())
    assert len(index["annotations"]) == 5 and len(index["skipped"]) == 4
    saved = json.loads((out / "simulate.json").read_text())
    assert len(saved["runs"]) == 2 and (out / "simulate.png").stat().st_size > 10_000
    assert "random" in (out / "table.txt").read_text()
    # rerun with one more strategy: finished runs are reused, only the new one is computed
    again = simulate(out, SimulateSettings(strategies=("random", "al", "uncertainty"), **TINY))
    assert again.reused == 2 and set(again.summary) == {"random", "al", "uncertainty"}
    assert again.summary["random"] == result.summary["random"]


def _classes(workspace):
    from dgan_al.workspace.layout import Workspace

    return Workspace.find(workspace).config.classes


def test_bad_settings_exit_2(tmp_path):
    for args in (["--strategies", "random,smart"], ["--pool-size", "10"], ["--embedding", "pixels"],
                 ["--score-pixels", "full"]):
        result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "s"), *args])
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
    out = tmp_path / "sim"
    out.mkdir()
    (out / "settings.json").write_text(json.dumps({**SimulateSettings().__dict__, "rounds": 9,
                                                   "strategies": ["random"]}))
    result = runner.invoke(app, ["simulate", "--out", str(out)])
    assert result.exit_code == 2 and "other settings" in result.output
