"""``DiffusionFeatures`` on a tiny random ADM UNet: shapes, determinism, identity, the alignment rule
against ddpm-segmentation's upsampling, and a pixel ensemble that learns toy-faces parts from its features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dgan_al.generators.adm import UNetConfig, UNetModel, extract_features, fixed_noise
from dgan_al.generators.adm.source import DiffusionFeatures
from dgan_al.generators.toy_faces.classes import CLASSES
from dgan_al.generators.toy_faces.render import Z_DIM, render_latents
from dgan_al.interpreter import PixelEnsemble
from dgan_al.interpreter.bilinear import gather_features

SIZE = 32
STEPS, BLOCKS = (10, 50), (0, 1, 3)


@pytest.fixture(scope="module")
def model() -> UNetModel:
    torch.manual_seed(0)
    net = UNetModel(UNetConfig(image_size=SIZE, num_channels=32, num_res_blocks=1, channel_mult=(1, 2),
                               attention_resolutions=(16,), num_head_channels=32, use_scale_shift_norm=True))
    for p in net.parameters():  # upstream zero-initialises some convs; random everywhere gives richer features
        torch.nn.init.normal_(p, std=0.05)
    return net.eval()


@pytest.fixture(scope="module")
def source(model) -> DiffusionFeatures:
    return DiffusionFeatures(model, None, steps=STEPS, blocks=BLOCKS, seed=0)


@pytest.fixture(scope="module")
def photos() -> tuple[np.ndarray, np.ndarray]:
    """Six toy-faces renders as 'photos' at the UNet's size: uint8 [6, 32, 32, 3] and exact masks [6, 32, 32]."""
    rgb, mask = render_latents(np.random.default_rng(7).standard_normal((6, Z_DIM)))
    images = np.stack([np.asarray(Image.fromarray(im).resize((SIZE, SIZE), Image.BILINEAR)) for im in rgb])
    masks = np.stack([np.asarray(Image.fromarray(m).resize((SIZE, SIZE), Image.NEAREST)) for m in mask])
    return images, masks


def test_features_match_the_declared_layers_and_repeat_exactly(source, model, photos):
    images, _ = photos
    shapes = model.output_block_shapes()
    assert source.feature_channels == [shapes[b][0] for _ in STEPS for b in BLOCKS]
    assert source.feature_sizes == [(shapes[b][1],) * 2 for _ in STEPS for b in BLOCKS]
    assert source.geometry.size == source.resolution == (SIZE, SIZE)
    assert source.geometry.canvas == (SIZE, SIZE) and source.geometry.crop == (0, 0, SIZE, SIZE)
    maps = source.features(images[:3])
    assert len(maps) == len(STEPS) * len(BLOCKS)
    for fmap, channels, size in zip(maps, source.feature_channels, source.feature_sizes):
        assert fmap.dtype == torch.float32 and tuple(fmap.shape) == (3, channels, *size)
        assert torch.isfinite(fmap).all()
    again = source.features(torch.from_numpy(images[:3]))  # numpy or torch, same result
    assert all(torch.equal(a, b) for a, b in zip(maps, again))
    # the scaling and noise are guided-diffusion's / ddpm-segmentation's
    x0 = torch.from_numpy(images[:3]).permute(0, 3, 1, 2).float() / 127.5 - 1
    direct = extract_features(model, x0, list(STEPS), list(BLOCKS), fixed_noise(0, SIZE))
    assert all(torch.equal(a, b) for a, b in zip(maps, direct))
    with pytest.raises(ValueError, match="uint8"):
        source.features(images[:1].astype(np.float32))
    with pytest.raises(ValueError, match=r"\[B, 32, 32, 3\]"):
        source.features(images[:1, :16])


def test_identity_is_stable_and_names_the_settings(model, source):
    same = DiffusionFeatures(model, None, steps=STEPS, blocks=BLOCKS, seed=0)
    assert same.identity == source.identity and source.identity.startswith("adm-unsaved:")
    others = [DiffusionFeatures(model, None, steps=(10, 60), blocks=BLOCKS, seed=0),
              DiffusionFeatures(model, None, steps=STEPS, blocks=BLOCKS, seed=1),
              DiffusionFeatures(model, None, steps=STEPS, blocks=(0, 3), seed=0)]
    assert len({source.identity, *(o.identity for o in others)}) == 4
    with pytest.raises(ValueError, match="outside"):
        DiffusionFeatures(model, None, steps=(1000,), blocks=BLOCKS)
    with pytest.raises(ValueError, match="blocks"):
        DiffusionFeatures(model, None, steps=STEPS, blocks=(4,))


def test_identity_of_a_checkpoint_file(tmp_path, model):
    path = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), path)
    (tmp_path / "tiny.pt.json").write_text('{"image_size": 32, "num_head_channels": 32, "attention_resolutions": "16"}')
    a = DiffusionFeatures.from_checkpoint(path, steps=STEPS, blocks=BLOCKS)
    b = DiffusionFeatures.from_checkpoint(path, steps=STEPS, blocks=BLOCKS)
    assert a.identity == b.identity and a.identity.startswith("adm:") and a.identity.endswith("|seed0|32px")
    assert DiffusionFeatures.from_checkpoint(path, steps=STEPS, blocks=BLOCKS, seed=3).identity != a.identity
    (tmp_path / "tiny.pt.json").write_text('{"image_size": 32, "num_head_channels": 32, "attention_resolutions": "16",'
                                           ' "noise_schedule": "cosine"}')
    assert DiffusionFeatures.from_checkpoint(path, steps=STEPS, blocks=BLOCKS).identity != a.identity


def test_label_pixels_see_ddpm_segmentations_upsampled_features(source, photos):
    """Our gather (the interpreter's rule) equals their collect_features: interpolate(mode="bilinear")."""
    maps = source.features(photos[0][:1])
    ys, xs = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    ours = gather_features([m[0] for m in maps], ys.flatten(), xs.flatten(), source.geometry)  # [S*S, D]
    theirs = torch.cat([F.interpolate(m[:1], size=(SIZE, SIZE), mode="bilinear")[0] for m in maps])  # [D, S, S]
    torch.testing.assert_close(ours, theirs.flatten(1).t(), rtol=1e-5, atol=1e-5)


def test_interpreter_learns_parts_from_diffusion_features(source, photos):
    images, masks = photos
    maps = source.features(images)
    train = [([m[i] for m in maps], masks[i]) for i in range(4)]
    ensemble = PixelEnsemble(source.feature_channels, list(CLASSES), n_members=3, hidden=(32, 16), max_epochs=3,
                             generator=source.identity, pixels_per_image=512, batch_size=64, tol=0.0, seed=0)
    ensemble.fit(train, source.geometry)
    held_out = ensemble.predict([m[4:] for m in maps])
    assert held_out.labels.shape == (2, SIZE, SIZE) and held_out.labels.dtype == torch.uint8
    fitted = ensemble.predict([m[:4] for m in maps]).labels.numpy()
    accuracy = float((fitted == masks[:4]).mean())
    majority = max(float((masks[:4] == c).mean()) for c in np.unique(masks[:4]))
    assert accuracy > majority, (accuracy, majority)
