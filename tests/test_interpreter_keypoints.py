"""Keypoint heatmap heads (issue 32, item 3): targets, sampling, training, fast-path peaks, save/load.

The heads are extra outputs of each member (``dgan_al.interpreter.keypoints``): an ensemble without keypoints
is the ensemble it always was (bit for bit); with keypoints its class outputs come from a trunk trained on
both losses, so they are close to a parts-only ensemble's, not equal (checked below).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from dgan_al.generators.stylegan2 import StyleGAN2Config, random_generator
from dgan_al.interpreter import PixelEnsemble
from dgan_al.interpreter.keypoints import heatmap_peaks, heatmap_targets, keypoint_array, summarise_heatmaps
from dgan_al.interpreter.network import StackedMLP
from dgan_al.interpreter.reference import upsampled_features
from dgan_al.interpreter.training import bootstrap_samples, build_pixel_pool, train_members

CLASSES = ["dark", "mid", "light"]
KEYPOINTS = ["planted", "absent"]
PLANT = (20.3, 11.6)  # (x, y) label pixels, the same in every image


@pytest.fixture(scope="module")
def generator():
    config = StyleGAN2Config(resolution=32, z_dim=16, w_dim=16, mapping_layers=2, channels=(16, 12, 8, 8))
    return random_generator(config, seed=3)


def images(generator, n: int, seed: int):
    """Feature maps [B, C, h, w] per layer and masks: the blurred image's brightness cut into 3 bands."""
    synthesis = generator.synthesize(torch.randn(n, 16, generator=torch.Generator().manual_seed(seed)))
    masks = []
    for image in synthesis.images:
        grey = ndimage.gaussian_filter(image.float().mean(-1).numpy(), 2)
        masks.append(np.digitize(grey, np.quantile(grey, [0.33, 0.66])).astype(np.uint8))
    return synthesis.features, masks


def annotated(generator, n: int, seed: int, keypoints=lambda i: {"planted": [*PLANT, 2], "absent": [0, 0, 0]}):
    features, masks = images(generator, n, seed)
    return [([f[i] for f in features], masks[i], keypoints(i)) for i in range(n)]


def small(generator, **kwargs) -> PixelEnsemble:
    params = dict(n_members=3, hidden=(32, 16), generator="tiny", pixels_per_image=128, batch_size=64,
                  max_epochs=8, tol=0.0, keypoints=KEYPOINTS, sigma=2.0, keypoint_pixels=24)
    params.update(kwargs)
    return PixelEnsemble(generator.feature_channels, CLASSES, **params)


@pytest.fixture(scope="module")
def trained(generator) -> PixelEnsemble:
    return small(generator).fit(annotated(generator, 8, seed=0), generator.geometry)


def test_targets_weights_and_visibility():
    names = ["a", "b", "c", "d"]
    array = keypoint_array({"a": [3.0, 4.0, 2], "b": [1.0, 1.0, 1], "c": [0, 0, 0]}, names)  # d: not annotated
    assert np.isnan(array[3]).all()
    ys, xs = np.array([4, 4, 1]), np.array([3, 5, 1])
    target, weight = heatmap_targets(ys, xs, array, sigma=2.0)
    assert target[0, 0] == 1.0 and math.isclose(target[1, 0], math.exp(-4 / 8), rel_tol=1e-6)
    assert target[2, 1] == 1.0  # occluded (v=1) trains as present
    assert (target[:, 2] == 0).all() and (weight[:, 2] == 1).all()  # absent: a zero target, trained
    assert (weight[:, 3] == 0).all() and (weight[:, :3] == 1).all()  # not annotated for d: no loss
    assert keypoint_array(None, names) is None
    with pytest.raises(ValueError, match="unknown keypoint names"):
        keypoint_array({"e": [0, 0, 2]}, names)
    with pytest.raises(ValueError, match="visibility"):
        keypoint_array({"a": [0, 0, 3]}, names)


def test_heatmap_peaks_are_sub_pixel_and_the_spread_is_the_members_std():
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(20.0), indexing="ij")
    gauss = lambda x, y: torch.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 8)  # noqa: E731
    positions, value = heatmap_peaks(torch.stack([gauss(5.3, 7.8), gauss(12.0, 3.0), 0.5 * gauss(0.2, 15.0)]))
    assert torch.allclose(positions[0], torch.tensor([5.3, 7.8]), atol=1e-3)
    assert torch.equal(positions[1], torch.tensor([12.0, 3.0]))
    assert torch.equal(positions[2], torch.tensor([0.0, 15.0]))  # at the border: the pixel itself
    members = torch.stack([gauss(4.0, 6.0), gauss(6.0, 6.0)])[:, None, None]  # [M=2, K=1, B=1, H, W]
    summary = summarise_heatmaps(members, ["k"])
    assert torch.allclose(summary.spread, torch.tensor([[1.0]]), atol=1e-3)  # peaks 2 px apart: std 1
    assert summary.positions.shape == (1, 1, 2) and summary.confidence.shape == (1, 1)


def test_planted_keypoint_is_recovered_and_an_absent_one_has_low_confidence(generator, trained):
    features, _ = images(generator, 6, seed=99)  # held-out images
    prediction = trained.predict(features, return_heatmaps=True)
    kp = prediction.keypoints
    assert kp.names == KEYPOINTS
    assert kp.positions.shape == (6, 2, 2) and kp.confidence.shape == (6, 2) and kp.spread.shape == (6, 2)
    assert kp.heatmaps.shape == (6, 2, 32, 32)
    error = (kp.positions[:, 0] - torch.tensor(PLANT)).norm(dim=-1)
    assert error.max() < 1.5, error
    assert kp.confidence[:, 0].min() > 0.5 and kp.confidence[:, 1].max() < 0.2
    assert kp.spread[:, 0].max() < 1.5  # the members agree on the planted point
    assert prediction.labels.shape == (6, 32, 32)  # the class outputs are still there


def test_fast_path_heatmaps_equal_the_plain_network(generator, trained):
    features, _ = images(generator, 2, seed=7)
    heat = trained.predict(features, return_heatmaps=True, chunk_pixels=100).keypoints.heatmaps  # many bands
    for b in range(2):
        x = upsampled_features([f[b : b + 1] for f in features], generator.geometry)  # [H*W, D]
        with torch.no_grad():
            out = trained.net_(x.expand(trained.n_members, *x.shape))  # [M, H*W, K + 2]
        expected = out[..., len(CLASSES):].mean(0).t().reshape(2, 32, 32)
        assert torch.allclose(heat[b], expected, atol=1e-4)


def test_an_image_not_annotated_for_keypoints_adds_no_heatmap_loss(generator):
    items = annotated(generator, 3, seed=1)
    items[1] = (items[1][0], items[1][1], None)
    pool = build_pixel_pool(items, generator.geometry, 96, 1.0, seed=0, keypoint_names=KEYPOINTS, sigma=2.0,
                            keypoint_pixels=24)
    rows = slice(pool.pixels_per_image[0], pool.pixels_per_image[0] + pool.pixels_per_image[1])
    assert pool.pixels_per_image[1] == 96  # its sample is the parts-only one: no disc pixels
    assert (pool.heat_weights[rows] == 0).all() and (pool.heat_weights[: rows.start] == 1).all()
    # whatever targets its pixels carry, training is bit for bit the same: they add no heatmap loss
    samples = bootstrap_samples(pool, 2, 64, seed=0)
    states = []
    for fill in (0.0, 123.0):
        pool.heat_targets[rows] = fill
        net = StackedMLP(2, sum(generator.feature_channels), (16, 8), len(CLASSES) + len(KEYPOINTS))
        net.reset_parameters(torch.Generator().manual_seed(0))
        train_members(net, pool, samples, 64, 1e-3, 2, 0.0, seed=0)
        states.append(net.state_dict())
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    # and near each placed point the sample holds the nearest pixel and a disc around it
    annotated_rows = slice(0, pool.pixels_per_image[0])
    assert pool.pixels_per_image[0] > 96 and pool.heat_targets[annotated_rows, 0].max() > 0.9


def test_without_keypoints_the_class_path_is_unchanged(generator):
    items = annotated(generator, 3, seed=2)
    plain = small(generator, keypoints=(), max_epochs=2).fit([(m, k) for m, k, _ in items], generator.geometry)
    ignored = small(generator, keypoints=(), max_epochs=2).fit(items, generator.geometry)  # points unused
    for key, value in plain.net_.state_dict().items():
        assert torch.equal(value, ignored.net_.state_dict()[key])
    features, _ = images(generator, 2, seed=5)
    a, b = plain.predict(features), ignored.predict(features)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.js, b.js) and a.keypoints is None


def test_heads_change_the_class_outputs_only_a_little(generator, trained):
    """Extra outputs share the trunk: class outputs are not bit-identical to a parts-only ensemble's."""
    parts = small(generator, keypoints=()).fit(
        [(m, k) for m, k, _ in annotated(generator, 8, seed=0)], generator.geometry
    )
    features, masks = images(generator, 6, seed=99)
    truth = np.stack(masks)
    accuracy = {name: (model.predict(features).labels.numpy() == truth).mean()
                for name, model in (("parts", parts), ("heads", trained))}
    assert accuracy["heads"] > accuracy["parts"] - 0.05, accuracy


def test_save_load_keeps_heads_and_names_and_parts_only_files_stay_as_before(generator, trained, tmp_path):
    path = tmp_path / "interpreter.pt"
    trained.save(path)
    loaded = PixelEnsemble.load(path, expect_generator="tiny", expect_classes=CLASSES)
    assert loaded.keypoints == KEYPOINTS and loaded.sigma == 2.0 and loaded.keypoint_pixels == 24
    features, _ = images(generator, 2, seed=3)
    a, b = trained.predict(features), loaded.predict(features)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.js, b.js)
    for field in ("positions", "confidence", "spread"):
        assert torch.equal(getattr(a.keypoints, field), getattr(b.keypoints, field))

    parts = small(generator, keypoints=(), max_epochs=1).fit(
        [(m, k) for m, k, _ in annotated(generator, 2, seed=4)], generator.geometry
    )
    parts_path = tmp_path / "parts.pt"
    parts.save(parts_path)
    payload = torch.load(parts_path, weights_only=True)
    old_names = {"n_members", "hidden", "pixels_per_image", "class_balance", "batch_size", "lr", "max_epochs",
                 "tol", "seed"}
    assert set(payload["hyperparameters"]) == old_names  # the file an older dgan-al wrote (and reads)
    back = PixelEnsemble.load(parts_path)
    assert back.keypoints == [] and back.predict(features).keypoints is None
    assert torch.equal(back.predict(features).labels, parts.predict(features).labels)


@pytest.mark.parametrize("pixels", ["full", "grid:2", "subset:300"])
def test_score_images_keypoint_uncertainty_matches_the_plain_network(generator, trained, pixels):
    """``score_images(keypoints=True)``: per image, mean over keypoints of confidence x spread of the members'
    peaks among the scored pixels, computed here from the plain network at every pixel then restricted."""
    from dgan_al.interpreter.ensemble import scoring_pixels

    features, _ = images(generator, 3, seed=11)
    scored = trained.score_images(features, pixels=pixels, seed=5, keypoints=True)
    plain = trained.score_images(features, pixels=pixels, seed=5)
    assert plain.keypoint_uncertainty is None
    assert torch.equal(scored.image_score, plain.image_score)  # the JS score is untouched
    if pixels == "full":  # the sub-pixel peaks of predict
        kp = trained.predict(features).keypoints
        expected = (kp.spread.double() * kp.confidence.double()).mean(1)
        assert torch.allclose(scored.keypoint_uncertainty, expected, atol=1e-5)
        return
    kind, ys, xs = scoring_pixels(pixels, (32, 32), 5)
    if kind == "grid":
        ys, xs = ys.repeat_interleave(len(xs)), xs.repeat(len(ys))
    for b in range(3):
        x = upsampled_features([f[b : b + 1] for f in features], generator.geometry)
        with torch.no_grad():
            out = trained.net_(x.expand(trained.n_members, *x.shape))[..., len(CLASSES):]  # [M, H*W, K]
        heat = out.reshape(trained.n_members, 32, 32, 2)[:, ys, xs]  # [M, n, K]
        peak = heat.argmax(1)  # [M, K]
        px, py = xs[peak].double(), ys[peak].double()
        spread = (px.var(0, unbiased=False) + py.var(0, unbiased=False)).sqrt()
        confidence = heat.mean(0).amax(0).clamp(0, 1).double()
        assert scored.keypoint_uncertainty[b].item() == pytest.approx((spread * confidence).mean().item(), abs=1e-5)
