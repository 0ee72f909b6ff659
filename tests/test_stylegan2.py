"""The clean-room StyleGAN2: equations against a plain reference, determinism, truncation, feature taps."""

import math

import pytest
import torch

from dgan_al.generators.checkpoints import rosinality_to_ours
from dgan_al.generators.protocol import sample_latents
from dgan_al.generators.stylegan2 import StyleGAN2, StyleGAN2Config, random_generator
from stylegan2_formats import random_rosinality_state, reference_forward, reference_mapping

SMALL = dict(size=32, style_dim=16, n_mlp=2, channels={4: 24, 8: 16, 16: 12, 32: 8})


def model_from_rosinality(sd):
    config, ours = rosinality_to_ours(sd)
    model = StyleGAN2(config)
    missing = set(model.state_dict()) - set(ours) - {"mapping.w_avg"}
    assert not missing
    model.load_state_dict(ours, strict=False)
    return model.eval()


def test_forward_matches_plain_reference_with_per_layer_styles():
    sd = random_rosinality_state(**SMALL, seed=1)
    model = model_from_rosinality(sd)
    ws = torch.randn(3, model.config.num_ws, 16)  # a different w for every layer checks the w indexing
    with torch.no_grad():
        img, feats = model.synthesis(ws)
        ref_img, ref_feats = reference_forward(sd, ws, 32)
    assert img.shape == ref_img.shape == (3, 3, 32, 32)
    scale = ref_img.abs().max()
    assert (img - ref_img).abs().max() <= 1e-4 * scale
    assert len(feats) == len(ref_feats) == 8
    for ours, ref in zip(feats, ref_feats):
        ref = ref.expand_as(ours)
        assert ours.shape == ref.shape
        assert (ours - ref).abs().max() <= 1e-4 * (ref.abs().max() + 1e-6)


def test_mapping_matches_reference_and_truncation_moves_towards_w_avg():
    sd = random_rosinality_state(**SMALL, seed=2)
    model = model_from_rosinality(sd)
    z = torch.randn(5, 16)
    with torch.no_grad():
        w = model.map(z)
        assert torch.allclose(w, reference_mapping(sd, z, 2), rtol=1e-4, atol=1e-5)
        model.mapping.w_avg.copy_(torch.randn(16))
        w_half = model.map(z, psi=0.5)
        w_zero = model.map(z, psi=0.0)
    assert torch.allclose(w_half, model.mapping.w_avg + 0.5 * (w - model.mapping.w_avg), atol=1e-5)
    assert torch.allclose(w_zero, model.mapping.w_avg.expand_as(w), atol=1e-6)


def test_same_latent_same_output_whatever_the_batch():
    gen = random_generator(StyleGAN2Config(resolution=32, z_dim=16, w_dim=16, mapping_layers=2,
                                           channels=(32, 32, 16, 16)), seed=3)
    z = gen.sample_latents(6, seed=11)
    full = gen.synthesize(z)
    alone = gen.synthesize(z[4:5])
    mixed = gen.synthesize(torch.cat([z[4:5], gen.sample_latents(3, seed=99)]))
    for other in (alone, mixed):
        for a, b in zip(full.features, other.features):
            assert torch.allclose(a[4], b[0], rtol=1e-5, atol=1e-5 * float(a[4].abs().max()))
        assert (full.images[4].int() - other.images[0].int()).abs().max() <= 1
    again = gen.synthesize(z)  # and twice in a row: no RNG anywhere
    assert all(torch.equal(a, b) for a, b in zip(full.features, again.features))
    assert torch.equal(full.images, again.images)


def test_pool_latents_extend_and_never_reshuffle():
    small = sample_latents(8, 5, seed=7)
    large = sample_latents(8, 20, seed=7)
    tail = sample_latents(8, 5, seed=7, start=15)
    assert torch.equal(small, large[:5])
    assert torch.equal(tail, large[15:])
    assert not torch.equal(small, sample_latents(8, 5, seed=8))
    assert abs(float(large.std()) - 1.0) < 0.3


@pytest.mark.parametrize("resolution,width", [(32, 4096), (64, 5120), (256, 5888), (512, 6016)])
def test_config_f_feature_widths(resolution, width):
    config = StyleGAN2Config.config_f(resolution)
    assert sum(config.feature_channels()) == width
    assert len(config.feature_channels()) == 2 * int(math.log2(resolution)) - 2


@pytest.mark.parametrize("resolution", [32, 64, 256])
def test_feature_shapes_at_native_resolution(resolution):
    config = StyleGAN2Config.config_f(resolution) if resolution < 256 else StyleGAN2Config(
        resolution=256, z_dim=32, w_dim=32, mapping_layers=2, channels=(16, 16, 16, 16, 8, 8, 8))
    gen = random_generator(config)
    out = gen.synthesize(gen.sample_latents(1, seed=0))
    assert out.images.shape == (1, resolution, resolution, 3) and out.images.dtype == torch.uint8
    shapes = [tuple(f.shape[1:]) for f in out.features]
    expected = [(c, r, r) for c, r in zip(config.feature_channels(), config.feature_resolutions())]
    assert shapes == expected
    assert gen.feature_channels == config.feature_channels()
    assert gen.feature_sizes == [(r, r) for r in config.feature_resolutions()]


def test_crop_and_label_resolution_window():
    from dgan_al.generators.stylegan2 import OutputWindow

    config = StyleGAN2Config(resolution=64, z_dim=16, w_dim=16, mapping_layers=2, channels=(16, 16, 8, 8, 8))
    full = random_generator(config, seed=5)
    cropped = random_generator(config, seed=5, window=OutputWindow(label_resolution=32, crop=(4, 0, 24, 32)))
    z = full.sample_latents(2, seed=1)
    a, b = full.synthesize(z), cropped.synthesize(z)
    assert b.images.shape == (2, 24, 32, 3)
    assert cropped.geometry.canvas == (32, 32) and cropped.geometry.crop == (4, 0, 24, 32)
    assert [f.shape for f in a.features] == [f.shape for f in b.features]  # maps stay native
    # the labelled image is the resized output, cropped
    import torch.nn.functional as F

    img = a.images.permute(0, 3, 1, 2).float()
    resized = F.interpolate(img, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    assert (resized[:, :, 4:28].permute(0, 2, 3, 1) - b.images.float()).abs().max() <= 2.0
    with pytest.raises(ValueError):
        random_generator(config, window=OutputWindow(crop=(40, 0, 40, 64)))


def test_mean_latent_is_the_sample_nearest_the_mean_w():
    gen = random_generator(StyleGAN2Config(resolution=8, z_dim=8, w_dim=8, mapping_layers=2, channels=(8, 8)))
    z = gen.mean_latent()
    assert z.shape == (8,)
    pool = gen.sample_latents(10_000, seed=0)
    with torch.no_grad():
        d = (gen.model.map(pool) - gen.model.mapping.w_avg).norm(dim=1)
        assert float((gen.model.map(z[None]) - gen.model.mapping.w_avg).norm()) == pytest.approx(float(d.min()), rel=1e-5)


def test_w_plus_latents_are_synthesised_as_given():
    """w+ [B, num_ws, w_dim] goes to the synthesis untruncated; z is mapped and truncated; map(w+) is row 0."""
    config = StyleGAN2Config(resolution=16, z_dim=8, w_dim=8, mapping_layers=2, channels=(8, 8, 8))
    gen = random_generator(config, truncation_psi=0.5)
    z = gen.sample_latents(3, seed=1)
    ws = gen.map_ws(z)
    assert ws.shape == (3, config.num_ws, 8) and gen.w_plus_shape == (config.num_ws, 8)
    via_z, via_w = gen.synthesize(z), gen.synthesize(ws)  # map_ws gives the truncated w the synthesis of z sees
    assert torch.equal(via_z.images, via_w.images)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(via_z.features, via_w.features))
    mixed = ws.clone()
    mixed[:, -1] = gen.map_ws(gen.sample_latents(3, seed=2))[:, -1]  # another w in the last layer only
    assert not torch.equal(gen.synthesize(mixed).images, via_w.images)
    assert torch.equal(gen.map(mixed), ws[:, 0])
    with pytest.raises(ValueError, match="w\\+"):
        gen.synthesize(torch.zeros(1, config.num_ws + 1, 8))


def test_toy_faces_takes_z_only():
    from dgan_al.generators.toy_faces import load_toy_faces

    gen = load_toy_faces()
    assert gen.w_plus_shape is None
    with pytest.raises(ValueError, match="latents must be z"):
        gen.synthesize(torch.zeros(1, gen.config.num_ws, gen.config.w_dim))
