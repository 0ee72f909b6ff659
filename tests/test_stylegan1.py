"""StyleGAN1 (datasetGAN_release's backbone): its *.for_g_all.pt files load, and images and feature taps
match a reference written from the upstream equations."""

import copy

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dgan_al.cli import app
from dgan_al.errors import UserError
from dgan_al.generators import Generator, load_generator
from dgan_al.generators.checkpoints import detect_format
from stylegan1_formats import (
    random_release_state,
    reference_forward,
    reference_mapping,
    reference_truncate,
    release_uint8,
)

runner = CliRunner()


def write_release_checkpoint(path, sd):
    """As the release ships them: the g_all state dict, torch 1.x legacy (non-zip) serialisation."""
    torch.save(sd, path, _use_new_zipfile_serialization=False)


def noise_maps(gen):
    return [e.noise for b in gen.model.blocks for e in (b.epi0, b.epi1)]


def check_against_reference(gen, sd, avg, psi, max_layer, n=2):
    """Our network equals the reference: in float64 to max abs diff <= 1e-4 (the equations), and our float32
    pipeline to float32 rounding (relative 1e-4) with uint8 images within 1 of the release's quantisation."""
    z = gen.sample_latents(n, seed=4)
    sd64 = {k: v.double() for k, v in sd.items()}
    ws = reference_truncate(reference_mapping(sd64, z.double()), avg.double(), gen.config.num_ws, psi, max_layer)
    img, taps = reference_forward(sd64, ws, [m.double() for m in noise_maps(gen)])
    model64 = copy.deepcopy(gen.model).double()
    img64, taps64 = model64.synthesis(model64.map(z.double(), psi))
    assert float((img64 - img).abs().max()) <= 1e-4
    assert max(float((a - b).abs().max()) for a, b in zip(taps64, taps)) <= 1e-4
    out = gen.synthesize(z)
    assert [tuple(t.shape[1:]) for t in out.features] == [tuple(t.shape[1:]) for t in taps]
    for ours, ref in zip(out.features, taps):
        assert float((ours.double() - ref).abs().max()) <= 1e-4 * max(1.0, float(ref.abs().max()))
    canvas = gen.geometry.canvas[0]
    if canvas != gen.config.resolution:  # the release's Interpolate(512, 'bilinear') on the float image
        img = torch.nn.functional.interpolate(img, size=(canvas, canvas), mode="bilinear", align_corners=False)
    top, left, h, w = gen.geometry.crop
    ref_u8 = release_uint8(img.float())[:, top:top + h, left:left + w]
    assert int(np.abs(out.images.numpy().astype(int) - ref_u8.astype(int)).max()) <= 1
    return out, img


def test_release_checkpoint_128px_matches_the_reference(tmp_path):
    """128 px covers both up-convs: nearest + conv up to 64 px, the fused transposed conv at 128."""
    sd = random_release_state(128, fmap_base=256, fmap_max=32, seed=1)
    path = tmp_path / "karras2019stylegan-cats-128.for_g_all.pt"
    write_release_checkpoint(path, sd)
    assert detect_format(path) == "torch-legacy"
    avg = torch.randn(18, 512)
    np.save(tmp_path / "avg_latent_stylegan1.npy", avg.numpy())
    gen = load_generator(str(path), truncation_psi=0.7)
    assert isinstance(gen, Generator)
    assert gen.config.resolution == 128 and gen.config.channels == (32, 32, 32, 16, 8, 4)
    assert torch.equal(gen.model.w_avg, avg[:12])
    assert gen.describe()["average w (w_avg)"] == "from avg_latent_stylegan1.npy"
    out, _ = check_against_reference(gen, sd, avg, 0.7, max_layer=7)
    assert gen.map(gen.sample_latents(2, seed=4)).shape == (2, 512)
    # fixed noise: the same latent gives the same pixels, alone or in a batch (up to float rounding)
    again = gen.synthesize(gen.sample_latents(2, seed=4)[1:])
    assert int((again.images[0].int() - out.images[1].int()).abs().max()) <= 1
    assert torch.allclose(again.features[-1][0], out.features[-1][1], atol=1e-4)


@pytest.mark.slow
def test_release_checkpoint_1024px_light_labelled_at_512(tmp_path):
    """The face setting: 1024 px (reduced channels), images and features resized to 512 as the release does."""
    sd = random_release_state(1024, fmap_base=1024, fmap_max=8, seed=2)
    path = tmp_path / "karras2019stylegan-celebahq-1024x1024.for_g_all.pt"
    write_release_checkpoint(path, sd)
    avg = torch.randn(512)[None].expand(18, -1).contiguous()
    np.save(tmp_path / f"{path.name}.avg_latent.npy", avg.numpy())
    gen = load_generator(str(path), truncation_psi=0.7, label_resolution=512)
    assert gen.config.num_ws == 18 and gen.geometry.canvas == (512, 512) and gen.resolution == (512, 512)
    check_against_reference(gen, sd, avg, 0.7, max_layer=8, n=1)


def test_cars_crop_and_user_noise(tmp_path):
    sd = random_release_state(128, fmap_base=256, fmap_max=32, seed=3)
    path = tmp_path / "cars.for_g_all.pt"
    write_release_checkpoint(path, sd)
    gen = load_generator(str(path), truncation_psi=1.0, crop=(16, 0, 96, 128))  # 64:448 of 512, scaled
    assert gen.resolution == (96, 128)
    assert "estimated from 10,000" in gen.describe()["average w (w_avg)"]
    first = gen.synthesize(gen.sample_latents(1, seed=0)).images
    gen.model.set_noise([torch.zeros_like(n) for n in noise_maps(gen)])
    avg = gen.model.w_avg.clone()
    check_against_reference(gen, sd, avg, 1.0, max_layer=7, n=1)
    assert not torch.equal(gen.synthesize(gen.sample_latents(1, seed=0)).images, first)


@pytest.mark.slow
@pytest.mark.parametrize("resolution,width", [(256, 4992), (1024, 5088)])
def test_release_feature_widths(tmp_path, resolution, width):
    path = tmp_path / f"g{resolution}.for_g_all.pt"
    write_release_checkpoint(path, random_release_state(resolution, zeros=True))
    np.save(tmp_path / "avg_latent_stylegan1.npy", np.zeros((18, 512), np.float32))
    gen = load_generator(str(path))
    assert sum(gen.feature_channels) == width
    result = runner.invoke(app, ["inspect-generator", str(path)])
    assert result.exit_code == 0, result.output
    for text in ("StyleGAN1", str(resolution), str(width), "mapping layers", "channels per resolution"):
        assert text in result.output


def test_ws_latents_and_bad_inputs(tmp_path):
    sd = random_release_state(64, fmap_base=128, fmap_max=16, seed=5)
    path = tmp_path / "g.for_g_all.pt"
    write_release_checkpoint(path, sd)
    np.save(tmp_path / "avg_latent_stylegan1.npy", np.full((18, 512), 0.1, np.float32))
    gen = load_generator(str(path), truncation_psi=0.7)
    z = gen.sample_latents(2, seed=1)
    assert torch.equal(gen.synthesize_ws(gen.map_ws(z)).images, gen.synthesize(z).images)
    assert torch.equal(gen.synthesize(gen.map_ws(z)).images, gen.synthesize(z).images)  # w+ taken as given
    assert torch.equal(gen.map(gen.map_ws(z)), gen.map(z))
    with pytest.raises(ValueError, match="w\\+ \\[B, 10, 512\\]"):
        gen.synthesize(torch.zeros(2, 11, 512))
    np.save(tmp_path / "avg_latent_stylegan1.npy", np.zeros((3, 7), np.float32))
    with pytest.raises(UserError, match="average latent"):
        load_generator(str(path))
    broken = dict(sd)
    del broken["g_synthesis.blocks.8x8.conv1.weight"]
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(UserError, match="StyleGAN1"):
        load_generator(str(tmp_path / "broken.pt"))


def test_zip_serialised_and_data_parallel_state_dicts(tmp_path):
    """The same g_all state dict saved by a newer torch (zip), or from g_all wrapped in DataParallel
    (the release's scripts wrap it: keys under ``module.``), loads to the same generator."""
    sd = random_release_state(32, fmap_base=64, fmap_max=8, seed=6)
    write_release_checkpoint(tmp_path / "legacy.pt", sd)
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "parallel.pt")
    np.save(tmp_path / "avg_latent_stylegan1.npy", np.zeros((18, 512), np.float32))
    a, b = load_generator(str(tmp_path / "legacy.pt")), load_generator(str(tmp_path / "parallel.pt"))
    assert detect_format(tmp_path / "parallel.pt") == "torch-zip"
    z = a.sample_latents(2, seed=0)
    assert torch.equal(a.synthesize(z).images, b.synthesize(z).images)
