"""A clean-room StyleGAN2 generator (Karras et al. 2020), written from the paper's equations.

One readable file in the spirit of nanoGPT's model.py: a config dataclass, the network, and the wrapper
that gives the rest of dgan-al images and per-layer feature maps (the ``Generator`` protocol).

The numerics follow the official implementations so that their checkpoints load onto this one:
    mapping     z -> normalise 2nd moment -> n x [FC (lr multiplier 0.01) -> lrelu * sqrt 2] -> w
    truncation  w <- w_avg + psi (w - w_avg)
    synthesis   const 4x4 -> per resolution: [up-conv 3x3] -> conv 3x3 -> toRGB, RGB skips upsampled
    a conv      modulate (style = affine(w), bias init 1), demodulate, conv, [blur after transposed conv],
                + noise * strength, + bias, lrelu * sqrt 2, clamp to +-conv_clamp * sqrt 2 if configured
    toRGB       modulated 1x1 conv, no demodulation, weight gain 1/sqrt(C_in), + bias, clamp
Resampling uses the [1,3,3,1] FIR filter. Noise is a fixed buffer per layer (no RNG at run time), so the
same z always gives the same pixels and features whatever batch it is in.

Feature taps (as EditGAN): the 4x4 constant and every conv output after noise, bias and activation.
Config-f at 256px taps 5888 channels, at 512px 6016.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from dgan_al.geometry import LabelGeometry
from dgan_al.generators.protocol import Synthesis, sample_latents

SQRT2 = math.sqrt(2.0)


@dataclass
class StyleGAN2Config:
    resolution: int = 256  # output size (square), a power of two >= 4
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    mapping_lr_mul: float = 0.01
    channels: tuple[int, ...] = ()  # channels per resolution 4, 8, ..., resolution
    conv_clamp: float | None = None  # clamp conv outputs to +-conv_clamp (times the lrelu gain)
    img_channels: int = 3

    def __post_init__(self):
        log2 = math.log2(self.resolution)
        if self.resolution < 4 or log2 != int(log2):
            raise ValueError(f"resolution must be a power of two >= 4, got {self.resolution}")
        self.channels = tuple(int(c) for c in self.channels)
        if len(self.channels) != self.num_blocks:
            raise ValueError(
                f"channels needs one entry per resolution 4..{self.resolution} ({self.num_blocks}), "
                f"got {len(self.channels)}"
            )

    @property
    def num_blocks(self) -> int:
        return int(math.log2(self.resolution)) - 1  # 4, 8, ..., resolution

    @property
    def resolutions(self) -> list[int]:
        return [2 ** (i + 2) for i in range(self.num_blocks)]

    @property
    def num_ws(self) -> int:
        return 2 * self.num_blocks  # one per conv plus the last toRGB

    @staticmethod
    def channels_for(resolution: int, channel_base: int = 32768, channel_max: int = 512) -> tuple[int, ...]:
        """stylegan2-ada's rule: min(channel_base // res, channel_max) per resolution."""
        res = [2 ** (i + 2) for i in range(int(math.log2(resolution)) - 1)]
        return tuple(min(channel_base // r, channel_max) for r in res)

    @classmethod
    def config_f(cls, resolution: int = 256, **overrides) -> "StyleGAN2Config":
        """The paper's config F: 512-d z and w, 8 mapping layers, channel base 32768, max 512."""
        return cls(resolution=resolution, channels=cls.channels_for(resolution), **overrides)

    def feature_channels(self) -> list[int]:
        """Channels of each feature tap: the const, then every conv output."""
        taps = [self.channels[0], self.channels[0]]  # const and the 4x4 conv
        for c in self.channels[1:]:
            taps += [c, c]
        return taps

    def feature_resolutions(self) -> list[int]:
        taps = [4, 4]
        for r in self.resolutions[1:]:
            taps += [r, r]
        return taps

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------------
# building blocks


class FullyConnected(nn.Module):
    """Equalised-learning-rate linear layer: weight stored as N(0,1)/lr_mul, scaled at run time."""

    def __init__(self, in_features: int, out_features: int, lr_mul: float = 1.0, bias_init: float = 0.0,
                 activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init)))
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x):  # [B, in] -> [B, out]
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.lr_mul)
        if self.activation:
            x = F.leaky_relu(x, 0.2) * SQRT2
        return x


def blur_filter(device=None) -> torch.Tensor:
    """The [1,3,3,1] separable FIR filter, normalised to sum 1: [4, 4]."""
    k = torch.tensor([1.0, 3.0, 3.0, 1.0], device=device)
    k = torch.outer(k, k)
    return k / k.sum()


def fir_filter(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int], gain: float = 1.0) -> torch.Tensor:
    """Depthwise FIR filter with (before, after) zero padding on both axes: [B,C,H,W] -> [B,C,H',W']."""
    c = x.shape[1]
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    w = (kernel * gain).flip([0, 1])[None, None].repeat(c, 1, 1, 1).to(x.dtype)
    return F.conv2d(x, w, groups=c)


def upsample2x(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Zero-insertion x2 upsampling followed by the FIR filter (gain 4): [B,C,H,W] -> [B,C,2H,2W]."""
    b, c, h, w = x.shape
    up = x.new_zeros(b, c, h * 2, w * 2)
    up[:, :, ::2, ::2] = x
    return fir_filter(up, kernel, pad=(2, 1), gain=4.0)


class ModulatedConv(nn.Module):
    """Modulated (and optionally demodulated) convolution; with ``up`` a x2 transposed conv then blur.

    Implemented by scaling the input by the style and the output by the demodulation coefficient,
    which equals convolving with per-sample modulated weights (tested against that form).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int,
                 demodulate: bool = True, up: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.demodulate = demodulate
        self.up = up
        self.padding = kernel_size // 2
        # toRGB (no demodulation) scales its style by 1/sqrt(fan in); demodulated convs are scale-free.
        self.style_gain = 1.0 if demodulate else 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.register_buffer("blur", blur_filter(), persistent=False)

    def forward(self, x, w):  # x [B,Cin,H,W], w [B,w_dim] -> [B,Cout,H',W']
        styles = self.affine(w) * self.style_gain  # [B, Cin]
        x = x * styles[:, :, None, None]
        if self.up:
            # transposed conv (stride 2, no padding): [B,Cout,2H+1,2W+1], then blur with pad 1 -> [2H,2W]
            x = F.conv_transpose2d(x, self.weight.transpose(0, 1), stride=2)
        else:
            x = F.conv2d(x, self.weight, padding=self.padding)
        if self.demodulate:
            # d[b,o] = 1 / sqrt(sum_{i,kh,kw} (weight[o,i,kh,kw] * styles[b,i])^2 + 1e-8)
            wsq = self.weight.square().sum(dim=[2, 3])  # [Cout, Cin]
            dcoefs = (styles.square() @ wsq.t() + 1e-8).rsqrt()  # [B, Cout]
            x = x * dcoefs[:, :, None, None]
        if self.up:
            x = fir_filter(x, self.blur, pad=(1, 1), gain=4.0)
        return x


class SynthesisLayer(nn.Module):
    """Modulated conv + fixed noise * strength + bias + lrelu * sqrt 2 (+ clamp). Its output is a feature tap."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool,
                 conv_clamp: float | None, noise_seed: int):
        super().__init__()
        self.conv = ModulatedConv(in_channels, out_channels, 3, w_dim, demodulate=True, up=up)
        g = torch.Generator().manual_seed(noise_seed)
        self.register_buffer("noise_const", torch.randn(resolution, resolution, generator=g))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.conv_clamp = conv_clamp

    def forward(self, x, w):
        x = self.conv(x, w)
        x = x + self.noise_const * self.noise_strength
        x = F.leaky_relu(x + self.bias[None, :, None, None], 0.2) * SQRT2
        if self.conv_clamp is not None:  # after the activation gain, as stylegan2-ada's bias_act(clamp=...)
            x = x.clamp(-self.conv_clamp, self.conv_clamp)
        return x


class ToRGB(nn.Module):
    def __init__(self, in_channels: int, img_channels: int, w_dim: int, conv_clamp: float | None):
        super().__init__()
        self.conv = ModulatedConv(in_channels, img_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.conv_clamp = conv_clamp

    def forward(self, x, w):
        x = self.conv(x, w) + self.bias[None, :, None, None]
        if self.conv_clamp is not None:
            x = x.clamp(-self.conv_clamp, self.conv_clamp)
        return x


class SynthesisBlock(nn.Module):
    """One resolution: (const | up-conv0) -> conv1 -> toRGB, RGB skip from the previous block."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 conv_clamp: float | None, noise_seed: int):
        super().__init__()
        self.resolution = resolution
        if resolution == 4:
            self.const = nn.Parameter(torch.randn(out_channels, 4, 4))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, True, conv_clamp,
                                        noise_seed)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, False, conv_clamp,
                                    noise_seed + 1)
        self.torgb = ToRGB(out_channels, img_channels, w_dim, conv_clamp)
        self.register_buffer("blur", blur_filter(), persistent=False)

    def forward(self, x, img, ws, features: list):
        # ws [B, 3, w_dim] for this block: conv0, conv1, torgb (the 4x4 block uses conv1, torgb only)
        if self.conv0 is None:
            x = self.const[None].expand(ws.shape[0], -1, -1, -1)
            features.append(x)
            x = self.conv1(x, ws[:, 0])
            features.append(x)
            y = self.torgb(x, ws[:, 1])
        else:
            x = self.conv0(x, ws[:, 0])
            features.append(x)
            x = self.conv1(x, ws[:, 1])
            features.append(x)
            y = self.torgb(x, ws[:, 2])
        img = y if img is None else upsample2x(img, self.blur) + y
        return x, img


class MappingNetwork(nn.Module):
    def __init__(self, z_dim: int, w_dim: int, num_layers: int, lr_mul: float):
        super().__init__()
        dims = [z_dim] + [w_dim] * num_layers
        self.fcs = nn.ModuleList(
            FullyConnected(dims[i], dims[i + 1], lr_mul=lr_mul, activation=True) for i in range(num_layers)
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z):  # [B, z_dim] -> [B, w_dim]
        x = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        for fc in self.fcs:
            x = fc(x)
        return x


class StyleGAN2(nn.Module):
    """The generator network. ``forward(z, psi)`` -> (image float [B,3,R,R] in about [-1,1], feature taps)."""

    def __init__(self, config: StyleGAN2Config, seed: int = 0):
        super().__init__()
        self.config = config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.mapping = MappingNetwork(config.z_dim, config.w_dim, config.mapping_layers, config.mapping_lr_mul)
            blocks = []
            in_ch = 0
            for i, (res, ch) in enumerate(zip(config.resolutions, config.channels)):
                blocks.append(SynthesisBlock(in_ch, ch, config.w_dim, res, config.img_channels,
                                             config.conv_clamp, noise_seed=seed * 1000 + 2 * i))
                in_ch = ch
            self.blocks = nn.ModuleList(blocks)

    def map(self, z: torch.Tensor, psi: float = 1.0) -> torch.Tensor:
        """z [B, z_dim] -> w [B, w_dim], truncated towards w_avg by psi."""
        w = self.mapping(z)
        if psi != 1.0:
            w = self.mapping.w_avg + psi * (w - self.mapping.w_avg)
        return w

    def synthesis(self, w: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """w [B, w_dim] (same w for every layer) or ws [B, num_ws, w_dim] -> (image, feature taps)."""
        if w.ndim == 2:
            w = w[:, None].expand(-1, self.config.num_ws, -1)
        features: list[torch.Tensor] = []
        x = img = None
        for i, block in enumerate(self.blocks):
            # block i uses ws[2i-1 .. 2i+1] (the 4x4 block: ws[0], ws[1]); toRGB shares with the next conv0
            start = max(2 * i - 1, 0)
            x, img = block(x, img, w[:, start:start + 3], features)
        return img, features

    def forward(self, z: torch.Tensor, psi: float = 1.0):
        return self.synthesis(self.map(z, psi))


def to_uint8(img: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] float in about [-1,1] -> [B,H,W,3] uint8 (the official convention x*127.5+128)."""
    return (img * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


# ---------------------------------------------------------------------------------------------------
# the Generator protocol around the network


@dataclass
class OutputWindow:
    """How the generator's output is turned into the labelled image.

    ``label_resolution``: resize the (square) output to this size first (1024px generators are labelled at
    512, as in DatasetGAN). ``crop``: (top, left, height, width) in label-resolution pixels (LSUN cars:
    rows 64:448 of 512 -> (64, 0, 384, 512)).
    """

    label_resolution: int | None = None
    crop: tuple[int, int, int, int] | None = None
    extra: dict = field(default_factory=dict)


class StyleGAN2Generator:
    """Implements ``Generator`` for a ``StyleGAN2`` network: images, native feature maps, latents."""

    def __init__(self, model: StyleGAN2, identity: str, truncation_psi: float = 1.0,
                 window: OutputWindow | None = None, device: str | torch.device = "cpu",
                 source: str = "random", w_avg_origin: str = "stored in the checkpoint"):
        self.model = model.eval().requires_grad_(False).to(device)
        self.w_avg_origin = w_avg_origin  # where mapping.w_avg came from (inspect-generator prints it)
        self.config = model.config
        self.identity = identity
        self.truncation_psi = float(truncation_psi)
        self.device = torch.device(device)
        self.source = source
        window = window or OutputWindow()
        res = self.config.resolution
        canvas = window.label_resolution or res
        if canvas > res:
            raise ValueError(f"label resolution {canvas} is above the generator's {res}")
        crop = window.crop or (0, 0, canvas, canvas)
        top, left, h, w = crop
        if top < 0 or left < 0 or h <= 0 or w <= 0 or top + h > canvas or left + w > canvas:
            raise ValueError(f"crop {crop} does not fit in the {canvas}x{canvas} labelled output")
        self.window = window
        self.geometry = LabelGeometry(canvas=(canvas, canvas), crop=tuple(crop))
        self.z_dim = self.config.z_dim
        self.feature_channels = self.config.feature_channels()
        self.feature_sizes = [(r, r) for r in self.config.feature_resolutions()]
        self._mean_latent: torch.Tensor | None = None

    @property
    def resolution(self) -> tuple[int, int]:
        return self.geometry.size

    @property
    def w_plus_shape(self) -> tuple[int, int] | None:
        return (self.config.num_ws, self.config.w_dim)

    def _latents(self, latents: torch.Tensor) -> torch.Tensor:
        """float32 on the device, checked: z [B, z_dim] or (where ``w_plus_shape`` is set) w+ [B, num_ws, w_dim]."""
        x = torch.as_tensor(latents, dtype=torch.float32).to(self.device)
        if x.ndim == 2 and x.shape[1] == self.z_dim:
            return x
        if self.w_plus_shape is not None and x.ndim == 3 and tuple(x.shape[1:]) == self.w_plus_shape:
            return x
        plus = f" or w+ [B, {', '.join(map(str, self.w_plus_shape))}]" if self.w_plus_shape else ""
        raise ValueError(f"latents must be z [B, {self.z_dim}]{plus}, got {list(x.shape)}")

    @torch.no_grad()
    def synthesize(self, latents: torch.Tensor) -> Synthesis:
        """z [B, z_dim] (truncated by psi) or w+ [B, num_ws, w_dim] (as given) -> images and native taps."""
        x = self._latents(latents)
        img, features = self.model(x, self.truncation_psi) if x.ndim == 2 else self.model.synthesis(x)
        canvas = self.geometry.canvas[0]
        if canvas != self.config.resolution:  # resize the image as seen (clamped), then quantise
            img = (img * 127.5 + 128).clamp(0, 255)
            img = F.interpolate(img, size=(canvas, canvas), mode="bilinear", align_corners=False, antialias=True)
            img = (img - 128) / 127.5
        top, left, h, w = self.geometry.crop
        img = img[:, :, top:top + h, left:left + w]
        return Synthesis(images=to_uint8(img), features=list(features))

    def sample_latents(self, n: int, seed: int, start: int = 0) -> torch.Tensor:
        return sample_latents(self.z_dim, n, seed, start)

    @torch.no_grad()
    def map(self, latents: torch.Tensor) -> torch.Tensor:
        x = self._latents(latents)
        return (self.model.map(x, self.truncation_psi) if x.ndim == 2 else x[:, 0]).float().cpu()

    @torch.no_grad()
    def map_ws(self, latents: torch.Tensor) -> torch.Tensor:
        """z [B, z_dim] -> the truncated w+ the synthesis sees (w repeated), [B, num_ws, w_dim] on the CPU."""
        return self.map(latents)[:, None].expand(-1, self.config.num_ws, -1).contiguous()

    @torch.no_grad()
    def mean_latent(self) -> torch.Tensor:
        """The z whose w lies closest to the mean w among 10k fixed samples (seed 0).

        The paper's first image is "the mean of 10k random samples" in w space; latents here are z
        vectors, so we take the sample nearest that mean: its image is the typical one the paper means.
        """
        if self._mean_latent is None:
            z = self.sample_latents(10_000, seed=0)
            w = torch.cat([self.model.map(chunk.to(self.device)) for chunk in z.split(1000)])  # [10k, w_dim]
            self._mean_latent = z[int((w - self.model.mapping.w_avg).norm(dim=1).argmin())].clone()
        return self._mean_latent.clone()

    def describe(self) -> dict:
        """What `dgan-al inspect-generator` prints."""
        params = sum(p.numel() for p in self.model.parameters())
        return {
            "format": self.source,
            "identity": self.identity,
            "resolution": self.config.resolution,
            "label size (HxW)": "x".join(map(str, self.geometry.size)),
            "z / w dim": f"{self.config.z_dim} / {self.config.w_dim}",
            "mapping layers": self.config.mapping_layers,
            "channels per resolution": ", ".join(
                f"{r}:{c}" for r, c in zip(self.config.resolutions, self.config.channels)
            ),
            "channels per feature tap": ", ".join(
                f"{h}px:{c}" for c, (h, _) in zip(self.feature_channels, self.feature_sizes)
            ),
            "conv clamp": "none" if self.config.conv_clamp is None else f"{self.config.conv_clamp:g}",
            "mapping lr multiplier": f"{self.config.mapping_lr_mul:g}",
            "average w (w_avg)": self.w_avg_origin,
            "feature taps": len(self.feature_channels),
            "feature width": sum(self.feature_channels),
            "parameters": f"{params:,}",
            "truncation psi": self.truncation_psi,
        }


@torch.no_grad()
def estimate_w_avg(model: StyleGAN2, n: int = 10_000, seed: int = 123) -> torch.Tensor:
    """The mean w of n fixed random z (what the official code tracks as w_avg): [w_dim]."""
    z = sample_latents(model.config.z_dim, n, seed=seed)
    device = model.mapping.w_avg.device
    return torch.cat([model.mapping(chunk.to(device)) for chunk in z.split(2000)]).mean(0)


def random_generator(config: StyleGAN2Config, seed: int = 0, noise_strength: float = 0.1,
                     device: str | torch.device = "cpu", **kwargs) -> StyleGAN2Generator:
    """A random-weight generator (tests, benchmarks): w_avg estimated, noise switched on."""
    model = StyleGAN2(config, seed=seed)
    with torch.no_grad():
        for block in model.blocks:
            for layer in (block.conv0, block.conv1):
                if layer is not None:
                    layer.noise_strength.fill_(noise_strength)
        model.mapping.w_avg.copy_(estimate_w_avg(model))
    return StyleGAN2Generator(model, identity=f"random-stylegan2:{config.resolution}px:seed{seed}",
                              device=device, source="random", w_avg_origin="estimated from 10,000 random z",
                              **kwargs)

