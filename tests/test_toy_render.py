"""The toy-faces renderer: determinism, the block average against a plain reference, mask/image
alignment, class presence rates, the latent layout."""

import dataclasses

import numpy as np
import pytest
import scipy.ndimage
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from dgan_al.generators.protocol import sample_latents
from dgan_al.generators.toy_faces import render as R
from dgan_al.generators.toy_faces.classes import CLASS_ID, CLASSES, PALETTE, RARE_CLASSES
from dgan_al.generators.toy_faces.scene import Z_DIM, normalize_latent, params_from_latent, with_coordinates
from dgan_al.generators.toy_faces.sheet import contact_sheet, overlay

COMMON = ("skin", "hair", "eye", "eyebrow", "nose", "mouth", "ear", "neck", "clothes")


def latents(n, seed):
    return sample_latents(Z_DIM, n, seed=seed).numpy()


@pytest.fixture(scope="module")
def rendered_500():
    z = latents(500, seed=11)
    return R.render_latents(z)


def with_all_rare_parts(z):
    """z [Z_DIM] with glasses, hat, beard, earrings on and the mouth open (each coordinate reads 2.0)."""
    return with_coordinates(z, {27: 2.0, 28: 2.0, 29: 2.0, 30: 2.0, 17: 2.0})[0].astype(z.dtype)


def test_same_latent_gives_identical_arrays_alone_or_in_any_batch():
    z = latents(6, seed=3)
    rgb, mask = R.render_latents(z)
    rgb2, mask2 = R.render_latents(z)
    assert rgb.dtype == np.uint8 and mask.dtype == np.uint8
    assert rgb.shape == (6, 128, 128, 3) and mask.shape == (6, 128, 128)
    np.testing.assert_array_equal(rgb, rgb2)
    np.testing.assert_array_equal(mask, mask2)
    rgb_rev, mask_rev = R.render_latents(z[::-1])
    np.testing.assert_array_equal(rgb_rev, rgb[::-1])
    np.testing.assert_array_equal(mask_rev, mask[::-1])
    for i in range(len(z)):
        one_rgb, one_mask = R.render(params_from_latent(z[i]))
        np.testing.assert_array_equal(one_rgb, rgb[i])
        np.testing.assert_array_equal(one_mask, mask[i])
    np.testing.assert_array_equal(R.oracle_mask(z), mask)
    assert params_from_latent(z[0]) == params_from_latent(z[0].copy())
    assert len({params_from_latent(zi) for zi in z}) == len(z)  # different latents, different scenes


def reference_render(scene):
    """Plain version: colour every supersampled pixel, box-average 4x4 blocks; mask = scipy's mode."""
    materials = R.material_image(scene)  # [512, 512]
    classes = R.MATERIAL_CLASS[materials]
    blocks = classes.reshape(128, 4, 128, 4).transpose(0, 2, 1, 3).reshape(128, 128, 16)
    mask = scipy.stats.mode(blocks, axis=-1).mode  # ties -> smallest class id

    # the smooth fields are evaluated at 128-px pixel centres: repeat them over each 4x4 block
    light = np.repeat(np.repeat(R.shading_field(scene), 4, 0), 4, 1)  # [512, 512]
    background = np.repeat(np.repeat(R.background_field(scene), 4, 0), 4, 1)  # [512, 512, 3]
    colors = R.material_colors(scene)
    hi = colors[materials] * (1 + R.MATERIAL_SHADING[materials] * (light - 1))[..., None]  # [512, 512, 3]
    hi[materials == 0] = background[materials == 0]
    rgb = hi.reshape(128, 4, 128, 4, 3).mean(axis=(1, 3))
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8), mask.astype(np.uint8)


@pytest.mark.parametrize("which", [0, 1, 2])
def test_block_counts_fast_path_matches_plain_reference(which):
    z = latents(3, seed=21)[which]
    if which == 1:
        z = with_all_rare_parts(z)
    scene = params_from_latent(z)
    rgb, mask = R.render(scene)
    ref_rgb, ref_mask = reference_render(scene)
    np.testing.assert_array_equal(mask, ref_mask)
    assert np.abs(rgb.astype(int) - ref_rgb.astype(int)).max() <= 1  # float summation order only


def test_mask_of_a_block_is_its_majority_and_ties_go_to_the_lower_class():
    materials = np.zeros((512, 512), dtype=np.uint8)
    materials[0:4, 0:4] = R.M["skin"]  # block (0, 0): 16 skin
    materials[0:2, 4:8] = R.M["hair"]  # block (0, 1): 8 hair, 8 background -> background (id 0 < 2)
    materials[0:3, 8:12] = R.M["hair"]  # block (0, 2): 12 hair
    materials[4:6, 0:4] = R.M["iris"]  # block (1, 0): 8 eye as iris + pupil, 8 skin -> skin (1 < 3)
    materials[4:6, 0:2] = R.M["pupil"]
    materials[6:8, 0:4] = R.M["skin"]
    materials[4:7, 4:8] = R.M["pupil"]  # block (1, 1): 4 + 8 eye from two materials, 4 background -> eye
    materials[4:6, 4:8] = R.M["sclera"]
    counts = R.block_material_counts(materials)  # [N_MATERIALS, 16384]
    assert counts.shape == (R.N_MATERIALS, 128 * 128)
    assert (counts.sum(axis=0) == 16).all()
    _, mask = R.downsample(materials, params_from_latent(np.zeros(Z_DIM)))
    assert mask[0, 0] == CLASS_ID["skin"]
    assert mask[0, 1] == CLASS_ID["background"]
    assert mask[0, 2] == CLASS_ID["hair"]
    assert mask[1, 0] == CLASS_ID["skin"]
    assert mask[1, 1] == CLASS_ID["eye"]
    assert (mask[2:] == 0).all()


def forward_differences(rgb, mask):
    """Edge strength between each pixel and its right/lower neighbour, and where the mask changes."""
    img = rgb.astype(np.float32)
    edge = np.abs(np.diff(img, axis=1))[:-1].sum(-1) + np.abs(np.diff(img, axis=0))[:, :-1].sum(-1)  # [127,127]
    boundary = (np.diff(mask.astype(int), axis=1)[:-1] != 0) | (np.diff(mask.astype(int), axis=0)[:, :-1] != 0)
    return edge, boundary


def test_mask_boundaries_sit_on_image_edges_and_not_one_pixel_off():
    rgb, mask = R.render_latents(latents(12, seed=5))
    scores = {}
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            total, n = 0.0, 0
            for i in range(len(rgb)):
                edge, boundary = forward_differences(rgb[i], mask[i])
                shifted = np.roll(boundary, (dy, dx), axis=(0, 1))[3:-3, 3:-3]
                total += edge[3:-3, 3:-3][shifted].sum()
                n += shifted.sum()
            scores[(dy, dx)] = total / n
    best_elsewhere = max(v for k, v in scores.items() if k != (0, 0))
    assert scores[(0, 0)] > 1.3 * best_elsewhere, scores
    # and where the mask does not change, the image is mostly flat (parts are not labelled by colour
    # detail: inner materials such as pupils and hat bands make a few interior edges)
    inside, across = [], []
    for i in range(len(rgb)):
        edge, boundary = forward_differences(rgb[i], mask[i])
        inside.append(edge[~boundary])
        across.append(edge[boundary])
    assert 5 * np.median(np.concatenate(inside)) < np.median(np.concatenate(across))


def test_pixels_deep_inside_a_part_have_that_parts_colour():
    z = latents(8, seed=9)
    z[3] = with_all_rare_parts(z[3])
    checked = {"clothes": 0, "hair": 0}
    for zi in z:
        scene = params_from_latent(zi)
        rgb, mask = R.render(scene)
        light = R.shading_field(scene)
        colors = R.material_colors(scene)
        deep = lambda name: scipy.ndimage.binary_erosion(mask == CLASS_ID[name], np.ones((5, 5)), border_value=1)

        skin = deep("skin")
        assert skin.sum() > 200
        expected = np.clip(colors[R.M["skin"]] * light[skin][:, None], 0, 255)
        assert np.abs(rgb[skin] - expected).max() <= 1.0

        background = deep("background")
        assert background.sum() > 2000
        assert np.abs(rgb[background] - R.background_field(scene)[background]).max() <= 1.0

        # clothes and hair have two paints each (collar, sheen): deep inside, a pixel is a mix of the two
        for name, paints, shading in (("clothes", ("clothes", "collar"), 0.6), ("hair", ("hair", "hair_sheen"), 1.0)):
            inside = deep(name)
            checked[name] += inside.sum()
            if not inside.any():
                continue
            lit = 1 + shading * (light[inside] - 1)[:, None]  # [P, 1]
            a, b = (colors[R.M[m]] * lit for m in paints)  # [P, 3] each
            t = np.clip(((rgb[inside] - a) * (b - a)).sum(-1) / ((b - a) ** 2).sum(-1), 0, 1)[:, None]
            assert np.abs(rgb[inside] - np.clip(a + t * (b - a), 0, 255)).max() <= 1.5, name
    assert min(checked.values()) > 1000


def test_background_is_low_frequency():
    for zi in latents(20, seed=13):
        field = R.background_field(params_from_latent(zi))  # [128, 128, 3]
        assert np.abs(np.diff(field, axis=0)).max() < 6 and np.abs(np.diff(field, axis=1)).max() < 6


def test_class_presence_rates_over_500_latents(rendered_500):
    _, masks = rendered_500
    assert masks.max() < len(CLASSES)
    present = np.stack([(masks == c).any(axis=(1, 2)) for c in range(len(CLASSES))], 1).mean(0)  # [15]
    rate = dict(zip(CLASSES, present))
    for name in RARE_CLASSES:
        assert 0.03 <= rate[name] <= 0.25, (name, rate[name])
    assert 0.05 <= rate["teeth"] <= 0.40, rate["teeth"]
    for name in COMMON:
        assert rate[name] >= 0.85, (name, rate[name])
    assert rate["background"] == 1.0


def test_rare_parts_are_big_enough_to_annotate(rendered_500):
    _, masks = rendered_500
    for name in RARE_CLASSES + ("teeth", "eye", "nose", "mouth"):
        areas = (masks == CLASS_ID[name]).sum(axis=(1, 2))
        assert np.median(areas[areas > 0]) >= 15, name


def test_mean_latent_is_a_complete_plain_face():
    rgb, mask = R.render_latents(np.zeros((1, Z_DIM), dtype=np.float32))
    mask = mask[0]
    for name in COMMON:
        assert (mask == CLASS_ID[name]).sum() >= 20, name
    for name in RARE_CLASSES + ("teeth",):
        assert not (mask == CLASS_ID[name]).any(), name
    for name in ("eye", "ear", "eyebrow"):
        _, n = scipy.ndimage.label(mask == CLASS_ID[name])
        assert n == 2, name  # a pair, both visible
    # roughly centred and upright: the eyes are level and either side of the image centre
    rows, cols = np.nonzero(mask == CLASS_ID["eye"])
    assert abs(cols.mean() - 64) < 4
    left, right = rows[cols < 64].mean(), rows[cols >= 64].mean()
    assert abs(left - right) < 1.0


def test_a_mirror_symmetric_scene_gives_a_mirror_symmetric_mask():
    # z = 0 is centred (x = 64), upright, facing front, with the light from straight above
    scene = params_from_latent(np.zeros(Z_DIM))
    assert scene.center[0] == 64 and scene.roll == 0 and scene.yaw == 0 and scene.parting == 0
    _, mask = R.render(scene)
    asymmetric = (mask != mask[:, ::-1]).sum()
    assert asymmetric < 30
    # half a supersampled pixel to the side is enough to see: the rasterisation has no bias to one side
    _, shifted = R.render(dataclasses.replace(scene, center=(64.125, scene.center[1])))
    assert (shifted != shifted[:, ::-1]).sum() > 3 * asymmetric


@pytest.mark.parametrize("coordinate, name", [(27, "glasses"), (28, "hat"), (29, "beard"), (30, "earring"),
                                              (17, "teeth")])
def test_each_rare_part_switches_on_with_its_own_coordinate(coordinate, name):
    z = np.zeros((3, Z_DIM), dtype=np.float32)
    z[1, coordinate] = 1.5
    z[2, coordinate] = -1.5
    _, masks = R.render_latents(z)
    has = (masks == CLASS_ID[name]).any(axis=(1, 2))
    assert list(has) == [False, True, False]


def test_every_latent_coordinate_changes_the_image():
    z = np.zeros((Z_DIM + 1, Z_DIM), dtype=np.float32)
    z[np.arange(1, Z_DIM + 1), np.arange(Z_DIM)] = 1.5
    rgb, _ = R.render_latents(z)
    for i in range(Z_DIM):
        assert np.abs(rgb[i + 1].astype(int) - rgb[0]).max() > 10, f"coordinate {i} does nothing"


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(-6, 6), min_size=Z_DIM, max_size=Z_DIM))
def test_any_latent_renders_a_face(values):
    z = np.array(values, dtype=np.float32)
    rgb, mask = R.render(params_from_latent(z))
    assert rgb.shape == (128, 128, 3) and mask.shape == (128, 128)
    assert mask.max() < len(CLASSES)
    assert (mask == CLASS_ID["skin"]).sum() > 300
    assert (mask == CLASS_ID["background"]).sum() > 2000


def test_bad_latents_are_refused():
    with pytest.raises(ValueError, match="shape"):
        params_from_latent(np.zeros(Z_DIM + 1))
    with pytest.raises(ValueError, match="finite"):
        params_from_latent(np.full(Z_DIM, np.nan))
    with pytest.raises(ValueError, match="shape"):
        R.render_latents(np.zeros(Z_DIM))


def test_contact_sheet_puts_each_image_beside_its_overlay():
    rgb, mask = R.render_latents(latents(5, seed=2))
    sheet = contact_sheet(rgb, mask, columns=2, zoom=2, gap=4)
    assert sheet.shape == (3 * (256 + 4) + 4, 2 * (2 * 256 + 8) + 4, 3)
    # tile 3 is row 1, column 1
    top, left = 4 + 260, 4 + 520
    np.testing.assert_array_equal(sheet[top:top + 256:2, left:left + 256:2], rgb[3])
    np.testing.assert_array_equal(sheet[top:top + 256:2, left + 258:left + 514:2], overlay(rgb[3], mask[3]))
    assert PALETTE.shape == (len(CLASSES), 3) and (PALETTE[0] == 0).all()
    assert len({tuple(c) for c in PALETTE}) == len(CLASSES)
