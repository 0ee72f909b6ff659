"""The exact bilinear rule: gathered features equal upsample-crop-index; resize matrices equal F.interpolate."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dgan_al.geometry import LabelGeometry
from dgan_al.interpreter.bilinear import gather_features, interpolation_matrix, is_selection


def upsample_crop(maps: list[torch.Tensor], geometry: LabelGeometry) -> torch.Tensor:
    """The definition: upsample each [C, h, w] map to the canvas, concatenate, crop. -> [D, H, W]."""
    top, left, height, width = geometry.crop
    up = [F.interpolate(m[None].float(), size=geometry.canvas, mode="bilinear", align_corners=False)[0] for m in maps]
    return torch.cat(up)[:, top : top + height, left : left + width]


@st.composite
def maps_and_geometry(draw):
    canvas = (draw(st.integers(4, 40)), draw(st.integers(4, 40)))
    height = draw(st.integers(1, canvas[0]))
    width = draw(st.integers(1, canvas[1]))
    top = draw(st.integers(0, canvas[0] - height))
    left = draw(st.integers(0, canvas[1] - width))
    n_layers = draw(st.integers(1, 4))
    # native sizes below, equal to and above the canvas (downsampling follows the same rule)
    sizes = [(draw(st.integers(1, 48)), draw(st.integers(1, 48))) for _ in range(n_layers)]
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    maps = [torch.randn(draw(st.integers(1, 5)), h, w, generator=gen) for h, w in sizes]
    return maps, LabelGeometry(canvas=canvas, crop=(top, left, height, width)), seed


@settings(max_examples=40, deadline=None)
@given(maps_and_geometry())
def test_gather_equals_upsample_then_index(case):
    maps, geometry, seed = case
    height, width = geometry.size
    gen = torch.Generator().manual_seed(seed + 1)
    n = 50
    ys = torch.randint(0, height, (n,), generator=gen)
    xs = torch.randint(0, width, (n,), generator=gen)
    expected = upsample_crop(maps, geometry)[:, ys, xs].t()  # [n, D]
    got = gather_features(maps, ys, xs, geometry)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_gather_on_a_cropped_canvas_like_lsun_cars():
    # a 512x512 canvas labelled as rows 64:448 (the LSUN-car crop), scaled down 8x: canvas 64, crop rows 8:56
    geometry = LabelGeometry(canvas=(64, 64), crop=(8, 0, 48, 64))
    gen = torch.Generator().manual_seed(0)
    maps = [torch.randn(3, s, s, generator=gen) for s in (4, 8, 16, 32, 64)]
    yy, xx = torch.meshgrid(torch.arange(48), torch.arange(64), indexing="ij")
    got = gather_features(maps, yy.flatten(), xx.flatten(), geometry)  # every label pixel
    expected = upsample_crop(maps, geometry).reshape(15, -1).t()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_gather_reads_float16_maps_in_float32():
    geometry = LabelGeometry.full(16, 16)
    maps = [torch.randn(4, 4, 4).half(), torch.randn(2, 16, 16).half()]
    ys, xs = torch.arange(16), torch.arange(16).flip(0)
    got = gather_features(maps, ys, xs, geometry)
    assert got.dtype == torch.float32
    expected = upsample_crop([m.float() for m in maps], geometry)[:, ys, xs].t()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 60), st.data())
def test_interpolation_matrix_equals_interpolate_along_one_axis(n_in, n_out, data):
    start = data.draw(st.integers(0, n_out - 1))
    length = data.draw(st.integers(1, n_out - start))
    x = torch.randn(1, 3, n_in, 5)
    matrix = interpolation_matrix(n_in, n_out, torch.arange(start, start + length))  # [length, n_in]
    expected = F.interpolate(x, size=(n_out, 5), mode="bilinear", align_corners=False)[0, :, start : start + length]
    got = torch.einsum("oi,cif->cof", matrix, x[0])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert ((matrix != 0).sum(1) <= 2).all()


def test_selection_only_when_resize_is_a_crop():
    assert is_selection(interpolation_matrix(16, 16, torch.arange(3, 13)))
    assert not is_selection(interpolation_matrix(8, 16, torch.arange(16)))
    assert not is_selection(interpolation_matrix(32, 16, torch.arange(16)))  # downsampling averages two pixels
