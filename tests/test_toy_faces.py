"""The shipped toy-faces generator: loads, reproduces its stored outputs, is deterministic, has an oracle."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dgan_al.cli import app
from dgan_al.generators import load_generator
from dgan_al.generators.toy_faces import CLASSES, load_toy_faces, render_latents
from dgan_al.generators.toy_faces.generator import read_weights, weights_path


def test_shipped_weights_are_small_and_reproduce_stored_outputs():
    path = weights_path()
    assert path.stat().st_size <= 10 * 1024 * 1024
    check = read_weights(path)["check"]
    gen = load_toy_faces()
    out = gen.synthesize(check["z"])
    assert (out.images.int() - check["images"].int()).abs().max() <= 2
    means = torch.stack([f.mean() for f in out.features])
    assert torch.allclose(means, check["feature_means"], rtol=1e-3, atol=1e-4)
    # the renderer the weights were distilled from is still the same world
    assert np.array_equal(gen.oracle_mask(check["z"], truth="renderer"), check["oracle_masks"].numpy())


def test_toy_faces_protocol_and_determinism():
    gen = load_generator("toy-faces")
    assert gen.resolution == (128, 128) and gen.z_dim == 32 and gen.truncation_psi == 1.0
    assert 800 <= sum(gen.feature_channels) <= 1500
    # the first image: the seed-0 sample whose w is nearest the average w (z = 0 is no training latent)
    z10k = gen.sample_latents(10_000, seed=0)
    nearest = int((gen.map(z10k) - gen.model.mapping.w_avg).norm(dim=1).argmin())
    assert torch.equal(gen.mean_latent(), z10k[nearest]) and gen.mean_latent().norm() > 3
    z = gen.sample_latents(5, seed=4)
    a = gen.synthesize(z)
    b = gen.synthesize(z[2:3])
    for fa, fb in zip(a.features, b.features):
        assert torch.allclose(fa[2], fb[0], rtol=1e-5, atol=1e-5 * float(fa[2].abs().max()))
    assert (a.images[2].int() - b.images[0].int()).abs().max() <= 1
    masks = gen.oracle_mask(z, truth="renderer")
    assert masks.shape == (5, 128, 128) and masks.max() < len(CLASSES)
    assert np.array_equal(masks, render_latents(z.numpy())[1])
    assert gen.oracle_mask(z).shape == (5, 128, 128)  # the visible truth, by default
    assert gen.classes == list(CLASSES)


def test_gan_image_resembles_the_rendered_scene():
    gen = load_toy_faces()
    z = gen.sample_latents(8, seed=77)
    fake = gen.synthesize(z).images.float()
    real = torch.from_numpy(gen.render(z)[0]).float()
    mse = (fake - real).square().mean()
    assert 10 * torch.log10(255.0**2 / mse) > 23.0  # the shipped weights: 25.0 dB here; unrelated scenes ~10 dB


def test_the_scene_depends_on_what_the_generator_sees_only_the_direction_of_z():
    """StyleGAN2's mapping scales z to unit mean square before anything else, so G(z) = G(c z) for c > 0;
    the renderer reads z the same way, or G could not know the scene it is asked to draw."""
    gen = load_toy_faces()
    z = gen.sample_latents(4, seed=123)
    scales = torch.tensor([0.5, 1.7, 3.0, 0.9])[:, None]
    a, b = gen.synthesize(z), gen.synthesize(z * scales)
    assert (a.images.int() - b.images.int()).abs().max() <= 1
    for fa, fb in zip(a.features, b.features):
        assert torch.allclose(fa, fb, rtol=1e-4, atol=1e-4 * float(fa.abs().max()))
    rgb, masks = render_latents(z.numpy())
    rgb2, masks2 = render_latents((z * scales).numpy())
    assert np.abs(rgb.astype(int) - rgb2).max() <= 1 and np.array_equal(masks, masks2)  # (float rounding)
    # the plain reference: the mapping network's own first step
    from dgan_al.generators.toy_faces.scene import normalize_latent

    zn = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
    assert np.allclose(normalize_latent(z.numpy()), zn.numpy(), atol=1e-6)
    assert np.array_equal(normalize_latent(np.zeros((1, 32))), np.zeros((1, 32)))  # z = 0, the mean face


def test_with_coordinates_sets_coordinates_as_the_scene_reads_them():
    from dgan_al.generators.toy_faces.scene import normalize_latent, with_coordinates

    rng = np.random.default_rng(3)
    z = rng.standard_normal((50, 32))
    for values in ({5: 1.3}, {27: 2.0, 17: -1.0, 3: 0.0}, {12: rng.uniform(-3, 3, 50)}):
        out = with_coordinates(z, values)
        n, n0 = normalize_latent(out), normalize_latent(z)
        for k, v in values.items():
            assert np.allclose(n[:, k], v, atol=1e-6)
        rest = [i for i in range(32) if i not in values]
        assert np.array_equal(out[:, rest], z[:, rest])  # only the set coordinates change in z ...
        ratio = n[:, rest] / n0[:, rest]  # ... and the others keep their direction
        assert np.allclose(ratio, ratio[:, :1], rtol=1e-9)
    with pytest.raises(ValueError, match="summing below"):
        with_coordinates(z, {1: 4.0, 2: 4.0})
    with pytest.raises(ValueError, match="all 0"):
        with_coordinates(np.eye(32)[:1], {0: 1.0})


@pytest.mark.parametrize("name", ["head size", "yaw", "eye size", "hat", "beard"])
def test_the_gan_follows_a_latent_coordinate_like_the_renderer(name):
    """Moving one coordinate changes G's image the way it changes the rendered scene (the shipped weights:
    cosine 0.88, 0.69, 0.69, 0.56, 0.55 over 16 scenes; about 0 for weights that ignore the coordinate)."""
    from dgan_al.generators.toy_faces.scene import LATENT_NAMES, RARE_LATENT_INDEX, with_coordinates

    gen = load_toy_faces()
    k = LATENT_NAMES.index(name)
    low, high = (0.0, 2.0) if k in RARE_LATENT_INDEX.values() else (-1.5, 1.5)
    z = gen.sample_latents(8, seed=91).numpy()
    z_low, z_high = (torch.from_numpy(with_coordinates(z, {k: v})).float() for v in (low, high))
    d_gan = (gen.synthesize(z_high).images.float() - gen.synthesize(z_low).images.float()).flatten(1)
    d_render = torch.from_numpy(gen.render(z_high)[0].astype(np.float32) - gen.render(z_low)[0].astype(np.float32))
    cosine = torch.nn.functional.cosine_similarity(d_gan, d_render.flatten(1), dim=1).mean()
    assert cosine > 0.3


def test_inspect_toy_faces():
    result = CliRunner().invoke(app, ["inspect-generator", "toy-faces"])
    assert result.exit_code == 0, result.output
    assert "toy-faces" in result.output and "1040" in result.output and "earring" in result.output


def test_rescaling_the_mapping_to_another_lr_multiplier_keeps_the_function():
    """Distillation resumes a checkpoint trained with another mapping lr multiplier: same outputs."""
    from dgan_al.generators.stylegan2 import StyleGAN2, StyleGAN2Config
    from dgan_al.generators.toy_faces.distill import rescale_mapping

    small = dict(resolution=16, z_dim=8, w_dim=16, mapping_layers=2, channels=(8, 8, 4))
    before = StyleGAN2(StyleGAN2Config(**small, mapping_lr_mul=0.1), seed=1)
    with torch.no_grad():
        for p in before.mapping.parameters():
            p.add_(torch.randn_like(p))  # non-trivial biases too
    after = StyleGAN2(StyleGAN2Config(**small, mapping_lr_mul=1.0), seed=2)
    after.load_state_dict(rescale_mapping(before.state_dict(), 0.1, 1.0))
    z = torch.randn(3, 8)
    with torch.no_grad():
        img_before, _ = before(z)
        img_after, _ = after(z)
        assert torch.allclose(before.mapping(z), after.mapping(z), rtol=1e-5, atol=1e-5)
    assert torch.allclose(img_before, img_after, rtol=1e-4, atol=1e-5)
    assert not torch.equal(after.mapping.fcs[0].weight, before.mapping.fcs[0].weight)


@pytest.mark.slow
def test_the_cpu_image_score_ranks_a_pool_like_the_full_score():
    """score_pixels = "auto" on a CPU scores on a grid; on toy-faces it must rank images as every pixel does."""
    from dgan_al.generators.protocol import sample_latents
    from dgan_al.interpreter import PixelEnsemble
    from dgan_al.selection import rank_agreement
    from dgan_al.workflows.next_round import score_pixels

    gen = load_toy_faces()
    cpu_pixels = score_pixels("auto", torch.device("cpu"))
    assert cpu_pixels != "full" and score_pixels("auto", torch.device("cuda")) == "full"
    z_train = torch.cat([gen.mean_latent()[None], sample_latents(gen.z_dim, 2, seed=5_000)])
    train = gen.synthesize(z_train)
    masks = gen.oracle_mask(z_train)
    ensemble = PixelEnsemble(gen.feature_channels, gen.classes, n_members=4, max_epochs=3,
                             pixels_per_image=1024, generator=gen.identity)
    ensemble.fit([([f[i] for f in train.features], masks[i]) for i in range(3)], gen.geometry)
    full, cheap = [], []
    for z in sample_latents(gen.z_dim, 48, seed=0).split(16):
        features = gen.synthesize(z).features
        full.append(ensemble.score_images(features, pixels="full").image_score.numpy())
        cheap.append(ensemble.score_images(features, pixels=cpu_pixels).image_score.numpy())
    assert rank_agreement(np.concatenate(full), np.concatenate(cheap))["spearman"] >= 0.95


@pytest.mark.slow
def test_distillation_runs_stops_on_time_and_resumes_an_older_checkpoint(tmp_path):
    """A tiny real run: stop on --minutes (checkpoint kept), resume a checkpoint trained with the earlier
    mapping lr multiplier, and export weights the package's loader reads."""
    from dgan_al.generators.toy_faces.distill import DistillSettings, distill, rescale_mapping

    tiny = dict(batch=2, n_train=8, n_held_out=4, checkpoint_every=100, threads=1)
    info = distill(tmp_path, DistillSettings(steps=50, minutes=0, **tiny))
    assert info["steps"] == 0  # out of time before the first step: still a checkpoint and a weights file
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 0 and ckpt["mapping_lr_mul"] == 1.0
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    ckpt["train_minutes"] = 5.0  # as if the first run had trained for 5 minutes
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    info = distill(tmp_path, DistillSettings(steps=3, **tiny), resume=True)
    assert info["steps"] == 3 and 5.0 < info["train_minutes"] < 6.0  # the time of both runs
    # the held-out PSNR of the EMA weights is logged at each checkpoint and kept for the loss plot
    val_history = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["val_history"]
    assert [step for step, _ in val_history] == [3] and val_history[0][1] == pytest.approx(info["held_out_psnr_db"])
    assert "held-out" in (tmp_path / "log.txt").read_text().splitlines()[-1]
    # a checkpoint from before the multiplier was recorded (trained with 0.1) resumes with the function kept
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    old = {**ckpt, "model": rescale_mapping(ckpt["model"], 1.0, 0.1), "ema": rescale_mapping(ckpt["ema"], 1.0, 0.1)}
    del old["mapping_lr_mul"]
    torch.save(old, tmp_path / "checkpoint.pt")
    before = load_toy_faces(path=tmp_path / "toy_faces.pt").synthesize(torch.zeros(1, 32)).images
    info = distill(tmp_path, DistillSettings(steps=3, **tiny), resume=True)  # nothing left to train
    assert info["steps"] == 3
    after = load_toy_faces(path=tmp_path / "toy_faces.pt").synthesize(torch.zeros(1, 32)).images
    assert (before.int() - after.int()).abs().max() <= 1


@pytest.mark.slow
def test_parallel_rendering_of_training_scenes_equals_serial():
    from dgan_al.generators.toy_faces.distill import render_targets

    z = torch.randn(10, 32, generator=torch.Generator().manual_seed(3))
    serial = render_targets(z, workers=1, chunk=4)
    assert torch.equal(render_targets(z, workers=2, chunk=4), serial)
    assert torch.equal(serial, torch.from_numpy(render_latents(z.numpy())[0]))
    images, details = render_targets(z, workers=2, chunk=4, details=True)
    assert torch.equal(images, serial) and details.dtype == torch.uint8 and details.shape == (10, 128, 128)


def test_detail_mask_marks_the_small_and_rare_parts():
    from dgan_al.generators.toy_faces.classes import CLASS_ID
    from dgan_al.generators.toy_faces.distill import DETAIL_CLASSES, detail_mask, render_targets

    masks = np.arange(len(CLASSES), dtype=np.uint8).reshape(1, 3, 5)
    expected = np.isin(masks, [CLASS_ID[name] for name in DETAIL_CLASSES]).astype(np.uint8)
    assert np.array_equal(detail_mask(masks), expected)
    assert {CLASSES[i] for i in masks[detail_mask(masks) == 1]} == set(DETAIL_CLASSES)
    z = torch.randn(6, 32, generator=torch.Generator().manual_seed(8))
    _, details = render_targets(z, details=True)
    assert np.array_equal(details.numpy(), detail_mask(render_latents(z.numpy())[1]))
    share = float(details.float().mean())
    assert 0.01 < share < 0.3  # the parts are small: a few percent of the pixels


def test_part_weighted_loss_against_the_plain_one():
    from dgan_al.generators.toy_faces.distill import _loss

    gen = torch.Generator().manual_seed(11)
    fake, real = torch.randn(3, 3, 16, 16, generator=gen), torch.randn(3, 3, 16, 16, generator=gen)
    plain = _loss(fake, real)
    # the reference: L1 at full resolution plus L1 of 2x2- and 4x4-averaged images
    reference = sum((torch.nn.functional.avg_pool2d(fake, k) - torch.nn.functional.avg_pool2d(real, k)).abs().mean()
                    for k in (1, 2, 4))
    assert torch.allclose(plain, reference)
    assert torch.allclose(_loss(fake, real, torch.ones(3, 1, 16, 16)), plain)
    assert torch.allclose(_loss(fake, real, torch.full((3, 1, 16, 16), 7.0)), plain)  # only ratios count
    # an error confined to the weighted pixels counts more when they weigh more
    part = torch.zeros(3, 1, 16, 16)
    part[:, :, 4:8, 4:8] = 1
    off = real + part  # wrong by 1 on the part only
    light, heavy = _loss(off, real, 1 + 0 * part), _loss(off, real, 1 + 4 * part)
    assert heavy > 2 * light
    # an error the same everywhere costs the same under any weighting: 1 per scale
    assert torch.allclose(_loss(real + 1, real, 1 + 4 * part), torch.tensor(3.0))


def test_distill_command_refuses_a_zero_batch(tmp_path):
    result = CliRunner().invoke(app, ["toy", "distill", "--out", str(tmp_path / "d"), "--batch", "0"])
    assert result.exit_code == 2 and "--batch" in result.output
    assert not (tmp_path / "d").exists()


def test_boost_rare_gives_a_fraction_of_the_scenes_one_more_rare_part():
    from scipy.special import ndtr

    from dgan_al.generators.protocol import sample_latents
    from dgan_al.generators.toy_faces.distill import boost_rare
    from dgan_al.generators.toy_faces.scene import (LATENT_NAMES, RARE_LATENT_INDEX, RARE_THRESHOLD, Z_DIM,
                                                    normalize_latent, params_from_latent)

    assert len(LATENT_NAMES) == Z_DIM
    assert all(LATENT_NAMES[k].startswith(name[:4]) for name, k in RARE_LATENT_INDEX.items())

    z = sample_latents(32, 4000, seed=5)
    boosted = boost_rare(z, 0.4, seed=1)
    assert torch.equal(boosted, boost_rare(z, 0.4, seed=1)) and not torch.equal(boosted, boost_rare(z, 0.4, seed=2))
    assert torch.equal(boost_rare(z, 0.0), z)
    changed = (boosted != z)
    rows = changed.any(1)
    assert int(rows.sum()) == 1600  # 40% of the rows, each redrawn from a continuous tail
    assert bool((changed.sum(1) <= 1).all())  # one coordinate per row
    cols = sorted(set(changed.nonzero()[:, 1].tolist()))
    assert cols == sorted(RARE_LATENT_INDEX.values())
    assert bool(torch.isfinite(boosted).all())
    u_natural, u_boosted = ndtr(normalize_latent(z.numpy())), ndtr(normalize_latent(boosted.numpy()))
    assert bool((u_boosted[changed.numpy()] > RARE_THRESHOLD).all())  # as the scene reads the coordinate
    for name, k in RARE_LATENT_INDEX.items():
        natural = float((u_natural[:, k] > RARE_THRESHOLD).mean())
        present = float((u_boosted[:, k] > RARE_THRESHOLD).mean())
        assert abs(natural - 0.1) < 0.02 and abs(present - (0.1 + 0.9 * 0.1)) < 0.025, name
    # the scenes do have the part, and the boosted parts' styles are spread like the natural ones
    hats = [params_from_latent(row.numpy()).hat for row in boosted[changed[:, RARE_LATENT_INDEX["hat"]]]]
    assert None not in hats and len(set(hats)) == 3
    with pytest.raises(ValueError):
        boost_rare(z, 1.5)


def test_distillation_can_start_from_existing_weights(tmp_path):
    from dgan_al.errors import UserError
    from dgan_al.generators.toy_faces.distill import DistillSettings, distill

    tiny = dict(batch=2, n_train=8, n_held_out=4, checkpoint_every=100, threads=1)
    info = distill(tmp_path / "a", DistillSettings(steps=50, minutes=0, init="toy-faces", rare_boost=0.5, **tiny))
    shipped = load_toy_faces()
    assert info["steps"] == 0 and info["init"] == shipped.identity
    z = torch.randn(3, 32, generator=torch.Generator().manual_seed(4))
    started = load_toy_faces(path=tmp_path / "a" / "toy_faces.pt").synthesize(z).images
    assert (started.int() - shipped.synthesize(z).images.int()).abs().max() <= 1
    # a resumed run keeps the record of where it started; --init does not override the checkpoint
    info = distill(tmp_path / "a", DistillSettings(steps=2, init="toy-faces", **tiny), resume=True)
    assert info["steps"] == 2 and info["init"] == shipped.identity
    # weights that are not toy-faces weights: one clear error, nothing written
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    for bad in (tmp_path / "junk.pt", tmp_path / "missing.pt"):
        with pytest.raises(UserError, match=str(bad.name)):
            distill(tmp_path / "b", DistillSettings(steps=2, init=str(bad), **tiny))
        assert not (tmp_path / "b").exists()
    result = CliRunner().invoke(app, ["toy", "distill", "--out", str(tmp_path / "c"), "--init", str(tmp_path / "junk.pt")])
    assert result.exit_code == 2 and "junk.pt" in result.output and not (tmp_path / "c").exists()
    result = CliRunner().invoke(app, ["toy", "distill", "--out", str(tmp_path / "c"), "--rare-boost", "2"])
    assert result.exit_code == 2 and "--rare-boost" in result.output
    result = CliRunner().invoke(app, ["toy", "distill", "--out", str(tmp_path / "c"), "--part-weight", "0"])
    assert result.exit_code == 2 and "--part-weight" in result.output and not (tmp_path / "c").exists()


def test_part_weighted_distillation_trains_and_records_the_weight(tmp_path):
    from dgan_al.generators.toy_faces.distill import DistillSettings, distill

    settings = DistillSettings(steps=3, batch=2, n_train=8, n_held_out=4, checkpoint_every=100, threads=1,
                               init="toy-faces", part_weight=4.0, lr=1e-3)
    info = distill(tmp_path, settings)
    assert info["steps"] == 3 and info["settings"]["part_weight"] == 4.0 and info["world"] == 2
    weights = load_toy_faces(path=tmp_path / "toy_faces.pt")
    assert weights.describe()["world"] == "version 2"  # the renderer map the weights were distilled from
    z = torch.randn(2, 32, generator=torch.Generator().manual_seed(4))
    moved = (weights.synthesize(z).images.int() - load_toy_faces().synthesize(z).images.int()).abs().max()
    assert moved > 0  # it did train
    with pytest.raises(ValueError, match="part_weight"):
        distill(tmp_path / "x", DistillSettings(steps=1, part_weight=0.0))
