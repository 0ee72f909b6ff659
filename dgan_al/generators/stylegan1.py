"""StyleGAN1 (Karras et al. 2019), the backbone DatasetGAN ran on, written from the paper's equations.

One readable file like ``stylegan2.py``: a config, the network, and the ``Generator`` wrapper. The
numerics follow the PyTorch port that datasetGAN_release uses (``models/stylegan1.py``, converted from
the TensorFlow originals), so its ``*.for_g_all.pt`` checkpoints load onto this one:
    mapping     z -> normalise 2nd moment (eps 1e-8) -> n x [FC (lr mul 0.01, He gain sqrt 2) -> lrelu 0.2]
                -> w, broadcast to one row per synthesis layer (no activation gain, unlike StyleGAN2)
    truncation  rows < truncation_layers: w <- w_avg + psi (w - w_avg); 7 rows at 256 px, 8 above (the
                release's max_layer), w_avg per row from the release's avg_latent_stylegan1.npy
    synthesis   const 4x4 + bias -> epilogue(w0) -> conv 3x3 -> epilogue(w1); then per resolution:
                up-conv -> epilogue -> conv 3x3 -> epilogue; toRGB 1x1 (gain 1) on the last output
    up-conv     output < 128 px: nearest x2, conv 3x3, blur [1,2,1]^2/16, + bias; from 128 px on the
                fused form: transposed conv (stride 2, pad 1) with the 3x3 kernel summed into 4x4, blur, + bias
    epilogue    + noise * per-channel weight, lrelu 0.2, instance norm (eps 1e-5, no affine),
                x * (1 + s0) + s1 with (s0, s1) = FC(w) (gain 1)
Equalised learning rate everywhere: weights scaled by gain / sqrt(fan_in) at run time.

Noise: the release draws fresh noise on every call, so the same latent never gives the same pixels
twice there. Here each epilogue has a fixed noise map (seeded), so a latent always gives the same
image and features; ``StyleGAN1.set_noise`` replaces them (e.g. with maps a user saved).

Feature taps are what the release's synthesis returns for the interpreter, per block in this order: the
second epilogue's output, then the raw output of the conv before it (with bias, before noise). 4992
channels at 256 px, 5056 at 512, 5088 at 1024. Images become uint8 as the release does:
clip(trunc(x * 127.5 + 128)); a 1024 px image labelled at 512 is first resized bilinearly (no
antialiasing), as the release resizes both images and features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from dgan_al.generators.protocol import Synthesis, sample_latents
from dgan_al.generators.stylegan2 import StyleGAN2Generator, to_uint8

SQRT2 = math.sqrt(2.0)


@dataclass(kw_only=True)
class StyleGAN1Config:
    resolution: int = 1024  # output size (square), a power of two >= 8
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    channels: tuple[int, ...] = ()  # channels per resolution 4, 8, ..., resolution
    img_channels: int = 3
    fused_from: int = 128  # output resolution from which the up-conv is the fused transposed conv

    def __post_init__(self):
        log2 = math.log2(self.resolution)
        if self.resolution < 8 or log2 != int(log2):
            raise ValueError(f"resolution must be a power of two >= 8, got {self.resolution}")
        self.channels = tuple(int(c) for c in self.channels)
        if len(self.channels) != self.num_blocks:
            raise ValueError(f"channels needs one entry per resolution 4..{self.resolution} ({self.num_blocks}), "
                             f"got {len(self.channels)}")

    @property
    def num_blocks(self) -> int:
        return int(math.log2(self.resolution)) - 1

    @property
    def resolutions(self) -> list[int]:
        return [2 ** (i + 2) for i in range(self.num_blocks)]

    @property
    def num_ws(self) -> int:
        return 2 * self.num_blocks  # 14 at 256 px, 16 at 512, 18 at 1024

    @property
    def truncation_layers(self) -> int:
        """Rows of w+ that truncation moves: the release's max_layer (7 for its 256 px cats and bedrooms)."""
        return 7 if self.resolution <= 256 else 8

    @staticmethod
    def channels_for(resolution: int, fmap_base: int = 8192, fmap_max: int = 512) -> tuple[int, ...]:
        """The release's nf(res - 1) = min(fmap_base / 2^(log2 res - 1), fmap_max) per resolution."""
        return tuple(min(int(fmap_base / 2.0 ** (i + 1)), fmap_max) for i in range(int(math.log2(resolution)) - 1))

    def feature_channels(self) -> list[int]:
        return [c for c in self.channels for _ in range(2)]

    def feature_resolutions(self) -> list[int]:
        return [r for r in self.resolutions for _ in range(2)]


# ---------------------------------------------------------------------------------------------------
# building blocks


class EqualLinear(nn.Module):
    """Linear layer, weight scaled by gain / sqrt(in) * lr_mul at run time, bias by lr_mul."""

    def __init__(self, in_features: int, out_features: int, gain: float, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.w_mul = gain / math.sqrt(in_features) * lr_mul
        self.b_mul = lr_mul

    def forward(self, x):
        return F.linear(x, self.weight * self.w_mul, self.bias * self.b_mul)


class EqualConv(nn.Module):
    """k x k convolution with equalised learning rate; ``up`` makes it the release's x2 up-conv."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gain: float, up: bool = False,
                 fused: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.w_mul = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.up, self.fused = up, fused
        blur = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("blur", torch.outer(blur, blur) / 16, persistent=False)

    def forward(self, x):
        w = self.weight * self.w_mul
        if not self.up:
            return F.conv2d(x, w, self.bias, padding=w.shape[-1] // 2)
        if self.fused:
            # transposed conv whose 4x4 kernel is the 3x3 kernel summed over its four 1-pixel shifts
            w = F.pad(w.transpose(0, 1), [1, 1, 1, 1])
            w = w[:, :, 1:, 1:] + w[:, :, :-1, 1:] + w[:, :, 1:, :-1] + w[:, :, :-1, :-1]
            x = F.conv_transpose2d(x, w, stride=2, padding=1)
        else:
            x = F.conv2d(x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3), w, padding=w.shape[-1] // 2)
        c = x.shape[1]
        x = F.conv2d(x, self.blur[None, None].expand(c, 1, 3, 3), padding=1, groups=c)
        return x + self.bias[None, :, None, None]


class Epilogue(nn.Module):
    """+ fixed noise * per-channel weight, lrelu 0.2, instance norm, style modulation x * (1 + s0) + s1."""

    def __init__(self, channels: int, w_dim: int, resolution: int, noise_seed: int):
        super().__init__()
        self.noise_weight = nn.Parameter(torch.zeros(channels))
        g = torch.Generator().manual_seed(noise_seed)
        self.register_buffer("noise", torch.randn(resolution, resolution, generator=g))
        self.style = EqualLinear(w_dim, 2 * channels, gain=1.0)

    def forward(self, x, w):
        x = x + self.noise_weight[None, :, None, None] * self.noise
        x = F.leaky_relu(x, 0.2)
        x = F.instance_norm(x, eps=1e-5)
        style = self.style(w).view(w.shape[0], 2, x.shape[1], 1, 1)
        return x * (style[:, 0] + 1) + style[:, 1]


class SynthesisBlock(nn.Module):
    """One resolution: (const + bias | up-conv) -> epilogue -> conv 3x3 -> epilogue. Taps: (out, conv1 raw)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, fused: bool,
                 noise_seed: int):
        super().__init__()
        if in_channels == 0:
            self.const = nn.Parameter(torch.ones(out_channels, 4, 4))
            self.const_bias = nn.Parameter(torch.ones(out_channels))
            self.conv0 = None
        else:
            self.conv0 = EqualConv(in_channels, out_channels, 3, SQRT2, up=True, fused=fused)
        self.epi0 = Epilogue(out_channels, w_dim, resolution, noise_seed)
        self.conv1 = EqualConv(out_channels, out_channels, 3, SQRT2)
        self.epi1 = Epilogue(out_channels, w_dim, resolution, noise_seed + 1)

    def forward(self, x, ws):  # ws [B, 2, w_dim]
        if self.conv0 is None:
            x = (self.const + self.const_bias[:, None, None])[None].expand(ws.shape[0], -1, -1, -1)
        else:
            x = self.conv0(x)
        x = self.epi0(x, ws[:, 0])
        raw = self.conv1(x)
        return self.epi1(raw, ws[:, 1]), raw


class StyleGAN1(nn.Module):
    """The generator network: ``map`` z -> w+, ``synthesis`` w+ -> (image, taps)."""

    def __init__(self, config: StyleGAN1Config, seed: int = 0):
        super().__init__()
        self.config = config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            dims = [config.z_dim] + [config.w_dim] * config.mapping_layers
            self.mapping = nn.ModuleList(EqualLinear(dims[i], dims[i + 1], SQRT2, lr_mul=0.01)
                                         for i in range(config.mapping_layers))
            blocks, in_ch = [], 0
            for i, (res, ch) in enumerate(zip(config.resolutions, config.channels)):
                blocks.append(SynthesisBlock(in_ch, ch, config.w_dim, res, res >= config.fused_from,
                                             noise_seed=seed * 1000 + 2 * i))
                in_ch = ch
            self.blocks = nn.ModuleList(blocks)
            self.torgb = EqualConv(in_ch, config.img_channels, 1, gain=1.0)
        self.register_buffer("w_avg", torch.zeros(config.num_ws, config.w_dim))  # per row of w+

    def map(self, z: torch.Tensor, psi: float = 1.0) -> torch.Tensor:
        """z [B, z_dim] -> w+ [B, num_ws, w_dim], the first ``truncation_layers`` rows truncated by psi."""
        x = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        for fc in self.mapping:
            x = F.leaky_relu(fc(x), 0.2)
        ws = x[:, None].expand(-1, self.config.num_ws, -1)
        if psi != 1.0:
            rows = torch.arange(self.config.num_ws, device=z.device) < self.config.truncation_layers
            ws = torch.where(rows[None, :, None], torch.lerp(self.w_avg, ws, psi), ws)
        return ws

    def synthesis(self, ws: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """ws [B, num_ws, w_dim] -> (image float [B, 3, R, R] in about [-1, 1], taps)."""
        features: list[torch.Tensor] = []
        x = None
        for i, block in enumerate(self.blocks):
            x, raw = block(x, ws[:, 2 * i:2 * i + 2])
            features += [x, raw]
        return self.torgb(x), features

    def set_noise(self, noise: list[torch.Tensor]) -> None:
        """Replace the fixed noise maps: one [H, W] (or [1, 1, H, W]) tensor per epilogue, in forward order."""
        epilogues = [e for b in self.blocks for e in (b.epi0, b.epi1)]
        if len(noise) != len(epilogues):
            raise ValueError(f"need {len(epilogues)} noise maps, got {len(noise)}")
        with torch.no_grad():
            for e, n in zip(epilogues, noise):
                e.noise.copy_(torch.as_tensor(n, dtype=torch.float32).reshape(e.noise.shape))


# ---------------------------------------------------------------------------------------------------
# the Generator protocol around the network


class StyleGAN1Generator(StyleGAN2Generator):
    """Implements ``Generator`` for a ``StyleGAN1`` network. The label geometry, latents and device
    handling are StyleGAN2Generator's; mapping to w+, synthesis and image resizing are the release's."""

    def _check(self, latents, ndim: int) -> torch.Tensor:
        x = self._latents(latents)
        if x.ndim != ndim:
            want = [self.z_dim] if ndim == 2 else [self.config.num_ws, self.config.w_dim]
            raise ValueError(f"latents must be [B, {', '.join(map(str, want))}], got {list(x.shape)}")
        return x

    @torch.no_grad()
    def synthesize(self, latents: torch.Tensor) -> Synthesis:
        """z [B, z_dim] (truncated as the release does) or w+ [B, num_ws, w_dim] (as given) -> images at the
        label geometry and native feature taps."""
        x = self._latents(latents)
        return self.synthesize_ws(self.model.map(x, self.truncation_psi) if x.ndim == 2 else x)

    @torch.no_grad()
    def synthesize_ws(self, ws: torch.Tensor) -> Synthesis:
        """w+ [B, num_ws, w_dim] (used as given: no truncation) -> images and native feature taps."""
        img, features = self.model.synthesis(self._check(ws, 3))
        canvas = self.geometry.canvas[0]
        if canvas != self.config.resolution:  # the release resizes the float image, then quantises
            img = F.interpolate(img, size=(canvas, canvas), mode="bilinear", align_corners=False)
        top, left, h, w = self.geometry.crop
        return Synthesis(images=to_uint8(img[:, :, top:top + h, left:left + w]), features=list(features))

    @torch.no_grad()
    def map_ws(self, latents: torch.Tensor) -> torch.Tensor:
        """z [B, z_dim] -> the truncated w+ the synthesis sees, [B, num_ws, w_dim] on the CPU."""
        return self.model.map(self._check(latents, 2), self.truncation_psi).float().cpu()

    @torch.no_grad()
    def map(self, latents: torch.Tensor) -> torch.Tensor:
        """The first (truncated) row of w+, [B, w_dim]: every row < truncation_layers is this one (of a w+
        latent: its own first row)."""
        x = self._latents(latents)
        return (self.map_ws(x) if x.ndim == 2 else x.float().cpu())[:, 0].contiguous()

    @torch.no_grad()
    def mean_latent(self) -> torch.Tensor:
        """The z (of 10k fixed samples, seed 0) whose w lies closest to the average w."""
        if self._mean_latent is None:
            z = self.sample_latents(10_000, seed=0)
            w = torch.cat([self.model.map(chunk.to(self.device))[:, 0] for chunk in z.split(1000)])
            self._mean_latent = z[int((w - self.model.w_avg[0]).norm(dim=1).argmin())].clone()
        return self._mean_latent.clone()

    def describe(self) -> dict:
        """What `dgan-al inspect-generator` prints."""
        c = self.config
        return {
            "format": self.source,
            "identity": self.identity,
            "resolution": c.resolution,
            "label size (HxW)": "x".join(map(str, self.geometry.size)),
            "z / w dim": f"{c.z_dim} / {c.w_dim}",
            "mapping layers": c.mapping_layers,
            "w+ rows": f"{c.num_ws} (truncation on the first {c.truncation_layers})",
            "channels per resolution": ", ".join(f"{r}:{ch}" for r, ch in zip(c.resolutions, c.channels)),
            "channels per feature tap": ", ".join(
                f"{h}px:{ch}" for ch, (h, _) in zip(self.feature_channels, self.feature_sizes)),
            "feature taps": len(self.feature_channels),
            "feature width": sum(self.feature_channels),
            "average w (w_avg)": self.w_avg_origin,
            "noise": "fixed per layer (the release draws fresh noise on every call)",
            "parameters": f"{sum(p.numel() for p in self.model.parameters()):,}",
            "truncation psi": self.truncation_psi,
        }


@torch.no_grad()
def estimate_w_avg(model: StyleGAN1, n: int = 10_000, seed: int = 123) -> torch.Tensor:
    """The mean untruncated w of n fixed random z, one row per w+ row: [num_ws, w_dim]."""
    z = sample_latents(model.config.z_dim, n, seed=seed)
    device = model.w_avg.device
    w = torch.cat([model.map(chunk.to(device))[:, 0] for chunk in z.split(2000)]).mean(0)
    return w[None].expand(model.config.num_ws, -1).clone()
