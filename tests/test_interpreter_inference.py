"""The fast inference path equals the plain reference (datasetGAN_release's algorithm) on random inputs.

Weights are drawn so that members really disagree (mean per-pixel JS well above 0.1 nats): the paper's
N(0, 0.02) initialisation alone gives JS ~ 0 and near-constant labels, which would prove nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dgan_al.geometry import LabelGeometry
from dgan_al.interpreter import PixelEnsemble
from dgan_al.interpreter.inference import CPU_CHUNK_PIXELS, CUDA_CHUNK_PIXELS, default_chunk_pixels
from dgan_al.interpreter.network import StackedMLP
from dgan_al.interpreter.reference import reference_interpret, reference_members, upsampled_features


def disagreeing_ensemble(channels: list[int], n_classes: int, n_members: int, geometry, seed: int = 0) -> PixelEnsemble:
    """A 'trained' ensemble with random weights at a scale where members disagree, BatchNorm stats random."""
    ensemble = PixelEnsemble(channels, [f"class{i}" for i in range(n_classes)], n_members=n_members, generator="test")
    net = StackedMLP(n_members, sum(channels), ensemble.check_params().hidden_, n_classes)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for w in (net.w1, net.w2, net.w3):
            w.normal_(0.0, 2.0 / w.shape[1] ** 0.5, generator=gen)
        for b in (net.b1, net.b2, net.b3):
            b.normal_(0.0, 0.3, generator=gen)
        for bn in (net.bn1, net.bn2):
            bn.weight.uniform_(0.5, 1.5, generator=gen)
            bn.bias.normal_(0.0, 0.3, generator=gen)
            bn.running_mean.normal_(0.0, 0.5, generator=gen)
            bn.running_var.uniform_(0.5, 2.0, generator=gen)
    ensemble.net_ = net.eval()
    ensemble.geometry_ = geometry
    return ensemble


CASES = {
    # name: (channels, native sizes, geometry)
    "stylegan-like, full": ([16, 16, 12, 12, 8, 8, 4, 4], [4, 4, 8, 8, 16, 16, 32, 32], LabelGeometry.full(32, 32)),
    "cropped canvas": ([8, 8, 6, 4], [4, 8, 16, 32], LabelGeometry(canvas=(32, 32), crop=(4, 0, 24, 32))),
    "odd crop and sizes": ([5, 7, 3], [3, 11, 40], LabelGeometry(canvas=(30, 26), crop=(3, 5, 20, 17))),
    "maps above the canvas": ([6, 6], [8, 64], LabelGeometry.full(32, 32)),  # 1024px labelled at 512, scaled
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("chunk_pixels", [None, CUDA_CHUNK_PIXELS, 37])  # the CPU default, the GPU's, tiny
def test_fast_inference_equals_the_reference(name, chunk_pixels):
    channels, sizes, geometry = CASES[name]
    ensemble = disagreeing_ensemble(channels, n_classes=5, n_members=6, geometry=geometry)
    gen = torch.Generator().manual_seed(1)
    batch = [torch.randn(3, c, s, s, generator=gen) for c, s in zip(channels, sizes)]
    prediction = ensemble.predict(batch, chunk_pixels=chunk_pixels, return_probabilities=True)
    members = reference_members(ensemble.net_)
    height, width = geometry.size
    assert prediction.labels.shape == (3, height, width) and prediction.labels.dtype == torch.uint8
    for b in range(3):
        reference = reference_interpret(members, [m[b : b + 1] for m in batch], geometry)
        assert reference["js"].mean() > 0.1, "members must disagree for this test to mean anything"
        assert len(np.unique(reference["labels"])) >= 3
        agreement = (prediction.labels[b].numpy() == reference["labels"]).mean()
        assert agreement >= 0.999
        assert np.abs(prediction.js[b].numpy() - reference["js"]).max() <= 1e-4
        np.testing.assert_allclose(prediction.image_score[b].item(), reference["score_sum"], rtol=1e-5)
        np.testing.assert_allclose(prediction.image_score_top10[b].item(), reference["score_top10"], rtol=1e-5)
        np.testing.assert_allclose(prediction.probabilities[b].numpy(), reference["mean_probabilities"], atol=1e-5)


def test_band_size_defaults_by_device():
    # a GPU gets bands large enough that a 512px batch of 16 takes a few of them, not 512 one-row bands
    assert default_chunk_pixels("cpu") == CPU_CHUNK_PIXELS == 4096
    assert default_chunk_pixels("cuda") == default_chunk_pixels(torch.device("cuda", 0)) == CUDA_CHUNK_PIXELS
    assert CUDA_CHUNK_PIXELS // (16 * 512) >= 32


def test_embedding_is_the_pixel_mean_of_the_first_hidden_layer():
    channels, sizes, geometry = CASES["cropped canvas"]
    ensemble = disagreeing_ensemble(channels, 4, 3, geometry)
    maps = [torch.randn(1, c, s, s) for c, s in zip(channels, sizes)]
    prediction = ensemble.predict(maps)
    features = upsampled_features(maps, geometry)  # [HW, D]
    expected = []
    for member in reference_members(ensemble.net_):
        expected.append(member[2](member[1](member[0](features))).mean(0))  # BN(ReLU(Linear)) pooled
    torch.testing.assert_close(prediction.embedding[0], torch.cat(expected), atol=1e-4, rtol=1e-4)


def test_folded_network_equals_the_stacked_network_in_eval_mode():
    channels, sizes, geometry = CASES["stylegan-like, full"]
    ensemble = disagreeing_ensemble(channels, 4, 5, geometry)
    x = torch.randn(5, 40, sum(channels))
    with torch.no_grad():
        expected = torch.log_softmax(ensemble.net_(x), -1)
    folded = ensemble.net_.fold()
    from dgan_al.interpreter.inference import _tail

    hidden = torch.einsum("mpd,dk->mpk", x, folded.w1.view(sum(channels), -1))  # each member's own rows
    m, h1 = 5, ensemble.hidden_[0]
    hidden = torch.stack([hidden[i, :, i * h1 : (i + 1) * h1] for i in range(m)], 1)  # [P, M, h1]
    got = _tail(hidden.reshape(40, m * h1) + folded.b1, folded)  # [M, K, P]
    torch.testing.assert_close(got, expected.transpose(1, 2), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("pixels", ["grid:1", "grid:3", "subset:50", "subset:100000"])
def test_pixel_subset_scores_equal_the_reference_on_those_pixels(pixels):
    channels, sizes, geometry = CASES["odd crop and sizes"]
    ensemble = disagreeing_ensemble(channels, 5, 4, geometry)
    gen = torch.Generator().manual_seed(2)
    batch = [torch.randn(2, c, s, s, generator=gen) for c, s in zip(channels, sizes)]
    scores = ensemble.score_images(batch, pixels=pixels, chunk_pixels=29)
    from dgan_al.interpreter import scoring_pixels

    kind, ys, xs = scoring_pixels(pixels, geometry.size)
    if kind == "grid":
        ys, xs = (t.flatten() for t in torch.meshgrid(ys, xs, indexing="ij"))
    height, width = geometry.size
    members = reference_members(ensemble.net_)
    for b in range(2):
        reference = reference_interpret(members, [m[b : b + 1] for m in batch], geometry)
        js = reference["js"][ys.numpy(), xs.numpy()]
        np.testing.assert_allclose(scores.image_score[b].item(), js.mean() * height * width, rtol=1e-4)
    if pixels in ("grid:1", "subset:100000"):  # every pixel: the same as the full score
        full = ensemble.score_images(batch, pixels="full")
        torch.testing.assert_close(scores.image_score, full.image_score, rtol=1e-5, atol=1e-3)
        torch.testing.assert_close(scores.embedding, full.embedding, rtol=1e-4, atol=1e-4)


def test_bad_pixel_spec_and_bad_maps_are_refused_with_what_was_expected():
    channels, sizes, geometry = CASES["cropped canvas"]
    ensemble = disagreeing_ensemble(channels, 3, 2, geometry)
    maps = [torch.randn(1, c, s, s) for c, s in zip(channels, sizes)]
    with pytest.raises(ValueError, match="grid:S"):
        ensemble.score_images(maps, pixels="grid:0")
    with pytest.raises(ValueError, match=r"expected 4 feature maps, got 3"):
        ensemble.predict(maps[:3])
    with pytest.raises(ValueError, match=r"layer 1: expected a \[B, 8, h, w\]"):
        ensemble.predict([maps[0], torch.randn(1, 5, 8, 8), *maps[2:]])


def test_compare_pixel_sets_reports_agreement_with_the_full_score():
    from dgan_al.workflows.score_agreement import compare_pixel_sets

    channels, sizes, geometry = CASES["cropped canvas"]
    ensemble = disagreeing_ensemble(channels, 4, 3, geometry)
    gen = torch.Generator().manual_seed(5)
    batches = [[torch.randn(5, c, s, s, generator=gen) * (1 + i) for c, s in zip(channels, sizes)] for i in range(4)]
    report = compare_pixel_sets(ensemble, batches, pixel_sets=("grid:1", "subset:20"))
    assert set(report) == {"full", "grid:1", "subset:20"}
    assert report["grid:1"]["spearman"] > 0.999 and report["grid:1"]["band_overlap"] == 1.0
    assert -1 <= report["subset:20"]["spearman"] <= 1 and report["subset:20"]["seconds_per_image"] > 0


def test_images_in_several_passes_give_the_same_result():
    from dgan_al.interpreter.inference import interpret_full

    channels, sizes, geometry = CASES["stylegan-like, full"]
    ensemble = disagreeing_ensemble(channels, 4, 3, geometry)
    maps = [torch.randn(3, c, s, s) for c, s in zip(channels, sizes)]
    weights, groups = ensemble._groups(maps, geometry)
    one_pass = interpret_full(maps, weights, groups, geometry)
    per_image = interpret_full(maps, weights, groups, geometry, chunk_pixels=100, max_cached_bytes=1)
    assert torch.equal(one_pass.labels, per_image.labels)
    torch.testing.assert_close(one_pass.js, per_image.js, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(one_pass.hidden_mean, per_image.hidden_mean, atol=1e-5, rtol=1e-5)


def test_pixel_spec_names_are_read_in_one_place():
    from dgan_al.interpreter.ensemble import parse_pixel_spec
    from dgan_al.errors import UserError
    from dgan_al.workspace.config import WorkspaceConfig

    assert parse_pixel_spec("full") == ("full", 0)
    assert parse_pixel_spec("grid:4") == ("grid", 4) and parse_pixel_spec("subset:1024") == ("subset", 1024)
    for bad in ("grid:0", "grid:", "grid:-1", "subset:x", "grid:4 ", "Grid:4", "sparse:3", ""):
        with pytest.raises(ValueError, match="grid:S"):
            parse_pixel_spec(bad)
        config = WorkspaceConfig(classes=["background", "a"])
        config.selection.score_pixels = bad
        with pytest.raises(UserError, match="score_pixels"):
            config.validate()
