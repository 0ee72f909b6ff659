"""ddpm-segmentation's features from a tiny random ADM UNet against a plain reference written here:
q_sample by its formula, a full forward pass, and forward hooks on ``output_blocks`` (as their
FeatureExtractorDDPM collects them)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dgan_al.generators.adm import (
    DEFAULT_BLOCKS,
    DEFAULT_STEPS,
    UNetConfig,
    UNetModel,
    alphas_cumprod,
    beta_schedule,
    extract_features,
    fixed_noise,
)


@pytest.fixture(scope="module")
def model() -> UNetModel:
    torch.manual_seed(0)
    net = UNetModel(UNetConfig(image_size=32, num_channels=32, num_res_blocks=1, channel_mult=(1, 2),
                               attention_resolutions=(16,), num_head_channels=32, use_scale_shift_norm=True))
    for p in net.parameters():  # upstream zero-initialises some convs; random everywhere tests more
        torch.nn.init.normal_(p, std=0.05)
    return net.eval()


def reference_features(net, images, steps, blocks, noise, betas, rescale=False):
    """Their loop: for t: x_t = q_sample(x0, t, noise); model(x_t, t); hooked block outputs in module order."""
    abar = np.cumprod(1.0 - betas)
    saved = {}
    hooks = [net.output_blocks[i].register_forward_hook(lambda mod, inp, out, i=i: saved.__setitem__(i, out))
             for i in blocks]
    out = []
    try:
        with torch.no_grad():
            for t in steps:
                x_t = (torch.tensor(np.sqrt(abar[t])).float() * images
                       + torch.tensor(np.sqrt(1.0 - abar[t])).float() * noise)
                ts = torch.tensor([t] * images.shape[0])
                net(x_t, ts.float() * (1000.0 / len(betas)) if rescale else ts)
                out += [saved[i].float() for i in sorted(blocks)]
    finally:
        for h in hooks:
            h.remove()
    return out


def test_linear_and_cosine_schedules_as_guided_diffusion_defines_them():
    linear = beta_schedule("linear", 1000)
    assert linear[0] == pytest.approx(1e-4) and linear[-1] == pytest.approx(0.02) and len(linear) == 1000
    assert beta_schedule("linear", 250)[0] == pytest.approx(4e-4)  # both ends scaled by 1000 / steps
    cosine = beta_schedule("cosine", 100)
    f = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert cosine[10] == pytest.approx(1 - f(11 / 100) / f(10 / 100), rel=1e-12)
    assert cosine[-1] == 0.999  # capped
    assert alphas_cumprod("linear", 1000)[0] == pytest.approx(1 - 1e-4)
    with pytest.raises(ValueError, match="unknown noise schedule"):
        beta_schedule("sqrt", 10)


@pytest.mark.parametrize("schedule,rescale,diffusion_steps", [("linear", False, 1000), ("cosine", True, 500)])
def test_features_equal_plain_reference(model, schedule, rescale, diffusion_steps):
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    noise = fixed_noise(0, 32)
    steps, blocks = [50, 10, 350], [3, 0, 1]
    ours = extract_features(model, images, steps, blocks, noise, noise_schedule=schedule,
                            diffusion_steps=diffusion_steps, rescale_timesteps=rescale)
    ref = reference_features(model, images, steps, blocks, noise, beta_schedule(schedule, diffusion_steps), rescale)
    assert len(ours) == len(steps) * len(blocks)
    shapes = model.output_block_shapes()
    for k, (a, b) in enumerate(zip(ours, ref)):
        channels, side = shapes[sorted(blocks)[k % len(blocks)]]
        assert a.dtype == torch.float32 and a.shape == (2, channels, side, side)
        assert torch.allclose(a, b, atol=1e-6), k


def test_fixed_noise_gives_identical_features_twice(model):
    images = torch.rand(1, 3, 32, 32) * 2 - 1
    first = extract_features(model, images, [50, 150], [1, 2], fixed_noise(7, 32))
    second = extract_features(model, images, [50, 150], [1, 2], fixed_noise(7, 32))
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    other = extract_features(model, images, [50, 150], [1, 2], fixed_noise(8, 32))
    assert not torch.allclose(first[0], other[0])


def test_one_noise_is_shared_across_the_batch(model):
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    noise = fixed_noise(0, 32)
    batched = extract_features(model, images, [100], [2], noise)
    alone = extract_features(model, images[1:2], [100], [2], noise)
    assert torch.allclose(batched[0][1:2], alone[0], atol=1e-5)
    expanded = extract_features(model, images, [100], [2], noise.expand(3, -1, -1, -1))
    assert torch.equal(batched[0], expanded[0])


def test_bad_arguments_are_refused(model):
    images = torch.zeros(1, 3, 32, 32)
    with pytest.raises(ValueError, match="noise"):
        extract_features(model, images, [10], [1], torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="repeat"):
        extract_features(model, images, [10], [1, 1], fixed_noise(0, 32))
    with pytest.raises(ValueError, match="blocks"):
        extract_features(model, images, [10], [4], fixed_noise(0, 32))
    with pytest.raises(ValueError, match="outside"):
        extract_features(model, images, [1000], [1], fixed_noise(0, 32))


def test_default_blocks_give_ddpm_segmentations_8448_channels_at_256_px():
    with torch.device("meta"):  # shapes only: the FFHQ-256 ADM of ddpm-segmentation's MODEL_FLAGS
        net = UNetModel(UNetConfig(image_size=256, num_channels=256, num_res_blocks=2, channel_mult=(1, 1, 2, 2, 4, 4),
                                   attention_resolutions=(32, 16, 8), num_head_channels=64, learn_sigma=True,
                                   use_scale_shift_norm=True, resblock_updown=True))
    shapes = net.output_block_shapes()
    assert [shapes[b] for b in DEFAULT_BLOCKS] == [(1024, 32), (512, 32), (512, 32), (512, 64), (256, 128)]
    assert len(DEFAULT_STEPS) * sum(shapes[b][0] for b in DEFAULT_BLOCKS) == 8448
