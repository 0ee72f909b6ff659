"""Sub-pixel peaks of heatmaps, shared by the interpreter's keypoint heads and the downstream heatmap network
(a plain function on tensors, below both parts)."""

from __future__ import annotations

import torch


def heatmap_peaks(heat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sub-pixel peaks of heatmaps [..., H, W] -> (positions [..., 2] (x, y) float32, value at the argmax).

    Argmax, then on each axis a parabola through the peak and its two neighbours, fitted to the logs when
    all three are positive (exact for a sampled Gaussian), else to the values; the offset is kept within
    half a pixel and is 0 at the border or on a flat top.
    """
    *lead, height, width = heat.shape
    flat = heat.reshape(-1, height * width).to(torch.float32)
    value, index = flat.max(1)
    py, px = index // width, index % width
    rows = torch.arange(flat.shape[0], device=flat.device)

    def offset(centre, before_index, after_index, inside):
        before = flat[rows, before_index.clamp(0, height * width - 1)]
        after = flat[rows, after_index.clamp(0, height * width - 1)]
        positive = (before > 0) & (after > 0) & (centre > 0)
        tiny = torch.finfo(torch.float32).tiny
        lb, lc, la = (torch.where(positive, t.clamp(min=tiny).log(), t) for t in (before, centre, after))
        curvature = lb - 2 * lc + la
        step = torch.where(curvature < 0, 0.5 * (lb - la) / curvature.clamp(max=-1e-12), torch.zeros_like(lc))
        return torch.where(inside, step.clamp(-0.5, 0.5), torch.zeros_like(step))

    dx = offset(value, index - 1, index + 1, (px > 0) & (px < width - 1))
    dy = offset(value, index - width, index + width, (py > 0) & (py < height - 1))
    positions = torch.stack([px.to(torch.float32) + dx, py.to(torch.float32) + dy], dim=1)
    return positions.reshape(*lead, 2), value.reshape(lead)
