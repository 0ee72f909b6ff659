"""The visible truth of toy-faces: parts the GAN image does not show are not labelled."""

import numpy as np
import pytest
import torch
from scipy.special import ndtri

from dgan_al.generators.protocol import sample_latents
from dgan_al.generators.toy_faces import CLASSES, load_toy_faces
from dgan_al.generators.toy_faces.classes import CLASS_ID
from dgan_al.generators.toy_faces.render import render
from dgan_al.generators.toy_faces.scene import LATENT_NAMES, RARE_LATENT_INDEX, params_from_latent, with_coordinates
from dgan_al.generators.toy_faces.visible import parts_of, presence_rates, visible_truth, without

OPEN_MOUTH = LATENT_NAMES.index("mouth open")


def _scenes_with(parts: dict[int, float], n: int = 6, seed: int = 11) -> np.ndarray:
    """n latents whose coordinates ``parts`` read as given (ndtri of u: a present rare part, an open mouth)."""
    z = sample_latents(32, n, seed=seed).numpy()
    return with_coordinates(z, {k: ndtri(u) for k, u in parts.items()})


def test_an_image_that_shows_every_part_keeps_the_renderer_truth():
    z = _scenes_with({RARE_LATENT_INDEX["glasses"]: 0.95, OPEN_MOUTH: 0.95, RARE_LATENT_INDEX["hat"]: 0.97})
    images = np.stack([render(params_from_latent(zi))[0] for zi in z])  # a "GAN" that draws the scene exactly
    truth = visible_truth(z, images)
    assert all(set(t) >= {"glasses", "hat", "teeth"} for t in truth.tests)
    assert all(t.drawn and t.pixels > 0 for tests in truth.tests for t in tests.values())
    assert np.array_equal(truth.masks, truth.renderer)
    assert all((m == CLASS_ID["glasses"]).any() and (m == CLASS_ID["teeth"]).any() for m in truth.masks)


@pytest.mark.parametrize("hidden", [["glasses"], ["teeth"], ["glasses", "teeth"]])
def test_a_part_the_image_does_not_show_takes_the_labels_of_the_scene_without_it(hidden):
    z = _scenes_with({RARE_LATENT_INDEX["glasses"]: 0.95, OPEN_MOUTH: 0.95})
    scenes = [params_from_latent(zi) for zi in z]
    images = np.stack([render(without(s, hidden))[0] for s in scenes])  # a GAN that leaves these parts out
    truth = visible_truth(z, images)
    for i, scene in enumerate(scenes):
        assert truth.hidden(i) == [p for p in ("glasses", "teeth") if p in hidden]
        assert np.array_equal(truth.masks[i], render(without(scene, hidden))[1])
        # it differs from the renderer truth only inside the hidden parts' regions
        region = np.zeros((128, 128), dtype=bool)
        for part in hidden:
            region |= render(without(scene, [part]))[1] != truth.renderer[i]
        changed = truth.masks[i] != truth.renderer[i]
        assert changed.any() and not (changed & ~region).any()
    names = {"glasses": "glasses", "teeth": "teeth"}
    for part in hidden:
        assert not (truth.masks == CLASS_ID[names[part]]).any()


def test_the_shipped_generator_visible_truth_differs_only_where_a_part_is_not_drawn():
    gen = load_toy_faces()
    z = torch.from_numpy(_scenes_with({RARE_LATENT_INDEX["hat"]: 0.97, OPEN_MOUTH: 0.97}, n=8, seed=3)).float()
    images = gen.synthesize(z).images.numpy()
    truth = visible_truth(z.numpy(), images)
    assert np.array_equal(gen.oracle_mask(z, images=images), truth.masks)
    assert np.array_equal(gen.oracle_mask(z, truth="renderer"), truth.renderer)
    for i in range(len(z)):
        scene = params_from_latent(z[i].numpy().astype(np.float64))
        assert set(truth.tests[i]) == set(parts_of(scene)) >= {"hat", "teeth"}
        hidden = truth.hidden(i)
        region = np.zeros((128, 128), dtype=bool)
        for part in hidden:
            region |= render(without(scene, [part]))[1] != truth.renderer[i]
        assert not ((truth.masks[i] != truth.renderer[i]) & ~region).any()
        if not hidden:
            assert np.array_equal(truth.masks[i], truth.renderer[i])
    # the shipped weights never draw the open mouth (toy_faces_report: teeth 0% drawn)
    assert sum("teeth" in truth.hidden(i) for i in range(len(z))) >= 6


def test_presence_rates_under_both_truths():
    rates = presence_rates(load_toy_faces(), n=40, seed=1)
    assert set(rates) == set(CLASSES)
    for c, r in rates.items():
        assert 0 <= r["visible"] <= 1 and 0 <= r["renderer"] <= 1
        if c in ("glasses", "hat", "beard", "earring", "teeth"):
            assert r["visible"] <= r["renderer"]  # only the thresholded parts can disappear
    assert rates["background"] == {"visible": 1.0, "renderer": 1.0}
