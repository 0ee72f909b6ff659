"""The exact rule that lines a feature map up with the label image: bilinear upsampling, then a crop.

``LabelGeometry`` says: upsample every map bilinearly (``align_corners=False``) to the canvas, then take
the crop window. This file writes that rule out once, so that training (features at a few sampled
pixels) and inference (projections upsampled to every pixel) use the very same weights as
``F.interpolate(map, size=canvas, mode="bilinear", align_corners=False)[..., top:top+h, left:left+w]``,
without ever building the upsampled map.

PyTorch's rule along one axis, for an input of length ``n_in`` upsampled to ``n_out`` (float32, as its
CPU and CUDA kernels compute it):

    src = max((dst + 0.5) * (n_in / n_out) - 0.5, 0)
    i0  = floor(src);  i1 = min(i0 + 1, n_in - 1);  w1 = src - i0;  w0 = 1 - w1

and the 2-D value is ``w0y * (w0x * m[i0y, i0x] + w1x * m[i0y, i1x]) + w1y * (...)``.
"""

from __future__ import annotations

import torch

from dgan_al.geometry import LabelGeometry


def bilinear_taps_1d(n_in: int, n_out: int, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices and weights of output positions ``dst`` (int64 [n]) when n_in is resized to n_out.

    Returns ``(i0, i1, w1)``: int64 [n], int64 [n], float32 [n]; the value is ``(1-w1)*x[i0] + w1*x[i1]``.
    """
    scale = torch.tensor(n_in / n_out, dtype=torch.float32)
    src = ((dst.to(torch.float32) + 0.5) * scale - 0.5).clamp(min=0.0)
    i0 = src.floor().to(torch.int64).clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    w1 = src - i0.to(torch.float32)
    return i0, i1, w1


def interpolation_matrix(n_in: int, n_out: int, positions: torch.Tensor) -> torch.Tensor:
    """Dense float32 [len(positions), n_in]: the rows of the n_in -> n_out resize at output ``positions``.

    ``matrix @ x`` (x with the resized axis first) equals the bilinear resize of x along that axis, taken
    at those output indices (int64 [n], e.g. ``arange(top, top + height)`` for a crop); each row has at
    most two non-zero weights.
    """
    positions = torch.as_tensor(positions, dtype=torch.int64)
    i0, i1, w1 = bilinear_taps_1d(n_in, n_out, positions)
    matrix = torch.zeros(len(positions), n_in, dtype=torch.float32)
    rows = torch.arange(len(positions))
    matrix.index_put_((rows, i0), 1.0 - w1, accumulate=True)
    matrix.index_put_((rows, i1), w1, accumulate=True)
    return matrix


def is_selection(matrix: torch.Tensor) -> bool:
    """True when a resize matrix only picks source entries (weights 0/1, one per row): a plain crop."""
    return bool(((matrix == 0) | (matrix == 1)).all() and (matrix.sum(1) == 1).all())


def bilinear_taps_2d(
    size: tuple[int, int], ys: torch.Tensor, xs: torch.Tensor, geometry: LabelGeometry
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices and weights of the 4 source pixels of label pixels (ys, xs) in a map of ``size``.

    ys, xs: int64 [n] in label-image coordinates. Returns ``(index int64 [n, 4], weight float32 [n, 4])``
    with index = row * w + col into the map flattened to [h*w], ordered (y0x0, y0x1, y1x0, y1x1).
    """
    h, w = size
    top, left, _, _ = geometry.crop
    y0, y1, wy = bilinear_taps_1d(h, geometry.canvas[0], ys + top)
    x0, x1, wx = bilinear_taps_1d(w, geometry.canvas[1], xs + left)
    index = torch.stack([y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1], dim=1)
    weight = torch.stack([(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx], dim=1)
    return index, weight


def gather_features(
    maps: list[torch.Tensor], ys: torch.Tensor, xs: torch.Tensor, geometry: LabelGeometry
) -> torch.Tensor:
    """Concatenated features of one image at label pixels (ys, xs), exactly as upsample-crop-index.

    maps: one image's feature maps, [C_l, h_l, w_l] each (any float dtype; computed in float32).
    ys, xs: int64 [n] label-image coordinates. Returns float32 [n, sum(C_l)], equal (to float rounding)
    to ``torch.cat([F.interpolate(m[None], size=canvas, mode="bilinear")[0] for m in maps])``
    cropped and indexed at (ys, xs) -- without building any upsampled map.
    """
    ys = torch.as_tensor(ys, dtype=torch.int64)
    xs = torch.as_tensor(xs, dtype=torch.int64)
    parts = []
    for fmap in maps:
        c, h, w = fmap.shape
        index, weight = bilinear_taps_2d((h, w), ys, xs, geometry)  # [n, 4]
        flat = fmap.reshape(c, h * w)
        taps = flat[:, index.to(fmap.device)].to(torch.float32)  # [C, n, 4]
        parts.append((taps * weight.to(fmap.device)).sum(-1).t())  # [n, C]
    return torch.cat(parts, dim=1)
