"""Test support: datasetGAN_release's StyleGAN1 checkpoints in its on-disk layout, and a plain reference
forward pass written from the equations, independently of dgan_al.generators.stylegan1.

- ``random_release_state``: the state dict of the release's ``g_all = nn.Sequential(g_mapping=G_mapping(),
  truncation=Truncation(...), g_synthesis=G_synthesis(resolution, fmap_base, fmap_max))`` (names and shapes
  as those modules create them; Truncation holds no tensors), random values. The released files are this
  dict saved with torch 1.x's legacy (non-zip) serialisation: ``*.for_g_all.pt``.
- ``reference_forward``: one sample at a time; the fused up-conv as an explicit transposed convolution
  (scatter of every input pixel through the 4x4 kernel), instance norm from its mean/variance
  definition, images quantised with the release's process_image formula.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F


def release_channels(resolution: int, fmap_base: int = 8192, fmap_max: int = 512) -> dict[int, int]:
    return {2 ** r: min(int(fmap_base / (2.0 ** (r - 1))), fmap_max) for r in range(2, int(math.log2(resolution)) + 1)}


def random_release_state(resolution: int, fmap_base: int = 8192, fmap_max: int = 512, seed: int = 0,
                         zeros: bool = False, dlatent: int = 512) -> OrderedDict:
    g = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return torch.zeros(*shape) if zeros else torch.randn(*shape, generator=g) * scale

    sd: OrderedDict = OrderedDict()
    for i in range(8):  # G_mapping: dense0..7, 512 -> 512, weights stored as N(0,1)/lrmul (use_wscale)
        sd[f"g_mapping.dense{i}.weight"] = randn(dlatent, dlatent, scale=100.0)
        sd[f"g_mapping.dense{i}.bias"] = randn(dlatent, scale=10.0)

    def epilogue(prefix, c):
        sd[f"{prefix}.top_epi.noise.weight"] = randn(c, scale=0.3)
        sd[f"{prefix}.style_mod.lin.weight"] = randn(2 * c, dlatent)
        sd[f"{prefix}.style_mod.lin.bias"] = randn(2 * c, scale=0.2)

    ch = release_channels(resolution, fmap_base, fmap_max)
    blur = torch.tensor([1.0, 2.0, 1.0])
    blur = (blur[:, None] * blur[None, :])[None, None] / 16
    last = None
    for r, c in ch.items():
        p = f"g_synthesis.blocks.{r}x{r}"
        if r == 4:
            sd[f"{p}.const"] = 1 + randn(1, c, 4, 4, scale=0.5)
            sd[f"{p}.bias"] = 1 + randn(c, scale=0.5)
            epilogue(f"{p}.epi1", c)
            sd[f"{p}.conv.weight"] = randn(c, c, 3, 3)
            sd[f"{p}.conv.bias"] = randn(c, scale=0.2)
            epilogue(f"{p}.epi2", c)
        else:
            sd[f"{p}.conv0_up.weight"] = randn(c, last, 3, 3)
            sd[f"{p}.conv0_up.bias"] = randn(c, scale=0.2)
            sd[f"{p}.conv0_up.intermediate.kernel"] = blur.clone()
            epilogue(f"{p}.epi1", c)
            sd[f"{p}.conv1.weight"] = randn(c, c, 3, 3)
            sd[f"{p}.conv1.bias"] = randn(c, scale=0.2)
            epilogue(f"{p}.epi2", c)
        last = c
    sd["g_synthesis.torgb.weight"] = randn(3, last, 1, 1)
    sd["g_synthesis.torgb.bias"] = randn(3, scale=0.1)
    return sd


def _instance_norm(x, eps=1e-5):
    mean = x.mean(dim=(1, 2), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(1, 2), keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def _blur(x):  # x [C, H, W]: depthwise 3x3 [1,2,1]^2/16, zero padding 1
    k = torch.tensor([1.0, 2.0, 1.0])
    k = k[:, None] * k[None, :] / 16
    xp = F.pad(x, [1, 1, 1, 1])
    h, w = x.shape[1:]
    return sum(k[a, b] * xp[:, a:a + h, b:b + w] for a in range(3) for b in range(3))


def _conv(x, weight, gain, bias=None):  # x [C, H, W], same padding
    w = weight * gain / math.sqrt(weight.shape[1] * weight.shape[2] * weight.shape[3])
    y = F.conv2d(x[None], w, padding=weight.shape[-1] // 2)[0]
    return y if bias is None else y + bias[:, None, None]


def _up_conv(x, weight, bias):
    """The release's conv0_up: nearest x2 + conv below 128 px; the fused transposed conv from 128 px."""
    cin, h, w = x.shape
    if 2 * h < 128:
        y = _conv(x.repeat_interleave(2, 1).repeat_interleave(2, 2), weight, math.sqrt(2))
    else:
        wm = weight * math.sqrt(2) / math.sqrt(cin * 9)  # [out, in, 3, 3]
        # the 4x4 kernel: the 3x3 one summed over its four 1-pixel shifts
        k = torch.zeros(wm.shape[0], cin, 4, 4, dtype=x.dtype)
        for da in (0, 1):
            for db in (0, 1):
                k[:, :, da:da + 3, db:db + 3] += wm
        # input pixel p reaches output pixel y = 2p - 1 + a (a = 0..3), stored here at y + 1
        full = torch.zeros(wm.shape[0], 2 * h + 2, 2 * w + 2, dtype=x.dtype)
        for a in range(4):
            for b in range(4):
                full[:, a:a + 2 * h:2, b:b + 2 * w:2] += torch.einsum("ihw,oi->ohw", x, k[:, :, a, b])
        y = full[:, 1:1 + 2 * h, 1:1 + 2 * w]
    return _blur(y) + bias[:, None, None]


def reference_mapping(sd, z):
    x = z / torch.sqrt((z ** 2).mean(dim=1, keepdim=True) + 1e-8)
    for i in range(8):
        wgt, b = sd[f"g_mapping.dense{i}.weight"], sd[f"g_mapping.dense{i}.bias"]
        x = x @ (wgt * math.sqrt(2) / math.sqrt(wgt.shape[1]) * 0.01).t() + b * 0.01
        x = torch.where(x >= 0, x, 0.2 * x)
    return x


def reference_truncate(w, avg_latent, num_ws, psi, max_layer):
    """Truncation as datasetGAN_release's Truncation module: lerp towards avg on rows < max_layer."""
    ws = w[:, None].repeat(1, num_ws, 1)
    for row in range(min(max_layer, num_ws)):
        ws[:, row] = avg_latent[row] + psi * (ws[:, row] - avg_latent[row])
    return ws


def reference_forward(sd, ws, noise):
    """ws [B, L, 512], noise: list of [H, W] maps in epilogue order -> (float image [B,3,R,R], taps)."""
    sizes = sorted(int(k.split(".")[2].split("x")[0]) for k in sd if k.endswith("epi2.style_mod.lin.weight"))
    images, taps_all = [], []
    for bi in range(ws.shape[0]):
        w = ws[bi]

        def epilogue(x, prefix, wrow, n):
            x = x + sd[f"{prefix}.top_epi.noise.weight"][:, None, None] * n
            x = torch.where(x >= 0, x, 0.2 * x)
            x = _instance_norm(x)
            lw = sd[f"{prefix}.style_mod.lin.weight"]
            style = wrow @ (lw / math.sqrt(lw.shape[1])).t() + sd[f"{prefix}.style_mod.lin.bias"]
            c = x.shape[0]
            return x * (style[:c, None, None] + 1) + style[c:, None, None]

        taps, k = [], 0
        x = None
        for i, r in enumerate(sizes):
            p = f"g_synthesis.blocks.{r}x{r}"
            if r == 4:
                x = sd[f"{p}.const"][0] + sd[f"{p}.bias"][:, None, None]
                conv = "conv"
            else:
                x = _up_conv(x, sd[f"{p}.conv0_up.weight"], sd[f"{p}.conv0_up.bias"])
                conv = "conv1"
            x = epilogue(x, f"{p}.epi1", w[2 * i], noise[k])
            raw = _conv(x, sd[f"{p}.{conv}.weight"], math.sqrt(2), sd[f"{p}.{conv}.bias"])
            x = epilogue(raw, f"{p}.epi2", w[2 * i + 1], noise[k + 1])
            taps += [x, raw]
            k += 2
        images.append(_conv(x, sd["g_synthesis.torgb.weight"], 1.0, sd["g_synthesis.torgb.bias"]))
        taps_all.append(taps)
    return torch.stack(images), [torch.stack([t[j] for t in taps_all]) for j in range(len(taps_all[0]))]


def release_uint8(img: torch.Tensor) -> np.ndarray:
    """utils.process_image: x * 127.5 + 128, truncated to int, clipped to [0, 255]; [B,3,H,W] -> [B,H,W,3]."""
    x = (img.numpy().astype(np.float64) * 127.5 + 128.0).astype(int)
    return np.clip(x, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
