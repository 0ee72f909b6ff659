"""Fast inference: the first layer by linearity, the rest of the MLP in pixel chunks.

The reference upsamples every feature map to full resolution, concatenates them into a [D, H, W] tensor
(D ~ 5-6k) and runs each member's first Linear on every pixel: D x M*h1 multiply-adds per pixel. But
bilinear upsampling and the first Linear are both linear, so they commute:

    W1 . upsample(concat(maps)) = sum over layers l of upsample(W1[rows of l] . map_l)

Projecting each layer at its native resolution (layers of one resolution together: a "group") costs
C_l x M*h1 per *native* pixel, and what gets upsampled has M*h1 = 1280 channels, not D.

The upsampling is written out with exact bilinear matrices (``bilinear.interpolation_matrix``),
separably: columns first (``U_x @ P``), then rows (``U_y @ Q``), one band of output rows at a time, so
the full-resolution [M*h1, H, W] tensor never exists; both passes multiply small blocks of output
columns / rows by just the source window they read, so the dense matrices cost little more than the
two-tap sums they stand for. A group is handled by how it relates to the label image:

- ``identity``: the map is at canvas resolution (upsampling is a plain crop): each band of it is
  projected straight into the band's buffer (bias included, in the same pass).
- ``cached``: the map is at most 1/4 of the canvas height: projected and column-upsampled once per
  pass of images ([B, h, W, M*h1], small), then row-upsampled into each band.
- ``banded``: in between (e.g. half resolution): per band, only the source rows that band needs are
  projected and column-upsampled.

Then per band: ReLU, Linear 2 (BatchNorm folded in), ReLU, Linear 3, for all members at once (``bmm``),
log-softmax over classes laid out as [M, K, pixels] (a log-softmax over a short last axis is ~10x
slower on a CPU), JS divergence and majority vote. Peak memory is about ``chunk_pixels * M*h1 * 4``
bytes (times a small constant) for the band, plus ``B * sum(h of cached groups) * W * M*h1 * 4`` bytes
per pass of images (``max_cached_bytes``). The default band on a CPU (4096 pixels, 21 MB at M*h1 = 1280)
stays under glibc's mmap threshold, so its buffers are reused instead of page-faulted in at every call;
on a GPU it is 2^19 pixels, so that a batch takes a few bands rather than hundreds of kernel launches.

For image scores on a set of pixels: ``interpret_grid`` (a coarse grid: separable, per group either
project-then-resize or resize-then-project, whichever costs less) and ``interpret_pixels`` (any subset:
gather-then-project the maps that have more native pixels than the subset has pixels,
project-then-gather the others).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dgan_al.geometry import LabelGeometry
from dgan_al.interpreter.bilinear import bilinear_taps_1d, bilinear_taps_2d, interpolation_matrix, is_selection
from dgan_al.interpreter.keypoints import KeypointPrediction, summarise_heatmaps
from dgan_al.interpreter.network import FoldedWeights
from dgan_al.interpreter.uncertainty import js_divergence, majority_vote

COLUMN_BLOCK = 32  # output columns per matmul in the column pass (bounds the dense work per column)
ROW_BLOCK = 8  # output rows per matmul in the row pass (likewise)

# Label pixels per band when the caller gives none. On a CPU a small band stays in cache and under glibc's
# mmap threshold. On a GPU every band costs dozens of kernel launches, and with 4096 pixels a 512px batch
# of 16 was cut into one-row bands: 10 img/s on an H200, launch-bound. 2^19 pixels is about 2.7 GB of
# first-layer activations at M*h1 = 1280, small beside a GPU's memory.
CPU_CHUNK_PIXELS = 1 << 12
CUDA_CHUNK_PIXELS = 1 << 19


def default_chunk_pixels(device: torch.device | str) -> int:
    """The band size ``interpret_*`` use when ``chunk_pixels`` is None, by the weights' device."""
    return CPU_CHUNK_PIXELS if torch.device(device).type == "cpu" else CUDA_CHUNK_PIXELS


@dataclass
class LayerGroup:
    """Feature layers of one native size, with their slice of the first Linear and resize matrices."""

    size: tuple[int, int]  # (h, w) native
    layers: list[int]  # indices into the feature list
    w1: torch.Tensor  # [C_g, M*h1] rows of the folded first layer, the group's layers in order
    rows: torch.Tensor  # [H, h] bilinear rows of the label window
    cols: torch.Tensor  # [W, w] bilinear columns of the label window
    mode: str  # "identity" | "cached" | "banded"
    offset: tuple[int, int]  # (row, col) of label pixel (0, 0) in the native map (used by "identity")
    row_taps: tuple[list[int], list[int]]  # (i0, i1) source rows of each label row (host-side lists)
    col_taps: tuple[list[int], list[int]]  # (i0, i1) source columns of each label column

    def row_support(self, r0: int, r1: int) -> tuple[int, int]:
        """[a, b): the native rows that label rows r0..r1-1 read."""
        return min(self.row_taps[0][r0:r1]), max(self.row_taps[1][r0:r1]) + 1

    def col_support(self, c0: int, c1: int) -> tuple[int, int]:
        return min(self.col_taps[0][c0:c1]), max(self.col_taps[1][c0:c1]) + 1


def plan_layer_groups(
    weights: FoldedWeights,
    feature_channels: list[int],
    feature_sizes: list[tuple[int, int]],
    geometry: LabelGeometry,
) -> list[LayerGroup]:
    """Group layers by native size and decide how each group is upsampled (see the module docstring)."""
    (canvas_h, canvas_w), (top, left, height, width) = geometry.canvas, geometry.crop
    starts = [sum(feature_channels[:i]) for i in range(len(feature_channels))]
    by_size: dict[tuple[int, int], list[int]] = {}
    for index, size in enumerate(feature_sizes):
        by_size.setdefault((int(size[0]), int(size[1])), []).append(index)
    device = weights.w1.device
    groups = []
    for (h, w), layers in sorted(by_size.items()):
        rows = interpolation_matrix(h, canvas_h, torch.arange(top, top + height))
        cols = interpolation_matrix(w, canvas_w, torch.arange(left, left + width))
        if is_selection(rows) and is_selection(cols):
            mode = "identity"
        elif 4 * h <= canvas_h:
            mode = "cached"
        else:
            mode = "banded"
        w1 = torch.cat([weights.w1[starts[i] : starts[i] + feature_channels[i]] for i in layers])
        offset = (int(rows[0].argmax()), int(cols[0].argmax()))
        row_i0, row_i1, _ = bilinear_taps_1d(h, canvas_h, torch.arange(top, top + height))
        col_i0, col_i1, _ = bilinear_taps_1d(w, canvas_w, torch.arange(left, left + width))
        groups.append(LayerGroup(
            (h, w), layers, w1.contiguous(), rows.to(device), cols.to(device), mode, offset,
            (row_i0.tolist(), row_i1.tolist()), (col_i0.tolist(), col_i1.tolist()),
        ))
    return sorted(groups, key=lambda g: g.mode != "identity")  # identity first: it writes the bias too


def _project(maps: list[torch.Tensor], w1: torch.Tensor) -> torch.Tensor:
    """One group's maps [B, C_l, h, w] (concatenated over C) times w1 [C_g, K] -> [B, h, w, K] float32."""
    x = torch.cat(maps, dim=1) if len(maps) > 1 else maps[0]
    b, c, h, w = x.shape
    x = x.to(device=w1.device, dtype=torch.float32).reshape(b, c, h * w).transpose(1, 2)  # [B, hw, C]
    return torch.matmul(x, w1).reshape(b, h, w, -1)


def _resize_columns(projected: torch.Tensor, group: LayerGroup) -> torch.Tensor:
    """[B, h, w, K] -> [B, h, W, K]: the bilinear resize along w, in blocks of output columns."""
    b, h, w, k = projected.shape
    x = projected.reshape(b * h, w, k)
    n_out = group.cols.shape[0]
    if w <= COLUMN_BLOCK:
        return torch.matmul(group.cols, x).reshape(b, h, n_out, k)
    out = x.new_empty(b * h, n_out, k)
    for start in range(0, n_out, COLUMN_BLOCK):
        end = min(n_out, start + COLUMN_BLOCK)
        a, z = group.col_support(start, end)
        torch.matmul(group.cols[start:end, a:z], x[:, a:z], out=out[:, start:end])
    return out.reshape(b, h, n_out, k)


def _tail(hidden: torch.Tensor, weights: FoldedWeights, heat_out: list | None = None) -> torch.Tensor:
    """First-layer pre-activations (bias included) [P, M*h1] -> log-probabilities [M, K, P].

    ``hidden`` is ReLU'd in place. With keypoint heads (``weights.n_heat``), their outputs [M, n_heat, P]
    are appended to ``heat_out`` (if given) and the log-softmax covers the class logits only.
    """
    m, h1 = weights.n_members, weights.w2.shape[1]
    x = hidden.relu_().reshape(-1, m, h1).transpose(0, 1)  # [M, P, h1]
    z = torch.baddbmm(weights.b2.unsqueeze(1), x, weights.w2).relu_()  # [M, P, h2]
    logits = torch.baddbmm(weights.b3.unsqueeze(2), weights.w3.transpose(1, 2), z.transpose(1, 2))  # [M, K, P]
    if weights.n_heat:
        n_classes = weights.n_classes
        if heat_out is not None:
            heat_out.append(logits[:, n_classes:])
        logits = logits[:, :n_classes]
    return torch.log_softmax(logits, dim=1)


@dataclass
class Interpretation:
    """Per-pixel results of ``interpret_full`` / ``interpret_pixels``."""

    labels: torch.Tensor  # int64 [B, ...] majority vote
    js: torch.Tensor  # float32 [B, ...] JS divergence, nats
    probabilities: torch.Tensor | None  # float32 [B, K, ...] mean over members, if asked for
    hidden_mean: torch.Tensor  # float32 [B, M*h1] mean over the pixels of ReLU(first layer)
    keypoints: object = None  # ``keypoints.KeypointPrediction`` from the heads (interpret_full, n_heat > 0)
    member_heat: torch.Tensor | None = None  # float32 [M, n_heat, B, p] heads at the pixels (grid / pixels, if asked)


def _band_rows(chunk_pixels: int, batch: int, width: int) -> int:
    return max(1, chunk_pixels // max(1, batch * width))


@torch.no_grad()
def interpret_full(
    maps: list[torch.Tensor],
    weights: FoldedWeights,
    groups: list[LayerGroup],
    geometry: LabelGeometry,
    chunk_pixels: int | None = None,
    return_probabilities: bool = False,
    max_cached_bytes: int = 1 << 30,
    keypoint_names: list[str] | None = None,
    return_heatmaps: bool = False,
) -> Interpretation:
    """Labels, JS and (optionally) mean probabilities at every label pixel of a batch of images.

    maps: [B, C_l, h_l, w_l] per layer, any float dtype, any device (moved to the weights' device).
    Works in bands of about ``chunk_pixels`` label pixels (all images of a pass together), and in
    passes of as many images as keep the cached low-resolution projections under ``max_cached_bytes``.
    With keypoint heads (``weights.n_heat``) the same bands also give the members' heatmaps, kept for
    one pass of images (counted in ``max_cached_bytes``) and reduced to ``out.keypoints`` (peaks,
    confidence, spread; the averaged heatmaps too if ``return_heatmaps``).
    """
    device = weights.w1.device
    chunk_pixels = chunk_pixels if chunk_pixels is not None else default_chunk_pixels(device)
    batch = maps[0].shape[0]
    height, width = geometry.size
    k_hidden, n_classes = weights.w1.shape[1], weights.n_classes
    out = Interpretation(
        labels=torch.empty(batch, height, width, dtype=torch.int64, device=device),
        js=torch.empty(batch, height, width, dtype=torch.float32, device=device),
        probabilities=torch.empty(batch, n_classes, height, width, dtype=torch.float32, device=device)
        if return_probabilities else None,
        hidden_mean=torch.empty(batch, k_hidden, dtype=torch.float32, device=device),
    )
    cached_per_image = sum(g.size[0] * width * k_hidden * 4 for g in groups if g.mode == "cached")
    cached_per_image += weights.n_members * weights.n_heat * height * width * 4  # the members' heatmaps
    per_pass = max(1, max_cached_bytes // max(1, cached_per_image))
    parts = []
    for b0 in range(0, batch, per_pass):
        b1 = min(batch, b0 + per_pass)
        heat = _interpret_pass([m[b0:b1] for m in maps], weights, groups, geometry, chunk_pixels, out, b0)
        if heat is not None:
            parts.append(summarise_heatmaps(heat, keypoint_names or [], return_heatmaps))
            del heat
    if parts:
        out.keypoints = KeypointPrediction(
            names=parts[0].names,
            positions=torch.cat([p.positions for p in parts]),
            confidence=torch.cat([p.confidence for p in parts]),
            spread=torch.cat([p.spread for p in parts]),
            heatmaps=torch.cat([p.heatmaps for p in parts]) if return_heatmaps else None,
        )
    return out


def _interpret_pass(maps, weights, groups, geometry, chunk_pixels, out: Interpretation, b0: int):
    """``interpret_full`` for images b0 .. b0+B-1, written into ``out``.

    Returns the members' heatmaps [M, n_heat, B, H, W] when the weights have keypoint heads, else None.
    """
    device = weights.w1.device
    batch = maps[0].shape[0]
    height, width = geometry.size
    k_hidden, n_classes = weights.w1.shape[1], weights.n_classes
    images = slice(b0, b0 + batch)
    hidden_sum = torch.zeros(batch, k_hidden, dtype=torch.float32, device=device)
    member_heat = None
    if weights.n_heat:
        member_heat = torch.empty(weights.n_members, weights.n_heat, batch, height, width, device=device)
    heat_out = [] if weights.n_heat else None

    cached = {}  # group index -> [B, h, W*K] projected and column-upsampled
    for gi, group in enumerate(groups):
        if group.mode == "cached":
            projected = _project([maps[i] for i in group.layers], group.w1)
            cached[gi] = _resize_columns(projected, group).reshape(batch, group.size[0], width * k_hidden)
            del projected

    band = _band_rows(chunk_pixels, batch, width)
    buffer = torch.empty(batch * min(band, height) * width * k_hidden, device=device)  # reused by every band
    for r0 in range(0, height, band):
        r1 = min(height, r0 + band)
        rows = r1 - r0
        hidden = buffer[: batch * rows * width * k_hidden].view(batch, rows * width, k_hidden)  # [B, r*W, K]
        has_bias = False  # the first identity group writes bias + its projection in one pass
        for gi, group in enumerate(groups):
            if group.mode == "identity":
                y0, x0 = group.offset
                x = torch.cat([maps[i][:, :, y0 + r0 : y0 + r1, x0 : x0 + width] for i in group.layers], dim=1)
                x = x.to(device=device, dtype=torch.float32).reshape(batch, -1, rows * width).transpose(1, 2)
                w1 = group.w1.expand(batch, *group.w1.shape)
                if has_bias:
                    hidden.baddbmm_(x, w1)
                else:
                    torch.baddbmm(weights.b1, x, w1, out=hidden)
                    has_bias = True
                continue
            if not has_bias:
                hidden.copy_(weights.b1)
                has_bias = True
            a, z = group.row_support(r0, r1)
            if group.mode == "cached":
                source, first = cached[gi], 0  # [B, h, W*K]
            else:  # banded: project and column-upsample just the source rows [a, z)
                projected = _project([maps[i][:, :, a:z] for i in group.layers], group.w1)
                source, first = _resize_columns(projected, group).reshape(batch, z - a, width * k_hidden), a
            band_rows = hidden.view(batch, rows, width * k_hidden)
            for s0 in range(r0, r1, ROW_BLOCK):  # small row blocks keep each block's source window small
                s1 = min(r1, s0 + ROW_BLOCK)
                a, z = group.row_support(s0, s1)
                band_rows[:, s0 - r0 : s1 - r0].baddbmm_(
                    group.rows[s0:s1, a:z].expand(batch, s1 - s0, z - a), source[:, a - first : z - first]
                )
        log_probs = _tail(hidden.view(-1, k_hidden), weights, heat_out)  # [M, K, B*r*W]; hidden is now ReLU'd
        if heat_out:
            member_heat[:, :, :, r0:r1] = heat_out.pop().view(weights.n_members, weights.n_heat, batch, rows, width)
        hidden_sum += hidden.sum(1)
        out.js[images, r0:r1] = js_divergence(log_probs).view(batch, rows, width)
        out.labels[images, r0:r1] = majority_vote(log_probs.max(1).indices, n_classes).view(batch, rows, width)
        if out.probabilities is not None:
            mean_p = log_probs.exp().mean(0).view(n_classes, batch, rows, width)
            out.probabilities[images, :, r0:r1] = mean_p.transpose(0, 1)
    out.hidden_mean[images] = hidden_sum / float(height * width)
    return member_heat


def _bilinear_rows(source: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """sum_t weight[:, t] * source[:, index[:, t]]: source [B, N, F], index/weight [p, 4] -> [B, p, F]."""
    out = source[:, index[:, 0]] * weight[:, 0, None]
    for tap in range(1, index.shape[1]):
        out.addcmul_(source[:, index[:, tap]], weight[:, tap, None])
    return out


def _finish(hidden: torch.Tensor, weights: FoldedWeights,
            heat_out: list | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tail of [B, p, K] first-layer pre-activations -> (labels [B, p], js [B, p], ReLU'd hidden sum [B, K]);
    keypoint heads' outputs, if ``heat_out`` is a list, appended to it as [M, n_heat, B, p]."""
    batch, p, k_hidden = hidden.shape
    heads = [] if heat_out is not None and weights.n_heat else None
    log_probs = _tail(hidden.view(-1, k_hidden), weights, heads)  # [M, K, B*p]; hidden is ReLU'd in place
    if heads:
        heat_out.append(heads[0].reshape(weights.n_members, weights.n_heat, batch, p))
    js = js_divergence(log_probs).view(batch, p)
    labels = majority_vote(log_probs.max(1).indices, weights.n_classes).view(batch, p)
    return labels, js, hidden.sum(1)


@torch.no_grad()
def interpret_pixels(
    maps: list[torch.Tensor],
    ys: torch.Tensor,
    xs: torch.Tensor,
    weights: FoldedWeights,
    groups: list[LayerGroup],
    geometry: LabelGeometry,
    chunk_pixels: int | None = None,
    heat: bool = False,
) -> Interpretation:
    """Labels and JS at label pixels (ys, xs) (int64 [n], the same for every image) of a batch.

    Each group is either projected at native resolution and the projection gathered at the pixels (when
    it has fewer native pixels than the set), or gathered at the pixels and then projected. Returns
    labels / js of shape [B, n]; ``hidden_mean`` is the mean over these pixels; with ``heat`` (and keypoint
    heads) ``member_heat`` [M, n_heat, B, n].
    """
    device = weights.w1.device
    chunk_pixels = chunk_pixels if chunk_pixels is not None else default_chunk_pixels(device)
    batch = maps[0].shape[0]
    n = int(ys.shape[0])
    k_hidden = weights.w1.shape[1]
    ys, xs = ys.to(torch.int64), xs.to(torch.int64)
    sources = {}  # group index -> ("projected", [B, h*w, K]) or ("maps", [B, h*w, C_g]), channels last
    for gi, g in enumerate(groups):
        h, w = g.size
        if h * w <= n:
            sources[gi] = ("projected", _project([maps[i] for i in g.layers], g.w1).reshape(batch, h * w, k_hidden))
        else:
            x = torch.cat([maps[i] for i in g.layers], dim=1) if len(g.layers) > 1 else maps[g.layers[0]]
            x = x.to(device=device, dtype=torch.float32).reshape(batch, x.shape[1], h * w)
            sources[gi] = ("maps", x.transpose(1, 2).contiguous())
    labels = torch.empty(batch, n, dtype=torch.int64, device=device)
    js = torch.empty(batch, n, dtype=torch.float32, device=device)
    hidden_sum = torch.zeros(batch, k_hidden, dtype=torch.float32, device=device)
    step = max(1, chunk_pixels // batch)
    heat_parts = [] if heat else None
    for p0 in range(0, n, step):
        p1 = min(n, p0 + step)
        hidden = torch.empty(batch, p1 - p0, k_hidden, device=device).copy_(weights.b1)  # [B, p, K]
        for gi, group in enumerate(groups):
            index, weight = bilinear_taps_2d(group.size, ys[p0:p1], xs[p0:p1], geometry)  # [p, 4]
            kind, source = sources[gi]
            gathered = _bilinear_rows(source, index.to(device), weight.to(device))
            if kind == "projected":
                hidden += gathered
            else:
                hidden.baddbmm_(gathered, group.w1.expand(batch, *group.w1.shape))
        labels[:, p0:p1], js[:, p0:p1], chunk_sum = _finish(hidden, weights, heat_parts)
        hidden_sum += chunk_sum
    member_heat = torch.cat(heat_parts, dim=3) if heat_parts else None
    return Interpretation(labels, js, None, hidden_sum / float(n), member_heat=member_heat)


@torch.no_grad()
def interpret_grid(
    maps: list[torch.Tensor],
    ys: torch.Tensor,
    xs: torch.Tensor,
    weights: FoldedWeights,
    groups: list[LayerGroup],
    geometry: LabelGeometry,
    chunk_pixels: int | None = None,
    heat: bool = False,
) -> Interpretation:
    """Labels and JS on the grid of label pixels rows ``ys`` x columns ``xs`` (int64 [ny], [nx]).

    Bilinear resizing to a grid is separable: rows ``U_y`` [ny, h] and columns ``U_x`` [nx, w]. Per
    group, whichever is cheaper: project at native resolution then resize the M*h1-channel projection,
    or resize the C-channel maps to the grid then project. Returns labels / js [B, ny*nx] (row-major);
    with ``heat`` (and keypoint heads) ``member_heat`` [M, n_heat, B, ny*nx].
    """
    device = weights.w1.device
    chunk_pixels = chunk_pixels if chunk_pixels is not None else default_chunk_pixels(device)
    batch = maps[0].shape[0]
    (canvas_h, canvas_w), (top, left, _, _) = geometry.canvas, geometry.crop
    ny, nx = int(ys.shape[0]), int(xs.shape[0])
    n = ny * nx
    k_hidden = weights.w1.shape[1]
    labels = torch.empty(batch, n, dtype=torch.int64, device=device)
    js = torch.empty(batch, n, dtype=torch.float32, device=device)
    hidden_mean = torch.empty(batch, k_hidden, dtype=torch.float32, device=device)
    resize = [
        (interpolation_matrix(g.size[0], canvas_h, ys + top).to(device),
         interpolation_matrix(g.size[1], canvas_w, xs + left).to(device))
        for g in groups
    ]
    per_pass = max(1, chunk_pixels // n)
    heat_parts = [] if heat else None
    for b0 in range(0, batch, per_pass):
        b1 = min(batch, b0 + per_pass)
        b = b1 - b0
        hidden = torch.empty(b, n, k_hidden, device=device).copy_(weights.b1)  # [b, n, K]
        for group, (uy, ux) in zip(groups, resize):
            (h, w), c = group.size, group.w1.shape[0]
            project_first = h * w * c * k_hidden + h * nx * w * k_hidden + ny * h * nx * k_hidden
            resize_first = c * h * w * nx + c * ny * h * nx + n * c * k_hidden
            group_maps = [maps[i][b0:b1] for i in group.layers]
            if project_first <= resize_first:
                projected = _project(group_maps, group.w1)  # [b, h, w, K]
                columns = torch.matmul(ux, projected.reshape(b * h, w, k_hidden))  # [b*h, nx, K]
                hidden += torch.matmul(uy, columns.reshape(b, h, nx * k_hidden)).view(b, n, k_hidden)
            else:
                x = torch.cat(group_maps, dim=1) if len(group_maps) > 1 else group_maps[0]
                x = x.to(device=device, dtype=torch.float32)  # [b, C, h, w]
                on_grid = torch.matmul(uy, torch.matmul(x, ux.t()))  # [b, C, ny, nx]
                hidden.baddbmm_(on_grid.reshape(b, c, n).transpose(1, 2), group.w1.expand(b, c, k_hidden))
        labels[b0:b1], js[b0:b1], hidden_sum = _finish(hidden, weights, heat_parts)
        hidden_mean[b0:b1] = hidden_sum / float(n)
    member_heat = torch.cat(heat_parts, dim=2) if heat_parts else None
    return Interpretation(labels, js, None, hidden_mean, member_heat=member_heat)
