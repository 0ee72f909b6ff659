"""Training the toy-faces diffusion model (``adm/train.py``) on a tiny 16 px UNet: the DDPM loss falls, a
resumed run ends with bit-equal weights to an uninterrupted one, and the exported weights load as a
guided-diffusion checkpoint (``load_adm_checkpoint``, ``DiffusionFeatures.from_checkpoint``)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from dgan_al.generators.adm.checkpoint import load_adm_checkpoint
from dgan_al.generators.adm.features import alphas_cumprod
from dgan_al.generators.adm.source import DiffusionFeatures
from dgan_al.generators.adm.train import TRAIN_SEED, ADMTrainSettings, ddpm_loss, new_unet, train_adm, training_images
from dgan_al.generators.protocol import sample_latents
from dgan_al.generators.toy_faces.scene import Z_DIM

TINY = ADMTrainSettings(image_size=16, num_channels=32, num_res_blocks=1, channel_mult=(1, 2), attention_resolutions=(8,),
                        steps=40, batch=4, lr=2e-3, warmup=5, n_train=16, checkpoint_every=15, threads=1)


def held_out_loss(model, settings: ADMTrainSettings) -> float:
    """The DDPM loss on 16 training renders x 4 fixed (t, eps) draws: a deterministic yardstick."""
    x0 = training_images(sample_latents(Z_DIM, 16, seed=TRAIN_SEED).numpy(), settings.image_size).repeat(4, 1, 1, 1)
    gen = torch.Generator().manual_seed(123)
    t = torch.randint(settings.diffusion_steps, (len(x0),), generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    abar = torch.from_numpy(alphas_cumprod(settings.noise_schedule, settings.diffusion_steps))
    with torch.no_grad():
        return float(ddpm_loss(model.eval(), x0, t, eps, abar))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("adm") / "run"
    info = train_adm(out, TINY)
    return out, info


def test_training_lowers_the_loss(trained):
    out, info = trained
    before = held_out_loss(new_unet(TINY), TINY)  # the zero-initialised output predicts eps = 0: loss about 1
    model = new_unet(TINY)
    model.load_state_dict(torch.load(out / "checkpoint.pt", weights_only=True)["model"])
    after = held_out_loss(model, TINY)
    assert 0.9 < before < 1.1 and after < 0.7 * before, (before, after)
    assert info["steps"] == TINY.steps and (out / "loss.png").stat().st_size > 1000


def test_a_resumed_run_ends_with_the_same_weights(trained, tmp_path):
    out, _ = trained
    train_adm(tmp_path, replace(TINY, steps=25))  # stops at step 25 (not a checkpoint multiple)
    info = train_adm(tmp_path, TINY, resume=True)
    assert info["steps"] == TINY.steps
    whole = torch.load(out / "checkpoint.pt", weights_only=True)
    parts = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    for key in ("model", "ema"):
        assert whole[key].keys() == parts[key].keys()
        for name, value in whole[key].items():
            assert torch.equal(value, parts[key][name]), (key, name)  # bit-equal
    assert whole["history"] == parts["history"]


def test_exported_weights_load_as_a_guided_diffusion_checkpoint(trained):
    out, _ = trained
    flags = json.loads((out / "adm.pt.json").read_text())
    assert flags["image_size"] == 16 and flags["attention_resolutions"] == "8" and flags["learn_sigma"] is False
    checkpoint, model = load_adm_checkpoint(out / "adm.pt")
    assert checkpoint.unet == TINY.unet_config() and checkpoint.noise_schedule == "linear"
    ema = torch.load(out / "checkpoint.pt", weights_only=True)["ema"]
    assert all(torch.equal(value, ema[name]) for name, value in model.state_dict().items())
    source = DiffusionFeatures.from_checkpoint(out / "adm.pt", steps=(50, 150), blocks=(0, 1, 3), size=32)
    maps = source.features(torch.zeros(2, 32, 32, 3, dtype=torch.uint8))
    assert [tuple(m.shape[1:]) for m in maps] == [(c, *s) for c, s in zip(source.feature_channels, source.feature_sizes)]


def test_the_shipped_toy_weights_load_with_the_gates_features():
    from dgan_al.generators.adm.train import TOY_BLOCKS, TOY_WEIGHTS, toy_diffusion_features

    checkpoint, model = load_adm_checkpoint(TOY_WEIGHTS)
    assert checkpoint.unet == ADMTrainSettings().unet_config() and TOY_WEIGHTS.stat().st_size <= 10_000_000
    source = toy_diffusion_features()
    assert source.resolution == (64, 64) and source.blocks == list(TOY_BLOCKS)
    maps = source.features(torch.full((1, 64, 64, 3), 128, dtype=torch.uint8))
    assert all(torch.isfinite(m).all() for m in maps) and sum(source.feature_channels) == 320
