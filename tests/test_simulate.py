"""simulate: a tiny run end to end through the real export / oracle / import path (paired runs share
their start and held-out sets, clicks are recorded), resumption, the generator-free pool scoring against
score_images on random inputs, and bad settings."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dgan_al.cli import app
from dgan_al.geometry import LabelGeometry
from dgan_al.generators.stylegan2 import StyleGAN2Config, random_generator
from dgan_al.interpreter import PixelEnsemble
from dgan_al.labelme import read_labelme
from dgan_al.interpreter.grid import on_grid
from dgan_al.workflows.simulate import SimulateSettings, simulate

runner = CliRunner()
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
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
    settings = SimulateSettings(strategies=("random", "al"), prefill_min_annotations=3, switch_at=3, **TINY)
    result = simulate(out, settings)
    test = result.analysis["test"]
    assert set(test["curves"]) == {"random", "al"}
    for strategy, entry in test["curves"].items():
        assert entry["images"] == [1, 3, 5]  # the first image, then 2 per round
        assert all(0.0 <= m <= 1.0 for m in entry["miou"] + result.analysis["val"]["curves"][strategy]["miou"])
        assert entry["clicks_scratch"][0] == entry["clicks_prefill"][0] == entry["clicks_edit"][0] > 0  # round 0: nothing to pre-fill
        assert entry["clicks_scratch"][2] > entry["clicks_scratch"][1] > entry["clicks_scratch"][0]
    assert set(result.analysis["final_class_iou_test"]["al"]) >= {"background", "earring"}
    assert "diff_interval" in test["curves"]["al"] and "savings" in test
    # paired runs: the same round-0 annotations, model evaluation and held-out images
    runs = {s: np.load(out / "runs" / f"r0-{s}.npz") for s in ("random", "al")}
    assert np.array_equal(runs["random"]["test"][0], runs["al"]["test"][0])
    assert runs["random"]["test"].shape[1] == TINY["test_size"] and runs["al"]["val"].shape[1] == TINY["val_size"]
    firsts = {s: (out / "work" / "r0" / s / "annotations" / "mean.json").read_bytes() for s in ("random", "al")}
    assert firsts["random"] == firsts["al"]
    assert test["curves"]["al"]["diff_to_random"][0] == 0.0
    # the real path: the oracle's LabelMe files were written, ticked, imported, and their clicks counted
    al = out / "work" / "r0" / "al"
    selection = json.loads((al / "rounds" / "round_001" / "selection.json").read_text())
    assert selection["strategy"] == "al" and len(selection["items"]) == 4  # 2K candidates, the expert keeps K
    assert selection["band"]["size"] >= 4
    # the gate: round 1's files come from a model trained on 1 image (< 3): empty, so they cost the scratch count
    assert selection["prefill"]["used"] is False and all(item["prefilled_shapes"] == 0 for item in selection["items"])
    second = json.loads((al / "rounds" / "round_002" / "selection.json").read_text())
    assert second["prefill"]["used"] is True and all(item["prefilled_shapes"] > 0 for item in second["items"])
    effect = test["prefill_vs_scratch"]["al"]
    assert [e["round"] for e in effect] == [1, 2] and effect[0]["diff"] == 0 == effect[0]["diff_interval"][0]
    assert effect[1]["diff"] != 0 and effect[0]["edit_diff"] == 0 and effect[1]["edit"] < effect[1]["scratch"] * 2
    naive = test["effort_vs_naive"]
    assert naive["strategies"]["random"]["scratch"]["ratio"] == pytest.approx(1.0)  # the naive way itself
    assert set(naive["strategies"]["al"]) == {"scratch", "prefill", "edit"}
    assert "naive way" in (out / "table.txt").read_text()
    # what each round's pre-fill came from, kept for re-counting it under other settings
    with np.load(al / "rounds" / "round_002" / "prediction.npz") as prediction:
        assert list(prediction["ids"]) == [item["id"] for item in second["items"]]
        assert prediction["labels"].shape == (4, 128, 128) and prediction["js"].shape == (4, 128, 128)
    flags = [read_labelme(al / "rounds" / "round_001" / "annotate" / item["json"], _classes(al)).flags
             for item in selection["items"]]
    assert sum(f["done"] for f in flags) == 2 and sum(f["unrealistic"] for f in flags) == 2
    clicks = json.loads((al / "rounds" / "round_001" / "clicks.json").read_text())
    assert len(clicks["items"]) == 2 and all(v["prefill"] == v["scratch"] == v["edit"] for v in clicks["items"].values())
    index = json.loads((al / "annotations" / "index.json").read_text())
    assert len(index["annotations"]) == 5 and len(index["skipped"]) == 4
    saved = json.loads((out / "simulate.json").read_text())
    assert len(saved["runs"]) == 2 and (out / "simulate.png").stat().st_size > 10_000
    table = (out / "table.txt").read_text()
    assert "random" in table and "savings" in table and "vs random" in table
    # the analysis scripts of benchmarks/ read the finished folder
    for script, args in (("simulate_compare.py", [f"{out}:random", f"{out}:al", "--draws", "50"]),
                         ("simulate_pool.py", [str(out), "--plot", str(tmp_path / "pooled.png")]),
                         ("prefill_gate.py", [str(out), "--gates", "1,3"])):
        done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True)
        if script == "prefill_gate.py":  # this run left round 1 empty: its pre-filled cost is unknown
            assert done.returncode == 2 and "--prefill-min-annotations 1" in done.stderr, done.stderr
        else:
            assert done.returncode == 0 and "al" in done.stdout and "Traceback" not in done.stderr, (script, done.stderr)
    assert (tmp_path / "pooled.png").stat().st_size > 10_000
    # rerun with one more strategy: finished runs are reused, only the new one is computed
    again = simulate(out, SimulateSettings(strategies=("random", "al", "typical-al"), prefill_min_annotations=3,
                                           switch_at=3, **TINY))
    assert again.reused == 2 and set(again.analysis["test"]["curves"]) == {"random", "al", "typical-al"}
    assert again.analysis["test"]["curves"]["random"]["miou"] == test["curves"]["random"]["miou"]
    # typical-al: typical on 1 annotated image (K exported, all kept), al from switch_at = 3 on (2K, the expert keeps K)
    rounds = out / "work" / "r0" / "typical-al" / "rounds"
    first, then = (json.loads((rounds / f"round_00{n}" / "selection.json").read_text()) for n in (1, 2))
    assert first["branch"] == "typical" and len(first["items"]) == 2 and first["typical"]["clusters"] == 3
    assert then["branch"] == "al" and len(then["items"]) == 4 and then["n_annotated"] == 3


def _classes(workspace):
    from dgan_al.workspace.layout import Workspace

    return Workspace.find(workspace).config.classes


def test_bad_settings_exit_2_and_name_the_flags(tmp_path):
    for args, flag in ((["--strategies", "random,smart"], "--strategies"), (["--pool-size", "10"], "--pool-size"),
                       (["--embedding", "pixels"], "--embedding"), (["--score-pixels", "subset:9"], "--score-pixels"),
                       (["--truth", "painted"], "--truth")):
        result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "s"), *args])
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output and flag in result.output, (args, result.output)
    out = tmp_path / "sim"
    out.mkdir()
    (out / "settings.json").write_text(json.dumps({**SimulateSettings().as_dict(), "rounds": 9}))
    result = runner.invoke(app, ["simulate", "--out", str(out)])
    assert result.exit_code == 2 and "other settings" in result.output
    assert "rounds = 9 there, 3 now" in " ".join(result.output.split())  # names what differs


def test_settings_are_keyword_only_with_one_set_of_defaults():
    with pytest.raises(TypeError):
        SimulateSettings(("random",), 2)  # noqa
    quick = SimulateSettings.quick(repeats=1)
    assert quick.repeats == 1 and quick.rounds < SimulateSettings().rounds
    quick.check()
    SimulateSettings().check()
    assert SimulateSettings().repeats >= 6 and SimulateSettings().score_pixels == "auto"


@pytest.mark.slow
def test_prefill_design_recounts_what_the_run_recorded(tmp_path):
    """benchmarks/prefill_design.py re-traces each round's kept prediction: its shipped setting gives exactly the
    edit clicks the oracle recorded, and simulate_pool.py --recount puts re-counted clicks in the analysis."""
    out = tmp_path / "sim"
    simulate(out, SimulateSettings(strategies=("random", "typical"), prefill_min_annotations=1,
                                   **TINY | {"rounds": 2}))
    recount = tmp_path / "recount.json"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "prefill_design.py"), str(out), "--draws", "50",
                           "--retrace", "1px", "--write-recount", str(recount)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "gate  1 1px" in done.stdout and "gate  7 0.5px" in done.stdout and "from scratch" in done.stdout
    saved = json.loads((out / "simulate.json").read_text())
    rounds = json.loads(recount.read_text())["folders"][str(out.resolve())]
    for run in saved["runs"]:
        for point in run["curve"][1:]:
            clicks = rounds[f"r{run['repeat']}/{run['strategy']}/{point['round']}"]["clicks"]
            assert clicks["1px"]["1"] == point["clicks"]["edit"]  # exported at 1 px in every round: gate 1
            assert clicks["1px"]["13"] == point["clicks"]["scratch"]  # below the gate: drawn
            retraced = rounds[f"r{run['repeat']}/{run['strategy']}/{point['round']}"]["retrace"]["1px"]
            assert retraced["1"] == point["clicks"]["prefill"]  # the conservative count re-counts exactly too
    pooled = [subprocess.run([sys.executable, str(BENCHMARKS / "simulate_pool.py"), str(out), *extra],
                             capture_output=True, text=True) for extra in ([], ["--recount", str(recount), "--setting", "1px"],
                                                                           ["--recount", str(recount), "--setting", "2px"])]
    assert all(p.returncode == 0 for p in pooled), [p.stderr for p in pooled]
    assert pooled[0].stdout == pooled[1].stdout and "naive way" in pooled[0].stdout
    assert pooled[2].stdout != pooled[0].stdout  # another pre-fill, other edit clicks
    compared = subprocess.run([sys.executable, str(BENCHMARKS / "simulate_compare.py"), f"{out}:random", f"{out}:typical",
                               "--recount", str(recount), "--setting", "2px", "--gate", "1", "--draws", "50"],
                              capture_output=True, text=True)
    assert compared.returncode == 0 and "clicks_edit" in compared.stdout, compared.stderr
    gates = subprocess.run([sys.executable, str(BENCHMARKS / "prefill_gate.py"), str(out), "--gates", "1,3"],
                           capture_output=True, text=True)
    assert gates.returncode == 0 and "edit" in gates.stdout and "naive way" in gates.stdout, gates.stderr
    refused = subprocess.run([sys.executable, str(BENCHMARKS / "simulate_pool.py"), str(out), "--recount", str(recount),
                              "--setting", "tol9"], capture_output=True, text=True)
    assert refused.returncode == 2 and "--setting must be one of" in refused.stderr
